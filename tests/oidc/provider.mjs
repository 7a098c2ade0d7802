// A real OpenID Connect provider for the tests: panva's oidc-provider (an OpenID-certified
// implementation) with its development login and consent pages. It is a test double of an
// identity provider, not of our client: the app talks to it exactly as to Keycloak or Entra ID.
//
//   node tests/oidc/provider.mjs '<json>'
//
// where <json> is {"port", "client_id", "client_secret", "redirect_uris": [...],
// "accounts": [{"sub", "email", "email_verified", "name", "given_name", "family_name",
// "preferred_username", "groups": [...]}]}. The development login page takes an account's `sub`
// as the login and any password. The issuer is http://127.0.0.1:<port>.
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2] ?? process.env.TEST_OIDC_CONFIG ?? '{}');
const port = Number(config.port);
const accounts = new Map((config.accounts ?? []).map((account) => [account.sub, account]));

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    post_logout_redirect_uris: config.post_logout_redirect_uris ?? [],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // mozilla-django-oidc sends the secret in the token request's body by default.
    token_endpoint_auth_method: 'client_secret_post',
  }],
  claims: {
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = accounts.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { ...account, sub: id };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
});
// Plain HTTP on 127.0.0.1: the provider would otherwise refuse to set its cookies on an insecure origin.
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on http://127.0.0.1:${port}`);
});
