from django.urls import path

from .consumers import ConversationConsumer, PublicLinkConsumer

websocket_urlpatterns = [
    path("ws/conversations/<uuid:conversation_id>/", ConversationConsumer.as_asgi()),
    path("ws/s/<str:token>/", PublicLinkConsumer.as_asgi()),
]
