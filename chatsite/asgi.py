"""ASGI entry point: HTTP goes to Django, websockets to the chat consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from conversations.origin import SameOriginValidator  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402
from conversations.throttle import ConnectLimiter  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # An allowed Host, and an Origin with the site's own scheme, host and port (conversations/origin.py).
        # Then at most CHAT_CONNECTS_PER_MINUTE new sockets per address, before any database work.
        "websocket": SameOriginValidator(ConnectLimiter(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))),
    }
)
