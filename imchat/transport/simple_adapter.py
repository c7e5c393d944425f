"""A connection upgraded by simple-websocket (flask-sock's engine), under the Flask dev
server, where there is no gevent-websocket handler.

simple-websocket writes with `socket.send`, which under gevent may write only part of a
frame, so its socket is wrapped to write with `sendall` (`SendAllSocket`). Its library
writes with blocking calls, so every write goes to the parked greenlet
(`ParkedWrites`).
"""
import socket
import threading
from typing import List, Optional, Union

from imchat.transport.codec import CLOSE_NORMAL
from imchat.transport.state import CLOSED, CLOSING, OPEN
from imchat.transport.writes import ParkedWrites


class SendAllSocket:
    """A socket whose `send` writes everything, one writer at a time."""

    def __init__(self, sock):
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data):
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _simple_server_class():
    import simple_websocket

    class SendAllServer(simple_websocket.Server):
        @property
        def sock(self):
            return self._sendall_sock

        @sock.setter
        def sock(self, value):
            self._sendall_sock = SendAllSocket(value) if value is not None else None

    return SendAllServer


class SimpleConnection(ParkedWrites):
    """A connection upgraded by simple-websocket (the Flask dev server's path)."""

    # simple-websocket pings on its own thread and closes a peer that stops answering.
    keeps_alive_itself = True

    def __init__(self, environ, max_message: int, ping_interval: float,
                 subprotocols: Optional[List[str]] = None):
        from simple_websocket import ConnectionClosed

        self._closed_error = ConnectionClosed
        self.server = _simple_server_class()(environ, subprotocols=subprotocols,
                                             max_message_size=max_message,
                                             ping_interval=ping_interval)
        self._init_writes()

    def receive(self) -> Union[str, bytes, None]:
        try:
            return self.server.receive()
        except self._closed_error:
            self._end(CLOSED)
            return None

    def _send_now(self, frames):
        return [f.payload.decode('utf-8') for f in frames]

    @staticmethod
    def _parked_item(frames):
        return [f.payload.decode('utf-8') for f in frames]

    def _send_waiting(self, texts):
        for text in texts:
            with self._deadline():
                try:
                    self.server.send(text)
                except self._closed_error:
                    raise OSError('connection closed')

    def ping(self) -> None:
        pass

    def close(self, code: int = CLOSE_NORMAL, reason: str = '') -> None:
        """Say goodbye with `code`, after what is parked: OPEN -> CLOSING (nothing from
        any other state)."""
        if self.state is not OPEN:
            return
        # After what is parked, so every frame written before the close arrives.
        self.wait_written()
        self._end(CLOSING)
        try:
            self.server.close(reason=code, message=reason)
        except (self._closed_error, OSError):
            pass

    def abort(self) -> None:
        """Drop the TCP connection at once: any state -> CLOSED."""
        self._end(CLOSED)
        self.server.connected = False
        try:
            self.server.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.event.set()
