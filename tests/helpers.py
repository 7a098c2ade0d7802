"""What the test files share besides fixtures and objects: HTTP (a logged-in client, a page's text, its
flash messages, pickers, the sidebar and its "Shared with me", admin changelists), any admin form as a
browser posts it, the admin's provider and model forms, and websockets to the real ASGI application (open,
send, receive, read the reply).

Fixtures are in tests/conftest.py, the objects tests need in tests/factories.py. Nothing here imports
the app at module level, so tests/e2e/live.py, which bench/ imports without Django set up, can use it.
"""

import html as htmllib
import json
import re
import socket
from html.parser import HTMLParser

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

# --- HTTP ----------------------------------------------------------------------------------------


def login(user, **client_options) -> Client:
    """A test client logged in as `user`, or anonymous when `user` is None.
    `client_options` go to Client, such as enforce_csrf_checks=True."""
    client = Client(**client_options)
    if user is not None:
        client.force_login(user)
    return client


def session_cookie(user) -> str:
    """The session id that logs `user` in, for a socket's cookie header."""
    return login(user).cookies["sessionid"].value


def page(response) -> str:
    return response.content.decode()


def flashes(response) -> list[tuple[str, str]]:
    """(level, text) of each flash message on the page."""
    found = re.findall(r'<li class="flash-(\w+)">(.*?)</li>', page(response))
    return [(level, htmllib.unescape(text)) for level, text in found]


def picker(html: str, name: str = "model") -> list[dict]:
    """Each option of the page's select called `name` (the model picker by default): value, label, title, selected."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S).group(1)
    options = []
    for attributes, label in re.findall(r"<option ([^>]*)>([^<]*)</option>", select):
        title = re.search(r'title="([^"]*)"', attributes)
        options.append(
            {
                "value": re.search(r'value="([^"]*)"', attributes).group(1),
                "label": htmllib.unescape(label),
                "title": htmllib.unescape(title.group(1)) if title else "",
                "selected": " selected" in f" {attributes}",
            }
        )
    return options


def message_list_html(html: str) -> str:
    """The page's list of messages only: not the <template> the browser builds new messages from."""
    start = html.index('<ol class="messages" id="messages"')
    return html[start : html.index("</ol>", start) + len("</ol>")]


def sidebar_list(html: str, list_id: str) -> list[tuple[str, str]]:
    """(title, owner or "") of each conversation in one sidebar list: "sidebar-pinned", "sidebar-own",
    "sidebar-shared" (an empty list when it is not on the page)."""
    found = re.search(rf'<ul [^>]*id="{list_id}"[^>]*>(.*?)</ul>', html, re.S)
    if found is None:
        return []
    items = re.findall(
        r'<span class="sidebar-title">([^<]*)</span>(?: <span class="muted">· ([^<]*)</span>)?', found.group(1)
    )
    return [(htmllib.unescape(title), htmllib.unescape(owner)) for title, owner in items]


def sidebar_titles(html: str) -> list[str]:
    """The titles under "Your conversations", pinned first (not those under "Shared with me")."""
    return [title for title, _ in sidebar_list(html, "sidebar-pinned") + sidebar_list(html, "sidebar-own")]


def shared_sidebar(html: str) -> list[tuple[str, str]]:
    """(title, owner) of each conversation under "Shared with me"; empty when the section is not there."""
    return sidebar_list(html, "sidebar-shared")


def listed(response) -> list:
    """The rows of an admin changelist."""
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


# --- any admin form, as a browser submits it ----------------------------------------------------


class _FormFields(HTMLParser):
    """The fields of the admin's object form (<form id="<model>_form">) and what a browser sends for each."""

    def __init__(self):
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._in_form = False
        self._select: dict | None = None  # name, options (value, selected), multiple
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self._in_form = (attributes.get("id") or "").endswith("_form")
        if not self._in_form or "disabled" in attributes:
            return
        name = attributes.get("name")
        if tag == "input" and name:
            kind = attributes.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in attributes:
                return
            if kind not in ("submit", "button", "reset", "image", "file"):
                default = "on" if kind in ("checkbox", "radio") else ""
                self.fields.append((name, attributes.get("value") or default))
        elif tag == "select" and name:
            self._select = {"name": name, "options": [], "multiple": "multiple" in attributes}
        elif tag == "option" and self._select is not None:
            self._select["options"].append((attributes.get("value", ""), "selected" in attributes))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        elif tag == "select" and self._select is not None:
            options = self._select["options"]
            chosen = [value for value, selected in options if selected]
            if not chosen and options and not self._select["multiple"]:
                chosen = [options[0][0]]  # a single select sends its first option when none is selected
            self.fields += [(self._select["name"], value) for value in chosen]
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # Browsers drop the newline that starts a textarea's content (Django's widget writes one).
            self.fields.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def admin_form(response, **changes) -> dict:
    """What a browser would POST from this admin add or change page: every field as shown (inlines' and
    management forms included), then `changes` (a change to None leaves that field out, as an unticked box)."""
    assert response.status_code == 200
    parser = _FormFields()
    parser.feed(page(response))
    data: dict[str, str | list[str]] = {}
    for name, value in parser.fields:
        if name not in data:
            data[name] = value
        else:  # a multiple select: every chosen value
            data[name] = [*data[name], value] if isinstance(data[name], list) else [data[name], value]
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


# --- the admin's provider and model forms -------------------------------------------------------

PROVIDERS = "/admin/conversations/provider/"
MODELS = "/admin/conversations/modelconfig/"


def provider_form(provider=None, **changes) -> dict:
    """The provider form as a browser submits it: every field, the key left empty (which keeps the stored
    one). Filled from `provider` for its change page, else with a new provider's values. A change to None
    leaves that field out (an unticked box)."""
    data = {
        "name": "New",
        "kind": "openai_compatible",
        "base_url": "https://api.example.com/v1",
        "api_key": "",
        "api_version": "",
        "organization": "",
        "project": "",
        "extra_headers": "{}",
        "connect_timeout": "10",
        "timeout": "60",
    }
    if provider is not None:
        data.update(
            name=provider.name,
            kind=provider.kind,
            base_url=provider.base_url,
            api_version=provider.api_version,
            organization=provider.organization,
            project=provider.project,
            extra_headers=json.dumps(provider.extra_headers),
            connect_timeout=provider.connect_timeout,
            timeout=provider.timeout,
        )
        if provider.allow_internal:
            data["allow_internal"] = "on"  # a ticked box; an unticked one is not sent at all
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def model_form(provider, **changes) -> dict:
    """The model add form as a browser submits it: every field present, parameters empty.
    A change to None leaves that field out."""
    data = {
        "display_name": "Model",
        "provider": provider.pk,
        "model": "gpt-test",
        "endpoint": "chat",
        "enabled": "on",
        "temperature": "",
        "top_p": "",
        "max_tokens": "",
        "presence_penalty": "",
        "frequency_penalty": "",
        "stop": "",
        "logit_bias": "",
        "seed": "",
        "response_format": "",
        "max_completion_tokens": "",
        "reasoning_effort": "",
        "omit_parameters": "",
        "system_prompt": "",
        "description": "",
        "order": "100",
        "temperature_min": "0",
        "temperature_max": "1",
        "context_window": "",
        "input_price": "",
        "output_price": "",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def add_provider_errors(client, **changes) -> dict:
    """POST the provider add form with `changes`: its errors by field, empty when the provider was saved."""
    return _add_form_errors(client, PROVIDERS, provider_form(**changes))


def add_model_errors(client, provider, **changes) -> dict:
    """POST the model add form with `changes`: its errors by field, empty when the model was saved."""
    return _add_form_errors(client, MODELS, model_form(provider, **changes))


def _add_form_errors(client, changelist: str, data: dict) -> dict:
    response = client.post(f"{changelist}add/", data)
    if response.status_code == 302:
        return {}
    assert response.status_code == 200
    return {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()}


# --- sockets -------------------------------------------------------------------------------------

# Every communicator made here, so that conftest's finish_replies can disconnect what a test left open.
_open_communicators: list[WebsocketCommunicator] = []


def _communicator(
    path: str, *, cookie: str | None = None, origin: str = "http://testserver", host: str = "testserver"
) -> WebsocketCommunicator:
    """A socket to `path` on the real ASGI application (origin check and auth included), not yet connected."""
    from chatsite.asgi import application

    headers = [(b"origin", origin.encode()), (b"host", host.encode())]
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    _open_communicators.append(communicator)
    return communicator


async def disconnect_open_sockets() -> None:
    """Disconnect every socket made here and still open (conftest's finish_replies calls it after each test)."""
    while _open_communicators:
        communicator = _open_communicators.pop()
        if communicator.future.cancelled():
            continue  # a receive timed out and cancelled it: the test failed already; keep it one failure
        # A refused socket's consumer runs until it hears the disconnect; with Redis, a
        # consumer left waiting on the channel layer would hold the loop open at teardown.
        await communicator.disconnect()


async def connect(
    user,
    conversation_id,
    *,
    query: str = "",
    origin: str = "http://testserver",
    host: str = "testserver",
    session: str | None = None,
) -> WebsocketCommunicator:
    """A socket to a conversation as `user` (anonymous when None; in the login `session` if given), not yet
    connected: the test connects it."""
    cookie = session or (await sync_to_async(session_cookie)(user) if user is not None else None)
    path = f"/ws/conversations/{conversation_id}/" + (f"?{query}" if query else "")
    return _communicator(path, cookie=cookie, origin=origin, host=host)


def link_socket(token: str, *, cookie: str | None = None, query: str = "") -> WebsocketCommunicator:
    """A socket to /ws/s/<token>/ as the public page opens it: no login unless `cookie`; not yet connected."""
    return _communicator(f"/ws/s/{token}/" + (f"?{query}" if query else ""), cookie=cookie)


async def closed_with(communicator: WebsocketCommunicator, *, skip_frames: int = 0) -> int:
    """The close code a refused socket gets: accepted, then closed at once with the reason (after `skip_frames`
    frames, such as the error that says why)."""
    connected, code = await communicator.connect()
    assert connected, f"refused at the handshake ({code}), not closed with a code"
    for _ in range(skip_frames):
        assert (await communicator.receive_output(timeout=5))["type"] == "websocket.send"
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def refused_at_handshake(communicator: WebsocketCommunicator) -> bool:
    """Whether the socket was refused before it was accepted (HTTP 403: the origin check)."""
    connected, _ = await communicator.connect()
    return not connected


async def opened(communicator: WebsocketCommunicator) -> WebsocketCommunicator:
    """`communicator`, connected: the server must accept it."""
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


async def open_socket(user, conversation, **options) -> WebsocketCommunicator:
    """A connected socket to `conversation` as `user`; `options` as connect's (query, origin)."""
    return await opened(await connect(user, conversation.id, **options))


async def open_link_socket(token: str, **options) -> WebsocketCommunicator:
    """A connected socket to a public link; `options` as link_socket's (cookie)."""
    return await opened(link_socket(token, **options))


async def send(communicator, content: str = "Hello?", **fields) -> None:
    """A "send" frame with `content`, and `fields` such as model=<id>."""
    await communicator.send_to(text_data=json.dumps({"type": "send", "content": content, **fields}))


async def receive_until(communicator: WebsocketCommunicator, predicate, timeout: float = 5.0) -> list[dict]:
    """Frames received up to and including the first one `predicate` accepts."""
    frames = []
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        frames.append(frame)
        if predicate(frame):
            return frames


def done(frame: dict) -> bool:
    return frame["type"] == "done"


def is_error(frame: dict) -> bool:
    return frame["type"] == "error"


def done_or_error(frame: dict) -> bool:
    """A reply's end, or a refusal (which has no reply, so no "done")."""
    return frame["type"] in ("done", "error")


async def send_and_receive(communicator, content: str = "Hello?", *, until=done_or_error, **fields) -> list[dict]:
    """Send `content` (and `fields`) on an open socket: the frames up to the first `until` accepts,
    by default to the reply's end or the refusal."""
    await send(communicator, content, **fields)
    return await receive_until(communicator, until)


async def exchange(user, conversation, content: str = "Hello?", *, until=done_or_error, **fields) -> list[dict]:
    """One send on a socket of its own, closed after: the frames up to the first `until` accepts,
    by default to the reply's end or the refusal."""
    communicator = await open_socket(user, conversation)
    frames = await send_and_receive(communicator, content, until=until, **fields)
    await communicator.disconnect()
    return frames


def text_of(frames: list[dict], message_id: int | None = None) -> str:
    """The reply text a client would show from the delta frames (of `message_id`, or all of them),
    checking that offsets leave no gap and no overlap."""
    text = ""
    for frame in frames:
        if frame["type"] == "delta" and message_id in (None, frame["message_id"]):
            assert frame["offset"] == len(text), f"gap or repeat at {frame['offset']} (have {len(text)})"
            text += frame["content"]
    return text


# --- ports ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on, for a server to start on or a client to fail to reach."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
