"""A connection's state, with the moves it may make (as Starlette's `WebSocketState`).

    OPEN ──close()──> CLOSING ──(peer gone, abort)──> CLOSED
      └──────────(peer gone, abort)─────────────────────┘

There is no CONNECTING: an adapter is made only once the handshake is done. OPEN:
frames go both ways. CLOSING: this side sent its close frame; nothing more is written
or handed to the app, and the socket is dropped once the peer answers or the grace
time ends. CLOSED: the socket is gone (or going): nothing more happens. A state never
comes back, and a move the diagram lacks raises `ConnectionStateError`.
"""
import enum


class ConnectionState(enum.Enum):
    OPEN = 'open'
    CLOSING = 'closing'
    CLOSED = 'closed'


OPEN = ConnectionState.OPEN
CLOSING = ConnectionState.CLOSING
CLOSED = ConnectionState.CLOSED

_MOVES = {
    OPEN: frozenset((CLOSING, CLOSED)),
    CLOSING: frozenset((CLOSED,)),
    CLOSED: frozenset(),
}


class ConnectionStateError(RuntimeError):
    """A move the state diagram does not have (a bug in the caller)."""


def checked_move(current: ConnectionState, new: ConnectionState) -> ConnectionState:
    """`new` when a connection in `current` may move there; else ConnectionStateError."""
    if new not in _MOVES[current]:
        raise ConnectionStateError('a connection cannot go from {} to {}'.format(
            current.value, new.value))
    return new
