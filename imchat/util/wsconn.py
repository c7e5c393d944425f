"""WebSocket connections behind one small interface, on either server imchat runs on.

Production runs gevent's pywsgi with gevent-websocket's handler, which upgrades the
request itself and puts the socket in `environ['wsgi.websocket']`. gevent-websocket
writes with `sendall`, so large frames leave whole; its pure-Python frame reader is
slow (a per-byte unmasking loop and UTF-8 validator), so `GeventConnection` reads
frames itself with a big-integer XOR and `bytes.decode`.

The Flask dev server (werkzeug) has no such key; there `SimpleConnection` upgrades with
simple-websocket, the engine under flask-sock. A flask-sock route cannot serve both
servers (it does not work under gevent-websocket's handler), and simple-websocket writes
with `socket.send`, which under gevent may write only part of a frame, so its socket is
wrapped to write with `sendall`.

Every connection: `receive()` returns the next text (str) or binary (bytes) message, or
None once the peer is gone; `send(frame)` writes one `OutgoingFrame`; `ping()`;
`close(code, reason)` says goodbye politely; `abort()` drops the TCP connection at once
(for a peer that stopped reading, whose socket would block a polite close).
"""
import socket
import struct
import threading

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
# Application codes (4000-4999 are free for applications): the HTTP status they mirror.
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
# The user opened more WebSockets than IMCHAT_WS_PER_USER: this, their oldest, is closed.
CLOSE_TOO_MANY = 4429


def frame_header(opcode, length):
    """The header of a final, unmasked frame (what a server sends)."""
    first = 0x80 | opcode
    if length < 126:
        return struct.pack('!BB', first, length)
    if length < 1 << 16:
        return struct.pack('!BBH', first, 126, length)
    return struct.pack('!BBQ', first, 127, length)


def unmask(payload, mask):
    """XOR a client frame's payload with its 4-byte mask, at C speed via big integers."""
    n = len(payload)
    if not n:
        return b''
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, 'little') ^ int.from_bytes(key, 'little')).to_bytes(
        n, 'little')


def _no_delay(sock):
    """Send small frames at once. With Nagle's algorithm a chat message waits for the
    peer to acknowledge the previous one, and delayed ACKs make that up to 40 ms."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not TCP (a Unix socket behind a proxy): nothing to tune


class OutgoingFrame:
    """One text message encoded once; the same bytes go to every recipient."""

    __slots__ = ('payload', '_frame')

    def __init__(self, payload):
        self.payload = payload
        self._frame = None

    @property
    def frame(self):
        if self._frame is None:
            self._frame = frame_header(OPCODE_TEXT, len(self.payload)) + self.payload
        return self._frame


def close_payload(code, reason):
    data = (reason or '').encode('utf-8')[:120]
    return struct.pack('!H', code) + data


class GeventConnection:
    """A connection upgraded by gevent-websocket, read and written frame by frame here."""

    # This side sends pings and expires silent peers itself.
    keeps_alive_itself = False

    def __init__(self, websocket, max_message, on_pong=None):
        self.websocket = websocket
        self._read = websocket.raw_read
        self._sendall = websocket.raw_write
        self._socket = websocket.handler.socket
        _no_delay(self._socket)
        self.max_message = max_message
        self.on_pong = on_pong
        self.closed = False
        # Pongs and close replies come from the reading greenlet while the writer greenlet
        # sends messages: gevent forbids two greenlets writing one socket at once.
        self._write_lock = threading.Lock()

    def receive(self):
        try:
            return self._read_message()
        except (OSError, EOFError, ValueError):
            self.closed = True
            return None

    def _read_exact(self, n):
        data = self._read(n) if n else b''
        if len(data) != n:
            raise EOFError('connection closed mid-frame')
        return data

    def _read_message(self):
        opcode = None
        parts = []
        size = 0
        while not self.closed:
            first, second = self._read_exact(2)
            fin, frame_opcode = first & 0x80, first & 0x0F
            if first & 0x70 or not second & 0x80:
                # Reserved bits set, or an unmasked client frame: RFC 6455 says fail.
                return self._fail(CLOSE_PROTOCOL_ERROR, 'malformed frame')
            length = second & 0x7F
            if length == 126:
                length = struct.unpack('!H', self._read_exact(2))[0]
            elif length == 127:
                length = struct.unpack('!Q', self._read_exact(8))[0]
            mask = self._read_exact(4)
            if frame_opcode >= OPCODE_CLOSE:
                if length > 125 or not fin:
                    return self._fail(CLOSE_PROTOCOL_ERROR, 'malformed control frame')
                payload = unmask(self._read_exact(length), mask)
                if frame_opcode == OPCODE_PING:
                    self._write(frame_header(OPCODE_PONG, len(payload)) + payload)
                elif frame_opcode == OPCODE_PONG:
                    if self.on_pong:
                        self.on_pong()
                elif frame_opcode == OPCODE_CLOSE:
                    code = CLOSE_NORMAL
                    if len(payload) >= 2:
                        code = struct.unpack('!H', payload[:2])[0]
                    # Echo the peer's code, as RFC 6455 asks (never a reserved one).
                    self.close(CLOSE_NORMAL if code in (1005, 1006, 1015) else code)
                    return None
                else:
                    return self._fail(CLOSE_PROTOCOL_ERROR, 'unknown opcode')
                continue
            if frame_opcode == OPCODE_CONTINUATION:
                if opcode is None:
                    return self._fail(CLOSE_PROTOCOL_ERROR, 'continuation without a start')
            elif frame_opcode in (OPCODE_TEXT, OPCODE_BINARY):
                if opcode is not None:
                    return self._fail(CLOSE_PROTOCOL_ERROR, 'new message inside a fragmented one')
                opcode = frame_opcode
            else:
                return self._fail(CLOSE_PROTOCOL_ERROR, 'unknown opcode')
            size += length
            if size > self.max_message:
                # Far past any message we accept: do not read it into memory.
                return self._fail(CLOSE_TOO_BIG, 'message too large')
            parts.append(unmask(self._read_exact(length), mask))
            if fin:
                data = b''.join(parts)
                if opcode == OPCODE_BINARY:
                    return data
                try:
                    return data.decode('utf-8')
                except UnicodeDecodeError:
                    return self._fail(CLOSE_INVALID_DATA, 'text frame is not valid UTF-8')
        return None

    def _fail(self, code, reason):
        self.close(code, reason)
        return None

    def _write(self, data):
        with self._write_lock:
            self._sendall(data)

    def send(self, outgoing):
        self._write(outgoing.frame)

    def ping(self):
        self._write(frame_header(OPCODE_PING, 0))

    def close(self, code=CLOSE_NORMAL, reason=''):
        if self.closed:
            return
        self.closed = True
        payload = close_payload(code, reason)
        try:
            self._write(frame_header(OPCODE_CLOSE, len(payload)) + payload)
        except OSError:
            pass
        self.websocket.closed = True

    def abort(self):
        self.closed = True
        self.websocket.closed = True
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _SendAllSocket:
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
            self._sendall_sock = _SendAllSocket(value) if value is not None else None

    return SendAllServer


class SimpleConnection:
    """A connection upgraded by simple-websocket (the Flask dev server's path)."""

    # simple-websocket pings on its own thread and closes a peer that stops answering.
    keeps_alive_itself = True

    def __init__(self, environ, max_message, ping_interval):
        from simple_websocket import ConnectionClosed

        self._closed_error = ConnectionClosed
        self.server = _simple_server_class()(environ, max_message_size=max_message,
                                             ping_interval=ping_interval)
        self.closed = False

    def receive(self):
        try:
            return self.server.receive()
        except self._closed_error:
            self.closed = True
            return None

    def send(self, outgoing):
        try:
            self.server.send(outgoing.payload.decode('utf-8'))
        except self._closed_error:
            raise OSError('connection closed')

    def ping(self):
        pass

    def close(self, code=CLOSE_NORMAL, reason=''):
        if self.closed:
            return
        self.closed = True
        try:
            self.server.close(reason=code, message=reason)
        except (self._closed_error, OSError):
            pass

    def abort(self):
        self.closed = True
        self.server.connected = False
        try:
            self.server.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.event.set()


def open_connection(environ, max_message, ping_interval, on_pong=None):
    """Wrap the request's WebSocket, or return None when it is not a WebSocket request."""
    websocket = environ.get('wsgi.websocket')
    if websocket is not None:
        return GeventConnection(websocket, max_message, on_pong)
    if environ.get('HTTP_UPGRADE', '').lower() != 'websocket':
        return None
    return SimpleConnection(environ, max_message, ping_interval)
