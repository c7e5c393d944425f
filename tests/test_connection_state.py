"""A WebSocket connection's state (imchat.transport.state): OPEN, CLOSING, CLOSED, with
checked moves, on both adapters, each driven over a real socket pair."""
import base64
import os
import socket
import struct

import pytest

from imchat.transport.codec import OPCODE_CLOSE, OutgoingFrame
from imchat.transport.gevent_adapter import GeventConnection
from imchat.transport.simple_adapter import SimpleConnection
from imchat.transport.state import (CLOSED, CLOSING, OPEN, ConnectionState,
                                    ConnectionStateError, checked_move)


class _Handler:
    def __init__(self, sock):
        self.socket = sock
        self.rfile = sock.makefile('rb')


class _GeventWebSocket:
    """What gevent-websocket hands the app: the handler holding the socket."""

    def __init__(self, sock):
        self.handler = _Handler(sock)
        self.closed = False


def _gevent_connection():
    server_side, peer = socket.socketpair()
    return GeventConnection(_GeventWebSocket(server_side), 1 << 20), peer


def _simple_connection():
    server_side, peer = socket.socketpair()
    key = base64.b64encode(os.urandom(16)).decode()
    environ = {'werkzeug.socket': server_side, 'HTTP_HOST': 'localhost',
               'HTTP_UPGRADE': 'websocket', 'HTTP_CONNECTION': 'Upgrade',
               'HTTP_SEC_WEBSOCKET_KEY': key, 'HTTP_SEC_WEBSOCKET_VERSION': '13'}
    conn = SimpleConnection(environ, 1 << 20, None)
    response = b''
    while b'\r\n\r\n' not in response:
        response += peer.recv(4096)
    assert response.startswith(b'HTTP/1.1 101')
    return conn, peer


ADAPTERS = {'gevent': _gevent_connection, 'simple': _simple_connection}


def _masked(opcode, payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def _read_frame(peer):
    """The next frame the server wrote: (opcode, payload)."""
    head = _recv_exact(peer, 2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack('!H', _recv_exact(peer, 2))[0]
    return head[0] & 0x0F, _recv_exact(peer, length)


def _recv_exact(peer, n):
    data = b''
    while len(data) < n:
        chunk = peer.recv(n - len(data))
        assert chunk, 'the server closed the socket mid-frame'
        data += chunk
    return data


@pytest.fixture(params=sorted(ADAPTERS))
def connection(request):
    conn, peer = ADAPTERS[request.param]()
    peer.settimeout(10)
    yield conn, peer
    conn.abort()
    peer.close()


def test_every_move_the_diagram_lacks_is_refused():
    allowed = {(OPEN, CLOSING), (OPEN, CLOSED), (CLOSING, CLOSED)}
    for current in ConnectionState:
        for new in ConnectionState:
            if (current, new) in allowed:
                assert checked_move(current, new) is new
            else:
                with pytest.raises(ConnectionStateError):
                    checked_move(current, new)


def test_a_closed_connection_cannot_be_reopened(connection):
    conn, _peer = connection
    conn.abort()
    with pytest.raises(ConnectionStateError):
        conn.state = checked_move(conn.state, OPEN)
    assert conn.state is CLOSED


def test_a_new_connection_is_open_and_writes(connection):
    conn, peer = connection
    assert conn.state is OPEN
    conn.send(OutgoingFrame(b'{"cmd":0}'))
    assert _read_frame(peer) == (0x1, b'{"cmd":0}')


def test_close_from_open_sends_one_close_frame_and_is_closing(connection):
    conn, peer = connection
    conn.close(4401, 'bad token')
    assert conn.state is CLOSING
    assert _read_frame(peer) == (OPCODE_CLOSE, struct.pack('!H', 4401) + b'bad token')


def test_close_from_closing_sends_nothing_more_and_writes_are_dropped(connection):
    conn, peer = connection
    conn.close(1001)
    conn.close(1000)
    conn.send(OutgoingFrame(b'{"late":1}'))
    assert conn.state is CLOSING
    assert _read_frame(peer) == (OPCODE_CLOSE, struct.pack('!H', 1001))
    conn.abort()
    assert peer.recv(100) == b''  # the socket ended: no second close, no late frame


def test_close_from_closed_does_nothing(connection):
    conn, peer = connection
    conn.abort()
    conn.close(1000)
    assert conn.state is CLOSED
    assert peer.recv(100) == b''


def test_abort_from_each_state_ends_closed(connection):
    conn, _peer = connection
    conn.close()
    assert conn.state is CLOSING
    conn.abort()
    assert conn.state is CLOSED
    conn.abort()
    assert conn.state is CLOSED


def test_a_peer_that_goes_away_leaves_the_connection_closed(connection):
    conn, peer = connection
    peer.shutdown(socket.SHUT_RDWR)
    assert conn.receive() is None
    assert conn.state is CLOSED


def test_the_peers_close_is_echoed_and_reading_stops():
    conn, peer = _gevent_connection()
    peer.settimeout(10)
    try:
        peer.sendall(_masked(OPCODE_CLOSE, struct.pack('!H', 1001)))
        assert conn.receive() is None
        assert conn.state is CLOSING
        assert _read_frame(peer) == (OPCODE_CLOSE, struct.pack('!H', 1001))
    finally:
        conn.abort()
        peer.close()


def test_gevent_websocket_is_told_once_this_side_closes():
    """Else gevent-websocket writes a close frame of its own when the request ends."""
    conn, peer = _gevent_connection()
    try:
        websocket = conn.websocket
        conn.close()
        assert websocket.closed
    finally:
        conn.abort()
        peer.close()
