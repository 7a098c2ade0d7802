"""`python -m chatsite.server [daphne options] chatsite.asgi:application`: daphne, on uvloop where available,
that drains on SIGTERM instead of dropping every running reply.

daphne runs Twisted on an asyncio loop it creates when it is imported; choosing
uvloop's policy first makes that loop uvloop's. bench/stream_load.py measured
about 20% less CPU per streamed reply this way. Without uvloop (Windows), plain
asyncio is used and everything works the same.

Plain daphne stops at once on SIGTERM: running replies are abandoned unsaved and
their conversations stay busy. Here SIGTERM (or Ctrl-C) first closes the listening
ports, so the proxy sends new connections to another process and /healthz answers
503, then runs conversations.shutdown.drain (CHAT_DRAIN_SECONDS for running replies
to finish, the rest saved as interrupted), then stops. A second signal cuts the wait
short: what still runs is interrupted and saved at once.

A socket whose reader stopped reading is dropped once CHAT_SOCKET_BUFFER_BYTES wait
unsent for it, so one stalled client cannot make the process buffer without limit.

What start-up built (Django, the app, its URLs and views) is left out of garbage collection, and young
objects are collected less often (`settle_memory`): a full collection stopped a burst of 200 sends for
about 0.1 s, and collections took about a tenth of the CPU of relaying 200 replies.
"""

import asyncio
import gc
import logging
import signal

log = logging.getLogger("chatsite.server")

SOCKET_TOO_SLOW = 4008  # the page reconnects after it, and catches up
# Frames a socket may send, as a multiple of CHAT_FRAMES_PER_SECOND (the consumer's own, politer limit),
# and how many over it before the connection is cut.
FLOOD_RATE_FACTOR = 2
FLOOD_DROP_AFTER = 200


# Collect the youngest objects after this many more allocations than frees (Python's default is 700): most of what
# a reply allocates is freed at once by reference counting, and each collection scans what is still alive.
GC_YOUNG_THRESHOLD = 50_000
GC_OLDER_THRESHOLDS = (20, 20)


def settle_memory() -> None:
    """Once the app is loaded: import every view now, collect, freeze what is left, and collect young objects less
    often. bench/scale_load.py's 200 replies (a, SQLite) spent 274 ms in collections, one pause of 116 ms in the
    sends, before; 49 ms in two collections of about 25 ms after."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the URLconf imports every view, otherwise on the first request
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *GC_OLDER_THRESHOLDS)


def _buffered_bytes(transport) -> int:
    """What Twisted holds for a TCP connection that the kernel would not take yet (0 if it cannot tell)."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except AttributeError:  # another kind of transport (TLS): not bounded here
        return 0


def main() -> None:
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

    class BoundedWebSocketProtocol(WebSocketProtocol):
        """A socket whose reader stopped reading is dropped once this much waits unsent for it, instead of
        buffering without limit until the ping timeout (its page reconnects and catches up with ?since).

        And a socket that floods frames is cut off here, before its frames are queued for the app: a
        flood parsed and queued faster than the consumer can refuse it starved every other connection
        of the process (bench/flood.py). The consumer keeps the politer limit (an error, then 4429)."""

        def onMessage(self, payload, isBinary):
            from conversations.throttle import FrameBudget

            budget = getattr(self, "frame_budget", None) or FrameBudget(rate_factor=FLOOD_RATE_FACTOR)
            self.frame_budget = budget
            if budget.take():
                super().onMessage(payload, isBinary)
            elif budget.dropped > FLOOD_DROP_AFTER and self.state != self.STATE_CLOSED:
                from conversations import clients, throttle

                address = clients.client_address(self.transport.getPeer().host, self.http_headers.get("x-forwarded-for", ""))
                log.warning("Dropping a socket from %s that floods frames (%d over its budget)", address, budget.dropped)
                asyncio.get_running_loop().run_in_executor(None, throttle.penalise, address)
                self.dropConnection(abort=True)

        def serverSend(self, content, binary=False):
            from django.conf import settings

            waiting = _buffered_bytes(self.transport)
            if waiting > settings.CHAT_SOCKET_BUFFER_BYTES:
                log.warning("Dropping a socket that stopped reading (%d bytes waiting)", waiting)
                self.sendClose(code=SOCKET_TOO_SLOW, reason="Too far behind; reconnect to catch up.")
                self.transport.abortConnection()
                return
            super().serverSend(content, binary)

    # daphne builds its websocket protocols from this factory attribute; the subclass only adds the bound.
    WebSocketFactory.protocol = BoundedWebSocketProtocol

    class DrainingServer(Server):
        def run(self) -> None:
            from twisted.internet import reactor

            self.ports = []
            self.drain_task = None
            reactor.callWhenRunning(self.handle_signals)
            settle_memory()
            super().run()

        def listen_success(self, port) -> None:
            self.ports.append(port)
            super().listen_success(port)

        def handle_signals(self) -> None:
            # Installed once the reactor runs, so these replace Twisted's own (which stop at once).
            signal.signal(signal.SIGTERM, self.on_signal)
            signal.signal(signal.SIGINT, self.on_signal)

        def on_signal(self, signum, frame) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(self.begin_drain if self.drain_task is None else self.hurry)

        def begin_drain(self) -> None:
            from django.conf import settings
            from twisted.internet import reactor

            from conversations import shutdown

            log.warning("Shutting down: no new connections; draining for up to %.0f s", settings.CHAT_DRAIN_SECONDS)
            for port in self.ports:
                port.stopListening()
            self.drain_task = asyncio.ensure_future(shutdown.drain(settings.CHAT_DRAIN_SECONDS))
            self.drain_task.add_done_callback(lambda _: reactor.stop())

        def hurry(self) -> None:
            from conversations.streaming import upkeep

            log.warning("Second signal: interrupting the replies still running")
            for generation in upkeep.live():
                generation.interrupt()

    CommandLineInterface.server_class = DrainingServer
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
