"""A connection upgraded by gevent-websocket (the production server), read and
written frame by frame here.

gevent-websocket writes with `sendall`, so large frames leave whole, but its
pure-Python frame reader is slow (a per-byte unmasking loop and UTF-8 validator), so
`GeventConnection` reads frames itself with a big-integer XOR (`codec.unmask`) and
`bytes.decode`, and writes through `ParkedWrites`.
"""
import socket
import struct
from typing import Union

import gevent

from imchat.transport.codec import (CLOSE_INVALID_DATA, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR,
                                    CLOSE_RESERVED, CLOSE_TOO_BIG, OPCODE_BINARY,
                                    OPCODE_CLOSE, OPCODE_CONTINUATION, OPCODE_PING,
                                    OPCODE_PONG, OPCODE_TEXT, RawFrame, close_code,
                                    close_payload, control_frame, unmask)
from imchat.transport.readers import readers
from imchat.transport.state import CLOSED, CLOSING, OPEN
from imchat.transport.writes import ParkedWrites

# Bytes asked of the socket at once when reading frames.
READ_SIZE = 65536

# What a connection read in the background got when the frames there were all control
# frames (a ping or pong), already dealt with: no message for the session.
CONTROL_ONLY = object()


def _no_delay(sock):
    """Send small frames at once. With Nagle's algorithm a chat message waits for the
    peer to acknowledge the previous one, and delayed ACKs make that up to 40 ms."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not TCP (a Unix socket behind a proxy): nothing to tune


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


class GeventConnection(ParkedWrites):
    """A connection upgraded by gevent-websocket.

    Once the client is set up, `read_in_background(session)` lets the request end: the
    connection then takes the socket from the server and has no greenlet while it waits.
    A read watcher starts one when data comes; it reads and hands over every message
    there is, in order, and ends when the socket has nothing more. An idle connection
    is then these objects and its socket, with no stack and none of the request's
    objects (environ, Flask's request context, the handler, gevent-websocket's
    WebSocket, so `websocket` is None from then on), which cost most of its memory
    before.
    """

    # This side sends pings and expires silent peers itself.
    keeps_alive_itself = False

    def __init__(self, websocket, max_message: int, on_pong=None):
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

    def receive(self) -> Union[str, bytes, None]:
        try:
            return self._read_message()
        except (OSError, EOFError, ValueError):
            self._end(CLOSED)
            return None

    def read_in_background(self, session) -> bool:
        """Let the request's greenlet end; from now on call `session.read(message)` for
        each message in order (with None once the peer is gone) until it returns False,
        then `session.end()` once, then close the socket. False (and nothing changed)
        where the server cannot hand its socket over (gevent-websocket's own handler;
        TLS), or the connection is no longer OPEN."""
        take_socket = getattr(self.websocket.handler, 'take_socket', None)
        if take_socket is None:
            return False
        # The writer greenlet writes to the socket about to be replaced: let it finish
        # (a stalled peer is cut off at the send deadline).
        while self._writer is not None:
            self._writer.join()
        if self.state is not OPEN:
            return False
        taken = take_socket()
        if taken is None:
            return False
        self._socket, self._on_socket_closed = taken
        self._release_websocket()
        self.websocket = None
        self._session = session
        self._watcher = gevent.get_hub().loop.io(self._socket.fileno(), 1)
        if self._pos < len(self._buf):
            gevent.spawn(self._read_available)  # the client's first frames came early
        else:
            self._watcher.start(self._readable)
        return True

    def _release_websocket(self):
        """Tell gevent-websocket, while it still holds the request, that this side is
        done with the socket: it would otherwise write a close frame of its own when
        the request ends."""
        if self.websocket is not None:
            self.websocket.closed = True

    def _readable(self):
        # In the event loop, which must not block: reading and handling may, so one
        # greenlet does it, and the watcher waits until that greenlet has read all.
        self._watcher.stop()
        readers.start(self._read_available)

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
            self._end(CLOSED)
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
        while self.state is OPEN:
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
                    self._write(control_frame(OPCODE_PONG, payload))
                elif frame_opcode == OPCODE_PONG:
                    if self.on_pong:
                        self.on_pong()
                elif frame_opcode == OPCODE_CLOSE:
                    code = close_code(payload)
                    # Echo the peer's code, as RFC 6455 asks (never a reserved one).
                    self.close(CLOSE_NORMAL if code in CLOSE_RESERVED else code)
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

    def _write(self, frame: RawFrame):
        if self.state is not OPEN:
            raise OSError('connection closed')
        self.send_frames([frame])

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

    def ping(self) -> None:
        self._write(control_frame(OPCODE_PING))

    def close(self, code: int = CLOSE_NORMAL, reason: str = '') -> None:
        """Say goodbye with `code`: OPEN -> CLOSING (nothing from any other state)."""
        if self.state is not OPEN:
            return
        self._write(control_frame(OPCODE_CLOSE, close_payload(code, reason)))
        self._end(CLOSING)
        self._release_websocket()

    def abort(self) -> None:
        """Drop the TCP connection at once: any state -> CLOSED."""
        self._end(CLOSED)
        self._release_websocket()
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
