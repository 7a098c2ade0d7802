"""This process's state in a deploy: serving, or draining (shutting down after SIGTERM, see shutdown.py).

A module of its own so that the views (/healthz) and the send path can ask without importing what drains.
"""

_draining = False


def is_draining() -> bool:
    """True once this process has started shutting down: it takes no new replies and answers /healthz with 503."""
    return _draining


def begin_draining() -> None:
    global _draining
    _draining = True


def serve_again() -> None:
    """Back to serving (tests: the process goes on after a drain)."""
    global _draining
    _draining = False
