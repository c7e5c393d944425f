"""WebSocket connections behind one small interface, on either server imchat runs on.

Production runs gevent's pywsgi with gevent-websocket's handler, which upgrades the
request itself and puts the socket in `environ['wsgi.websocket']`: `GeventConnection`
(`gevent_adapter`). The Flask dev server (werkzeug) has no such key; there
`SimpleConnection` (`simple_adapter`) upgrades with simple-websocket, the engine under
flask-sock. A flask-sock route cannot serve both servers (it does not work under
gevent-websocket's handler).

Every connection: `receive()` returns the next text (str) or binary (bytes) message, or
None once the peer is gone; `send_frames(frames, high)` writes a list of `OutgoingFrame`s
(`send(frame)` one) without ever blocking (`writes`); `ping()`; `close(code, reason)`
says goodbye politely; `abort()` drops the TCP connection at once (for a peer that
stopped reading, whose socket would block a polite close). `state` is OPEN, CLOSING or
CLOSED (`state`).

- `codec`: RFC 6455 opcodes, close codes and frame bytes (pure);
- `state`: the connection state and its checked moves;
- `writes`: in-place writes, parked writes and the send deadline, shared by both adapters;
- `readers`: the greenlets that read connections in the background;
- `gevent_adapter`, `simple_adapter`: the two servers' connections (`Connection`).
"""
from typing import Callable, List, Optional, Protocol, Union

from imchat.transport.gevent_adapter import GeventConnection
from imchat.transport.simple_adapter import SimpleConnection
from imchat.transport.state import ConnectionState


class Connection(Protocol):
    """What the hub and ctrl/chat hold: either adapter."""

    state: ConnectionState
    written_high: int
    # Set by the owner: frames parked at most, the send deadline, who hears a cut-off.
    max_pending: int
    send_timeout: float
    on_stalled: Optional[Callable[[str], None]]
    # True where the library pings and expires silent peers (simple-websocket).
    keeps_alive_itself: bool

    def receive(self) -> Union[str, bytes, None]: ...

    def send(self, outgoing) -> None: ...

    def send_frames(self, frames: List, high: int = 0, counted: bool = True) -> None: ...

    def wait_written(self) -> None: ...

    def read_in_background(self, session) -> bool: ...

    def ping(self) -> None: ...

    def close(self, code: int = ..., reason: str = '') -> None: ...

    def abort(self) -> None: ...


def open_connection(environ, max_message: int, ping_interval: float,
                    on_pong: Optional[Callable[[], None]] = None,
                    subprotocols: Optional[List[str]] = None) -> Optional[Connection]:
    """Wrap the request's WebSocket, or return None when it is not a WebSocket request.
    `subprotocols`: those the upgrade may answer (under gevent-websocket the server's
    handler has answered already)."""
    websocket = environ.get('wsgi.websocket')
    if websocket is not None:
        return GeventConnection(websocket, max_message, on_pong)
    if environ.get('HTTP_UPGRADE', '').lower() != 'websocket':
        return None
    return SimpleConnection(environ, max_message, ping_interval, subprotocols)
