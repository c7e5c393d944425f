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
None once the peer is gone; `send_frames(frames, high)` writes a list of `OutgoingFrame`s
(`send(frame)` one); `ping()`; `close(code, reason)` says goodbye politely; `abort()`
drops the TCP connection at once (for a peer that stopped reading, whose socket would
block a polite close).

Writes never block the caller. While the socket accepts, frames are written in place,
all the frames handed over at once in one `send` (no greenlet, no timer). When the
kernel's buffer is full, the rest is parked and one short-lived greenlet finishes it;
every wait for the socket to take more has a deadline (`send_timeout` seconds), and a
connection that misses it, or parks more than `max_pending` frames, is cut off
(`on_stalled(reason)`): a peer that stopped reading can hold nothing up.
"""
import socket
import struct
import threading

import gevent
from gevent.hub import Waiter

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
# The application's own codes (4000-4999) are imchat.protocol's.

# Bytes asked of the socket at once when reading frames.
READ_SIZE = 65536

# Greenlets kept waiting to read the next connection with data (_Readers): enough for
# the connections that get frames at the same moment under load; each costs a Python
# data stack (16 KB) while it waits.
SPARE_READERS = 32

# What a connection read in the background got when the frames there were all control
# frames (a ping or pong), already dealt with: no message for the session.
CONTROL_ONLY = object()


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


def _take_buffered(rfile, sock):
    """What the handshake's buffered reader read past the request (a client may send
    its first frame at once), without waiting; then close that reader, which frees its
    buffer and leaves the socket open."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        data = rfile.read1(READ_SIZE) or b''
    except OSError:
        data = b''
    finally:
        sock.settimeout(timeout)
    rfile.close()
    return data


class _Stalled(Exception):
    """A parked write waited longer than the send deadline."""


class _ParkedWrites:
    """Write in place while the socket takes it; park the rest for one greenlet.

    Subclasses provide `_send_now(frames)` (write without waiting; returns what is
    left, or None) and `_send_waiting(item)` (write one parked item, waiting for the
    socket, at most `send_timeout` seconds for each step of progress)."""

    # Frames parked at most, and seconds a parked write may wait for the peer to read;
    # the owner (the hub's Client) sets both, with `on_stalled(reason)` for a cut-off.
    max_pending = 0
    send_timeout = 0
    on_stalled = None

    def _init_writes(self):
        self.closed = False
        self.written_high = 0  # highest message id written to the socket
        self._parked = None  # items waiting for the writer greenlet
        self._parked_frames = 0
        self._parked_high = 0
        self._writer = None

    def send(self, outgoing):
        self.send_frames([outgoing])

    def send_frames(self, frames, high=0, counted=True):
        """Write these frames (in order, after anything parked); `high` is the highest
        message id among them. Never blocks. Frames not `counted` do not count towards
        `max_pending` (a page of backlog, whose sender waits for it to be written)."""
        if self.closed:
            return
        if self._writer is None:
            try:
                rest = self._send_now(frames)
            except OSError:
                self.abort()
                return
            if rest is None:
                if high:
                    self.written_high = high
                return
            self._parked = [rest]
            self._writer = gevent.spawn(self._drain)
        else:
            self._parked.append(self._parked_item(frames))
        if counted:
            self._parked_frames += len(frames)
        if high:
            self._parked_high = high
        if self.max_pending and self._parked_frames > self.max_pending:
            self._stall('the connection stopped reading')

    def _stall(self, reason):
        if self.on_stalled is not None:
            self.on_stalled(reason)
        self.abort()

    def _drain(self):
        try:
            while self._parked:
                items, high = self._parked, self._parked_high
                self._parked, self._parked_frames = [], 0
                for item in items:
                    self._send_waiting(item)
                if high:
                    self.written_high = high
        except _Stalled:
            self._stall('the connection did not read for {} s'.format(self.send_timeout))
        except OSError:
            self.abort()
        finally:
            self._parked = None
            self._writer = None

    def _deadline(self):
        return gevent.Timeout(self.send_timeout or None, _Stalled)

    def read_in_background(self, session):
        """False: this connection is read in the request's own greenlet (see
        GeventConnection)."""
        return False

    def wait_written(self):
        """Wait until nothing is parked (or the connection is cut off)."""
        writer = self._writer
        if writer is not None:
            writer.join()


class _Readers:
    """The greenlets that read connections with data. A connection has one only while
    it reads; one that is done waits (up to SPARE_READERS of them) for the next
    connection with data, since a new greenlet for each burst of frames costs more
    than reading them (its Python data stack is mapped and touched anew: about 35 µs
    a burst on this machine, against a few for a switch)."""

    def __init__(self):
        self.spare = []

    def start(self, read):
        """Run `read()` in a spare greenlet or a new one. Only from the event loop."""
        if self.spare:
            self.spare.pop().switch(read)
        else:
            gevent.spawn(self._serve, read)

    def _serve(self, read):
        while read is not None:
            read()
            read = None
            if len(self.spare) < SPARE_READERS:
                waiter = Waiter()
                self.spare.append(waiter)
                read = waiter.get()


_readers = _Readers()


class GeventConnection(_ParkedWrites):
    """A connection upgraded by gevent-websocket, read and written frame by frame here.

    Once the client is set up, `read_in_background(session)` lets the request end: the
    connection then takes the socket from the server and has no greenlet while it waits.
    A read watcher starts one when data comes; it reads and hands over every message
    there is, in order, and ends when the socket has nothing more. An idle connection
    is then these objects and its socket, with no stack and none of the request's
    objects (environ, Flask's request context, the handler, gevent-websocket's
    WebSocket), which cost most of its memory before.
    """

    # This side sends pings and expires silent peers itself.
    keeps_alive_itself = False

    def __init__(self, websocket, max_message, on_pong=None):
        self.websocket = websocket
        self._socket = websocket.handler.socket
        # Frames are cut from a buffer filled by the socket's recv, which allocates only
        # once data is there: a waiting connection holds no read buffer.
        self._buf = _take_buffered(websocket.handler.rfile, self._socket)
        self._pos = 0
        # Whether the last read left the socket empty (it did not fill its buffer).
        self._drained = False
        _no_delay(self._socket)
        self.max_message = max_message
        self.on_pong = on_pong
        # While reading in the background: who gets the messages, the read watcher, and
        # what to call once the socket is closed (the server's count of connections).
        self._session = None
        self._watcher = None
        self._on_socket_closed = None
        self._init_writes()

    def receive(self):
        try:
            return self._read_message()
        except (OSError, EOFError, ValueError):
            self.closed = True
            return None

    def read_in_background(self, session):
        """Let the request's greenlet end; from now on call `session.read(message)` for
        each message in order (with None once the peer is gone) until it returns False,
        then `session.end()` once, then close the socket. False (and nothing changed)
        where the server cannot hand its socket over (gevent-websocket's own handler;
        TLS), or the connection is closed."""
        take_socket = getattr(self.websocket.handler, 'take_socket', None)
        if take_socket is None:
            return False
        # The writer greenlet writes to the socket about to be replaced: let it finish
        # (a stalled peer is cut off at the send deadline).
        while self._writer is not None:
            self._writer.join()
        if self.closed:
            return False
        taken = take_socket()
        if taken is None:
            return False
        self._socket, self._on_socket_closed = taken
        # gevent-websocket would otherwise write a close frame when the request ends.
        self.websocket.closed = True
        self.websocket = None
        self._session = session
        self._watcher = gevent.get_hub().loop.io(self._socket.fileno(), 1)
        if self._pos < len(self._buf):
            gevent.spawn(self._read_available)  # the client's first frames came early
        else:
            self._watcher.start(self._readable)
        return True

    def _readable(self):
        # In the event loop, which must not block: reading and handling may, so one
        # greenlet does it, and the watcher waits until that greenlet has read all.
        self._watcher.stop()
        _readers.start(self._read_available)

    def _read_available(self):
        over = True
        try:
            while True:
                message = self.receive()
                if message is not CONTROL_ONLY and not self._session.read(message):
                    break
                if not self._more_to_read():
                    over = False
                    self._watcher.start(self._readable)
                    return
        finally:
            if over:
                self._finish()

    def _more_to_read(self):
        """Whether a message may be waiting, without waiting for one: what is left of
        the buffer, else one read of what the socket has now (its end, or an error,
        counts: the next read meets it and ends the connection). After a read that did
        not fill its buffer the socket had no more: no read then (a failing one costs a
        system call and an exception a burst), the watcher tells if more came since."""
        if self._pos < len(self._buf):
            return True
        if not self._drained:
            try:
                # The plain socket under gevent's, which is non-blocking: gevent's own
                # would wait for data.
                data = self._socket._sock.recv(READ_SIZE)
            except BlockingIOError:
                pass
            except OSError:
                return True
            else:
                self._drained = len(data) < READ_SIZE
                self._buf, self._pos = data, 0
                return True
        self._buf, self._pos = b'', 0  # keep nothing while idle
        return False

    def _finish(self):
        session, self._session = self._session, None
        try:
            session.end()
        finally:
            self.closed = True
            self._watcher.close()
            self._socket.close()
            if self._on_socket_closed is not None:
                self._on_socket_closed()

    def _read_exact(self, n):
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            return self._buf[pos:end]
        return self._read_more(n)

    def _read_more(self, n):
        chunks = [self._buf[self._pos:]]
        have = len(chunks[0])
        while have < n:
            size = max(READ_SIZE, n - have)
            data = self._socket.recv(size)
            self._drained = len(data) < size
            if not data:
                raise EOFError('connection closed mid-frame')
            chunks.append(data)
            have += len(data)
        self._buf = b''.join(chunks)
        self._pos = n
        return self._buf[:n]

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
                if self._session is not None and not parts:
                    # Read in the background: a pong (the answer to every ping of the
                    # sweep) must not leave a greenlet waiting for the next frame.
                    return CONTROL_ONLY
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
            if self._pos == len(self._buf):
                self._buf, self._pos = b'', 0  # keep nothing while idle
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
        if self.closed:
            raise OSError('connection closed')
        self.send_frames([_RawFrame(data)])

    def _send_now(self, frames):
        data = frames[0].frame if len(frames) == 1 else b''.join([f.frame for f in frames])
        try:
            sent = self._socket.send(data, 0, 0.0)
        except BlockingIOError:
            sent = 0
        return None if sent == len(data) else memoryview(data)[sent:]

    @staticmethod
    def _parked_item(frames):
        return b''.join([f.frame for f in frames])

    def _send_waiting(self, data):
        view = memoryview(data)
        while view:
            with self._deadline():
                sent = self._socket.send(view)
            view = view[sent:]

    def ping(self):
        self._write(frame_header(OPCODE_PING, 0))

    def close(self, code=CLOSE_NORMAL, reason=''):
        if self.closed:
            return
        payload = close_payload(code, reason)
        self._write(frame_header(OPCODE_CLOSE, len(payload)) + payload)
        self.closed = True
        if self.websocket is not None:
            self.websocket.closed = True

    def abort(self):
        self.closed = True
        if self.websocket is not None:
            self.websocket.closed = True
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _RawFrame:
    """Bytes that are already a whole frame (a pong, a ping, a close)."""

    __slots__ = ('frame', 'payload')

    def __init__(self, frame):
        self.frame = frame
        self.payload = None


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


class SimpleConnection(_ParkedWrites):
    """A connection upgraded by simple-websocket (the Flask dev server's path). Its
    library writes with blocking calls, so every write goes to the parked greenlet."""

    # simple-websocket pings on its own thread and closes a peer that stops answering.
    keeps_alive_itself = True

    def __init__(self, environ, max_message, ping_interval):
        from simple_websocket import ConnectionClosed

        self._closed_error = ConnectionClosed
        self.server = _simple_server_class()(environ, max_message_size=max_message,
                                             ping_interval=ping_interval)
        self._init_writes()

    def receive(self):
        try:
            return self.server.receive()
        except self._closed_error:
            self.closed = True
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

    def ping(self):
        pass

    def close(self, code=CLOSE_NORMAL, reason=''):
        if self.closed:
            return
        # After what is parked, so every frame written before the close arrives.
        self.wait_written()
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
