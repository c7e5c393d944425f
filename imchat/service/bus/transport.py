"""What the bus asks of a transport: move bytes between nodes (connect, publish,
listen, reconnect), nothing about messages or their order. Two implement it:
bus.redis and bus.udp. See docs/architecture.md.
"""
import logging
from typing import Callable, Iterable, List, Protocol, Sequence, Tuple

from imchat.service.bus.faults import Dependency
from imchat.service.bus.kinds import Message, Range

log = logging.getLogger(__name__)

# Reconnect backoff, seconds.
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0

# What a transport hands the bus: one received line (a kind's JSON object, decoded).
Receive = Callable[[dict], None]


class Transport(Protocol):
    # True when a node hears a channel only once subscribed (Redis); False when every
    # node hears everything (UDP).
    needs_subscriptions: bool
    # Whether the other nodes can be reached now (the bus reports it at /health).
    up: bool

    def describe(self) -> str:
        """A line for the log: where it connects."""

    def start(self, receive: Receive, channels: Callable[[], List[str]]) -> None:
        """Connect and listen in a greenlet of its own, handing each line to `receive`;
        on (re)connecting, subscribe to `channels()`."""

    def stop(self) -> None:
        """Disconnect; nothing is received afterwards."""

    def send_messages(self, items: Sequence[Tuple[List[str], Message]],
                      ranges: Iterable[Range]) -> None:
        """Publish each message on its channels, then the ranges they cover (a range is
        never heard before its messages). Raises when the bus is down."""

    def send(self, kind, channels: Sequence[str]) -> None:
        """Publish one line of another kind on `channels`. Raises when the bus is down."""

    def subscribe(self, channels: List[str]) -> None: ...

    def unsubscribe(self, channels: List[str]) -> None: ...

    def wait_subscribed(self, channels: List[str], timeout: float) -> None:
        """Return once this node hears `channels` (at most `timeout` seconds; at once
        when the bus is down)."""


def announce(transport: Transport, kind, sending: Dependency,
             channels: Sequence[str] = ('all',)) -> None:
    """Send a line that may be lost (a push, a logout, a relayed event): a bus that is
    down costs one line in the log for the whole outage (`sending`), not the caller's
    request."""
    try:
        transport.send(kind, channels)
    except Exception as error:
        sending.failed('sending ' + kind.NAME, error)
    else:
        sending.answered()
