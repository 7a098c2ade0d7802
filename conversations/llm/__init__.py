"""The upstream API. Knows nothing of Django models: plain data in, chunks out."""

from .client import close_shared_client, stream_reply
from .types import INCOMPLETE, Chunk, ClientOptions, ModelSpec, UpstreamError, Usage

__all__ = [
    "INCOMPLETE",
    "Chunk",
    "ClientOptions",
    "ModelSpec",
    "UpstreamError",
    "Usage",
    "close_shared_client",
    "stream_reply",
]
