"""How the hub writes to WebSockets: merged writes, send deadlines, and the periodic
sweep (pings, idle timeout). A real gevent server on a free port, real sockets."""
import socket
import struct
import time

import gevent
import pytest

from imchat.protocol import encode
from tests.harness import wait_for
from tests.wsclient import ChatClient, raw_handshake


def read_frame(sock, timeout=10):
    """One server frame from a raw socket: (opcode, payload)."""
    sock.settimeout(timeout)

    def exact(n):
        data = b''
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError('closed')
            data += chunk
        return data
    first, second = exact(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack('!H', exact(2))[0]
    elif length == 127:
        length = struct.unpack('!Q', exact(8))[0]
    return first & 0x0F, exact(length)


class CountingSocket:
    """The server side's real socket, counting the writes made on it."""

    def __init__(self, sock):
        self.sock = sock
        self.sends = 0

    def send(self, *args):
        self.sends += 1
        return self.sock.send(*args)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def only_client(hub, user_id):
    clients = hub.users[user_id]
    assert len(clients) == 1
    return next(iter(clients))


def test_messages_fanned_out_together_leave_in_one_write(auth, live_server):
    hub = live_server.hub
    bob = auth.register()
    b = ChatClient(live_server.ws_url(bob))
    assert wait_for(lambda: hub.is_online(bob.id))
    client = only_client(hub, bob.id)
    assert wait_for(lambda: not client.syncing)
    spy = client.conn._socket = CountingSocket(client.conn._socket)
    first = client.high + 1
    # As a batch commit does: many messages fanned out without yielding in between.
    for msgid in range(first, first + 50):
        hub.fan_out([bob.id], msgid, encode({'msgid': msgid, 'userid': 1, 'cmd': 10,
                                             'dstid': bob.id, 'media': 1, 'createat': 1,
                                             'content': 'm%d' % msgid}))
    got = b.recv_messages(50)
    assert [m['msgid'] for m in got] == list(range(first, first + 50))
    assert spy.sends == 1
    b.close()


@pytest.mark.slow  # waits the write deadline
def test_a_reader_that_stops_reading_during_catch_up_is_cut_off_at_the_deadline(
        auth, live_server):
    hub = live_server.hub
    hub.message_rate = 0
    hub.idle_timeout = 600  # only the send deadline can end it
    hub.send_timeout = 1
    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    a = ChatClient(live_server.ws_url(alice))
    for i in range(600):
        a.text(bob.id, '长' * 4000)
    for _ in range(600):
        assert a.recv_ack(timeout=30)['code'] == 0
    # 7 MB of backlog, past the kernel's socket buffers; Bob reads none of it but
    # keeps the connection open.
    sock = raw_handshake(live_server.port, bob, rcvbuf=4096)
    assert wait_for(lambda: hub.is_online(bob.id))
    assert wait_for(lambda: not hub.is_online(bob.id), timeout=15)
    assert live_server.app.extensions['imchat'].metrics.value('imchat_queue_drops_total') >= 1
    sock.close()
    a.close()


@pytest.mark.slow  # waits the write deadline
def test_a_live_reader_that_stops_reading_is_cut_off_at_the_deadline(auth, live_server):
    hub = live_server.hub
    hub.message_rate = 0
    hub.idle_timeout = 600
    hub.queue_size = 1000000  # never full: only the send deadline can end it
    hub.send_timeout = 1
    alice, stalled, carol = auth.register(), auth.register(), auth.register()
    group = auth.create_community(alice)
    auth.join(stalled, group['id'])
    auth.join(carol, group['id'])
    sock = raw_handshake(live_server.port, stalled, rcvbuf=4096)
    assert wait_for(lambda: hub.is_online(stalled.id))
    a, c = ChatClient(live_server.ws_url(alice)), ChatClient(live_server.ws_url(carol))
    assert wait_for(lambda: hub.is_online(carol.id))
    received = []

    def read_carol():
        while True:
            received.append(c.recv(timeout=30)['msgid'])
    reader = gevent.spawn(read_carol)
    sent = 0
    # Until the stalled reader is cut off (6 MB is past every kernel buffer here).
    while hub.is_online(stalled.id) and sent < 1500:
        a.text(group['id'], '长' * 4000, cmd=11)
        assert a.recv_ack(timeout=30)['code'] == 0
        sent += 1
    assert wait_for(lambda: not hub.is_online(stalled.id), timeout=15)
    assert wait_for(lambda: len(received) == sent, timeout=30)
    assert received == sorted(received)
    reader.kill()
    sock.close()
    a.close()
    c.close()


@pytest.mark.slow  # waits the sweep's idle timeout
def test_the_sweep_pings_and_closes_a_silent_peer_with_1008(auth, live_server):
    hub = live_server.hub
    hub.ping_interval = 0.2
    hub.idle_timeout = 1.5
    alice = auth.register()
    sock = raw_handshake(live_server.port, alice)
    assert wait_for(lambda: hub.is_online(alice.id))
    opcodes = []
    while True:
        opcode, payload = read_frame(sock)
        opcodes.append(opcode)
        if opcode == 0x8:
            break
    assert opcodes.count(0x9) >= 2  # pinged while silent
    assert struct.unpack('!H', payload[:2])[0] == 1008
    assert payload[2:] == b'idle timeout'
    assert wait_for(lambda: not hub.is_online(alice.id))
    sock.close()


@pytest.mark.slow  # waits past the idle timeout
def test_pongs_keep_a_connection_open_past_the_idle_timeout(auth, live_server):
    hub = live_server.hub
    hub.ping_interval = 0.2
    hub.idle_timeout = 1.0
    alice = auth.register()
    sock = raw_handshake(live_server.port, alice)
    assert wait_for(lambda: hub.is_online(alice.id))
    deadline = time.monotonic() + 3
    pings = 0
    while time.monotonic() < deadline:
        opcode, payload = read_frame(sock)
        assert opcode == 0x9
        pings += 1
        # A masked pong with the ping's payload.
        mask = b'\x01\x02\x03\x04'
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask + body)
    assert pings >= 5
    assert hub.is_online(alice.id)
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_acks_follow_the_order_of_the_frames_while_they_are_stored(auth, live_server):
    live_server.hub.message_rate = 0
    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    a = ChatClient(live_server.ws_url(alice))
    b = ChatClient(live_server.ws_url(bob))
    # Stored messages and instant refusals interleaved, sent without waiting: the
    # connection reads on while the messages are stored, and still answers in order.
    for i in range(40):
        if i % 3 == 2:
            a.send(id=i, cmd=10, dstid=bob.id, media=99)
        else:
            a.send(id=i, cmd=10, dstid=bob.id, media=1, content='m%d' % i)
    acks = [a.recv_ack(timeout=10) for _ in range(40)]
    assert [ack['id'] for ack in acks] == list(range(40))
    assert [ack['code'] for ack in acks] == [-1 if i % 3 == 2 else 0 for i in range(40)]
    stored = [ack['msgid'] for ack in acks if ack['code'] == 0]
    assert stored == sorted(stored)
    assert [m['msgid'] for m in b.recv_messages(len(stored), timeout=10)] == stored
    a.close()
    b.close()
