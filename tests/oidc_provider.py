"""A real OpenID Connect provider for the tests: tests/oidc/provider.mjs (panva's oidc-provider) on a free port.

`make install-test` installs it (npm ci in tests/oidc). Its development login page takes an account's
`sub` as the login and any password; its consent page has one "Continue" button. `sign_in` walks
those pages with httpx, as a browser would, for the tests that need no browser. The provider's log
is $TMPDIR/oidc-provider-<port>.log.
"""

import json
import os
import re
import shutil
import subprocess
import time
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import httpx

from tests.helpers import free_port

DIRECTORY = Path(__file__).resolve().parent / "oidc"
CLIENT_ID, CLIENT_SECRET = "team-chat", "team-chat-test-secret"

# The people at the provider. Names and groups are what the app should copy.
ACCOUNTS = [
    {
        "sub": "ada",
        "email": "ada@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "preferred_username": "ada",
        "groups": ["engineering", "everyone"],
    },
    {
        "sub": "grace",
        "email": "grace@example.com",
        "email_verified": True,
        "name": "Grace Hopper",
        "given_name": "Grace",
        "family_name": "Hopper",
        "preferred_username": "grace",
        "groups": ["everyone"],
    },
    {
        # Says her address is one an account here has, but the provider has not verified it.
        "sub": "mallory",
        "email": "boss@example.com",
        "email_verified": False,
        "name": "Mallory",
        "preferred_username": "admin",
        "groups": [],
    },
]


class OIDCProvider:
    """The provider process, stopped on exit. `issuer` is its URL; `redirect_uris` are the client's."""

    def __init__(self, redirect_uris: list[str], accounts: list[dict] = ACCOUNTS):
        self.port = free_port()
        self.redirect_uris = redirect_uris
        self.accounts = accounts
        self.process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app_env(self, **extra: str) -> dict:
        """The app's environment variables that point it at this provider."""
        return {
            "CHAT_OIDC_ISSUER": self.issuer,
            "CHAT_OIDC_CLIENT_ID": CLIENT_ID,
            "CHAT_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "CHAT_OIDC_SCOPES": "openid email profile groups",
            "CHAT_OIDC_LABEL": "Test ID",
            "CHAT_OIDC_GROUPS_CLAIM": "groups",
            **extra,
        }

    def __enter__(self) -> "OIDCProvider":
        node = shutil.which("node")
        if node is None or not (DIRECTORY / "node_modules" / "oidc-provider").exists():
            raise RuntimeError("the test OIDC provider needs Node.js and `make install-test` (npm ci in tests/oidc)")
        config = {
            "port": self.port,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": self.redirect_uris,
            # Where logging out at the provider may lead back to: the app's login page.
            "post_logout_redirect_uris": [uri.replace("/oidc/callback/", "/accounts/login/") for uri in self.redirect_uris],
            "accounts": self.accounts,
        }
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"oidc-provider-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [node, str(DIRECTORY / "provider.mjs"), json.dumps(config)],
            cwd=DIRECTORY,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the OIDC provider did not start; see {self.log.name}")
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def sign_in(authorize_url: str, login: str) -> str:
    """Log in at the provider as `login` and consent, as a person would in a browser: the URL it sends
    them back to (the app's callback, with the code and state)."""
    with httpx.Client() as browser:
        response = browser.get(authorize_url)
        for _step in range(10):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if "/oidc/callback/" in location:
                    return location
                response = browser.get(location)
                continue
            # The provider's login form, then its consent form: each names its step in a hidden "prompt".
            form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', response.text)
            prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
            if not (form and prompt):
                raise AssertionError(f"the provider answered neither a redirect nor a form:\n{response.text[:2000]}")
            data = {"prompt": prompt.group(1)}
            if prompt.group(1) == "login":
                data.update(login=login, password="any password")
            response = browser.post(urljoin(str(response.url), unescape(form.group(1))), data=data)
    raise AssertionError("the provider never sent the person back")
