"""The message writer under database faults, with a real server process on a real
database: a batch whose commit the server gave up on (another session holding the
`stream` row past IMCHAT_DB_TIMEOUT) still reaches its recipients in id order, and one
slow statement is a failed statement, not an outage."""
import threading

import pymysql
import pytest

from tests.conftest import _mysql_params
from tests.harness.http import unique_mobiles
from tests.harness.server import ServerProcess
from tests.harness.wait import wait_for
from tests.wsclient import ChatClient

pytestmark = pytest.mark.process

DB_TIMEOUT = 2
# Generous: a loaded machine; the refusal itself comes after DB_TIMEOUT. Below the
# server's ping interval: a ping restarts a websocket-client wait.
ACK_WITHIN = 20


def mysql_only(database_url):
    if not database_url.startswith('mysql'):
        pytest.skip('SQLite rolls back a write that waited past its busy timeout: '
                    'no commit outcome is ever unknown')


class StreamHolder:
    """Another session holding the `message` stream's row (as a long transaction would)
    until release()."""

    def __init__(self, database_url):
        params = dict(_mysql_params(), database=database_url.rsplit('/', 1)[1])
        self.con = pymysql.connect(charset='utf8mb4', ssl_disabled=True, autocommit=False,
                                   **params)
        self.con.cursor().execute("SELECT pos FROM stream WHERE name = 'message' FOR UPDATE")

    def release(self):
        self.con.rollback()
        self.con.close()


@pytest.fixture
def server(tmp_path, database_url):
    # Friends at once (addfriend without a request to accept), as the original had it.
    server = ServerProcess(tmp_path, database_url, IMCHAT_DB_TIMEOUT=DB_TIMEOUT,
                           IMCHAT_FRIEND_REQUESTS=0).start()
    yield server
    server.stop()


def acks_of(client, count):
    """The next `count` acks `client` gets (its own message committed late, which
    it was told was refused, may come between)."""
    acks = []
    while len(acks) < count:
        frame = client.recv(ACK_WITHIN)
        if frame['cmd'] == 1:
            acks.append(frame)
    return acks


def friends(server):
    alice, bob = (server.api.register(m) for m in unique_mobiles(2))
    server.api.befriend(alice, bob)
    return alice, bob


def test_a_commit_given_up_on_still_reaches_the_recipient_in_order(server, database_url):
    mysql_only(database_url)
    alice_user, bob_user = friends(server)
    alice = ChatClient(server.ws_url(alice_user), timeout=ACK_WITHIN)
    bob = ChatClient(server.ws_url(bob_user), timeout=ACK_WITHIN)
    try:
        first = alice.send_texts(bob_user['id'], ['one'])[0]
        assert bob.recv(ACK_WITHIN)['msgid'] == first

        holder = StreamHolder(database_url)
        alice.send(id='late-one-0001', cmd=10, dstid=bob_user['id'], media=1, content='two')
        refused = alice.recv_ack(ACK_WITHIN)
        assert refused['code'] == -1, refused
        # The server gave up; the database commits the batch once the row is free.
        holder.release()
        # Nothing more is sent: the message stored late reaches bob all the same.
        late = bob.recv(ACK_WITHIN)
        assert late['content'] == 'two' and late['msgid'] > first, late
        # The sender was refused, so its connection gets the message as any other does.
        assert alice.recv(ACK_WITHIN) == late

        # Sent again: the stored copy's ack, and bob does not get it twice.
        alice.send(id='late-one-0001', cmd=10, dstid=bob_user['id'], media=1, content='two')
        again = alice.recv_ack(ACK_WITHIN)
        assert again['code'] == 0 and again['msgid'] == late['msgid'], again
        third = alice.send_texts(bob_user['id'], ['three'])[0]
        after = bob.recv(ACK_WITHIN)
        assert (after['msgid'], after['content']) == (third, 'three'), after
    finally:
        alice.close()
        bob.close()


def test_a_resend_of_a_commit_given_up_on_is_delivered_before_later_ids(server, database_url):
    """The resend comes first (before the writer looks for what committed late): the
    message still reaches bob, before anything with a higher id."""
    mysql_only(database_url)
    alice_user, bob_user = friends(server)
    alice = ChatClient(server.ws_url(alice_user), timeout=ACK_WITHIN)
    bob = ChatClient(server.ws_url(bob_user), timeout=ACK_WITHIN)
    try:
        holder = StreamHolder(database_url)
        alice.send(id='late-two-0001', cmd=10, dstid=bob_user['id'], media=1, content='one')
        assert alice.recv_ack(ACK_WITHIN)['code'] == -1
        # Sent again while the row is still held: it waits behind the late commit.
        alice.send(id='late-two-0001', cmd=10, dstid=bob_user['id'], media=1, content='one')
        alice.send(id='late-two-0002', cmd=10, dstid=bob_user['id'], media=1, content='two')
        holder.release()
        acks = acks_of(alice, 2)
        got = [bob.recv(ACK_WITHIN), bob.recv(ACK_WITHIN)]
        assert [m['content'] for m in got] == ['one', 'two'], got
        assert [m['msgid'] for m in got] == sorted(m['msgid'] for m in got)
        assert [a['code'] for a in acks] == [0, 0], acks
        assert [a['msgid'] for a in acks] == [m['msgid'] for m in got]
    finally:
        alice.close()
        bob.close()


def test_one_statement_past_the_timeout_is_no_outage(server, database_url):
    """A lock wait past IMCHAT_DB_TIMEOUT fails that statement (the sender is refused);
    the database answers everyone else, so the node stays up: HTTP calls and new
    WebSockets are served while the lock is still held, and no outage is logged."""
    mysql_only(database_url)
    alice_user, bob_user = friends(server)
    alice = ChatClient(server.ws_url(alice_user), timeout=ACK_WITHIN)
    holder = StreamHolder(database_url)
    try:
        alice.send(id='slow-one-0001', cmd=10, dstid=bob_user['id'], media=1, content='one')
        assert alice.recv_ack(ACK_WITHIN)['code'] == -1
        # Still held: what does not need the stream's row is served.
        status, body = server.api.post('/user/find', {'mobile': bob_user['mobile']}, alice_user)
        assert status == 200, body
        bob = ChatClient(server.ws_url(bob_user), timeout=ACK_WITHIN)
        bob.close()
        wait_for(lambda: 'ran out of time' in server.log(), what='the slow statement logged')
        assert 'database unavailable' not in server.log()
    finally:
        holder.release()
        alice.close()


@pytest.mark.parametrize('client_id', ['1.5', '{"n": 1}', '18446744073709551616'])
def test_an_id_no_ack_can_echo_is_refused_before_storing(server, client_id):
    """A frame whose id no acknowledgement can echo was stored and delivered with no ack
    (a client waiting for one sends it again, and it is stored again): refused with a
    reason, echoing nothing, and never stored."""
    alice_user, bob_user = friends(server)
    alice = ChatClient(server.ws_url(alice_user), timeout=ACK_WITHIN)
    bob = ChatClient(server.ws_url(bob_user), timeout=ACK_WITHIN)
    try:
        alice.send_raw('{{"id": {}, "cmd": 10, "dstid": {}, "media": 1, "content": "odd"}}'
                       .format(client_id, bob_user['id']))
        refused = alice.recv_ack(ACK_WITHIN)
        assert refused['code'] == -1 and refused['reason'] == 'frame.id_invalid', refused
        assert 'id' not in refused
        # Nothing was stored: the next message is the first bob gets, and the first id.
        sent = alice.send_texts(bob_user['id'], ['plain'])[0]
        got = bob.recv(ACK_WITHIN)
        assert (got['msgid'], got['content']) == (sent, 'plain') and sent == 1, got
    finally:
        alice.close()
        bob.close()
