"""The WebSocket plumbing that the server libraries get wrong under gevent."""
import os
import socket

import gevent

from imchat.transport.codec import OutgoingFrame, frame_header, unmask
from imchat.transport.simple_adapter import SendAllSocket


def test_unmask_matches_the_rfc_byte_loop():
    mask = b'\x37\xfa\x21\x3d'
    for size in (0, 1, 3, 4, 5, 125, 126, 65535, 70001):
        payload = os.urandom(size)
        expected = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert unmask(payload, mask) == expected


def test_frame_header_lengths():
    assert frame_header(0x1, 5) == b'\x81\x05'
    assert frame_header(0x1, 126) == b'\x81\x7e\x00\x7e'
    assert frame_header(0x1, 70000) == b'\x81\x7f' + (70000).to_bytes(8, 'big')


def test_outgoing_frame_is_encoded_once():
    outgoing = OutgoingFrame(b'{"a":1}')
    assert outgoing.frame is outgoing.frame
    assert outgoing.frame == b'\x81\x07{"a":1}'


def test_send_writes_a_large_frame_whole_to_a_slow_reader():
    """simple-websocket calls sock.send() once per frame; under gevent a plain send on a
    full socket writes part of it and the rest is lost. The wrapper must write it all."""
    writer, reader = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    data = os.urandom(2 * 1024 * 1024)
    received = bytearray()

    def read_slowly():
        while len(received) < len(data):
            chunk = reader.recv(65536)
            if not chunk:
                return
            received.extend(chunk)
            gevent.sleep(0.001)
    slow = gevent.spawn(read_slowly)
    assert SendAllSocket(writer).send(data) == len(data)
    slow.join(timeout=30)
    assert bytes(received) == data
    writer.close()
    reader.close()


def test_plain_send_does_cut_under_these_conditions():
    """The condition the wrapper exists for, shown on the bare socket."""
    writer, reader = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sent = writer.send(os.urandom(2 * 1024 * 1024))
    assert sent < 2 * 1024 * 1024
    writer.close()
    reader.close()
