"""The /chat WebSocket end to end: a real gevent server on a free port, real
WebSocket clients, a real database (SQLite and MySQL)."""
import json
import socket
import time

import gevent
import gevent.event
import pytest
from pony.orm import db_session

from tests.harness import wait_for
from tests.wsclient import ChatClient, raw_handshake


@pytest.fixture
def connect(live_server):
    clients = []

    def open_client(account, **params):
        """Connect, and wait until the server has registered the connection."""
        # Known by identity, not by count: one of the user's connections closed just
        # before may be let go while this one registers.
        before = set(live_server.hub.users.get(account.id, ()))
        client = ChatClient(live_server.ws_url(account, **params))
        clients.append(client)
        assert wait_for(lambda: set(live_server.hub.users.get(account.id, ())) - before)
        return client
    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def pair(auth):
    alice, bob = auth.register(nickname='alice'), auth.register(nickname='bob')
    auth.befriend(alice, bob)
    return alice, bob


def test_one_to_one_both_ways(pair, connect):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    sent_id = a.text(bob.id, 'hello bob')
    ack = a.recv_ack()
    assert ack['id'] == sent_id and ack['code'] == 0 and ack['msgid'] > 0
    assert abs(ack['createat'] - time.time() * 1000) < 60000
    got = b.recv()
    assert got == {'msgid': ack['msgid'], 'userid': alice.id, 'cmd': 10, 'dstid': bob.id,
                   'media': 1, 'createat': ack['createat'], 'content': 'hello bob'}
    b.text(alice.id, 'hi alice')
    reply_ack = b.recv_ack()
    got = a.recv()
    assert got['content'] == 'hi alice' and got['userid'] == bob.id
    assert reply_ack['msgid'] > ack['msgid']
    a.expect_nothing()


def test_every_media_type_is_delivered_with_its_fields(pair, connect):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    bodies = [
        {'media': 3, 'url': '/mnt/a.mp3', 'amount': 40},
        {'media': 4, 'url': 'http://example.invalid/a.png'},
        {'media': 5, 'url': 'http://x/red?id=1', 'amount': 300, 'memo': '恭喜发财'},
        {'media': 6, 'content': '😀'},
        {'media': 9, 'content': '10086', 'pic': '/mnt/p.png', 'memo': '胡大力'},
    ]
    for body in bodies:
        a.send(cmd=10, dstid=bob.id, **body)
        assert a.recv_ack()['code'] == 0
        got = b.recv()
        for name, value in body.items():
            assert got[name] == value


def test_group_of_three(auth, connect):
    alice, bob, carol = (auth.register() for _ in range(3))
    group = auth.create_community(alice, 'trio')
    auth.join(bob, group['id'])
    auth.join(carol, group['id'])
    a, b, c = connect(alice), connect(bob), connect(carol)
    a.text(group['id'], 'hello group', cmd=11)
    ack = a.recv_ack()
    for client in (b, c):
        got = client.recv()
        assert got['msgid'] == ack['msgid'] and got['cmd'] == 11
        assert got['dstid'] == group['id'] and got['userid'] == alice.id
    c.text(group['id'], 'carol here', cmd=11)
    c.recv_ack()
    assert a.recv()['content'] == 'carol here' and b.recv()['content'] == 'carol here'
    a.expect_nothing()


def test_senders_other_device_gets_the_message(pair, connect, auth):
    alice, bob = pair
    laptop = auth.login(alice)
    phone, desk, b = connect(alice), connect(laptop), connect(bob)
    phone.text(bob.id, 'from my phone')
    ack = phone.recv_ack()
    assert desk.recv()['msgid'] == ack['msgid']
    assert b.recv()['msgid'] == ack['msgid']
    phone.expect_nothing()


def test_recipient_gets_it_on_every_device(pair, connect, auth):
    alice, bob = pair
    b1, b2, a = connect(bob), connect(auth.login(bob)), connect(alice)
    a.text(bob.id, 'to all of bob')
    a.recv_ack()
    assert b1.recv()['content'] == b2.recv()['content'] == 'to all of bob'


def test_spoofed_userid_is_replaced_by_the_sender(pair, connect, auth):
    alice, bob = pair
    carol = auth.register()
    auth.befriend(carol, bob)
    a, b = connect(alice), connect(bob)
    a.send(cmd=10, dstid=bob.id, media=1, content='pretending', userid=carol.id)
    a.recv_ack()
    assert b.recv()['userid'] == alice.id


def test_stranger_is_refused_and_connection_stays_up(auth, connect, pair):
    alice, bob = pair
    stranger = auth.register()
    s, b = connect(stranger), connect(bob)
    sent = s.text(bob.id, 'let me in')
    ack = s.recv_ack()
    assert ack == {'cmd': 1, 'code': -1, 'msg': 'user {} is not your friend'.format(bob.id),
                   'reason': 'contact.not_friends', 'id': sent}
    b.expect_nothing()
    # Befriending tells Bob's open connection (cmd 17): not what this test watches.
    b.ignore.add(17)
    auth.befriend(stranger, bob)
    s.text(bob.id, 'now friends')
    assert s.recv_ack()['code'] == 0
    assert b.recv()['content'] == 'now friends'


def test_non_member_is_refused(auth, connect):
    alice, mallory = auth.register(), auth.register()
    group = auth.create_community(alice)
    a, m = connect(alice), connect(mallory)
    m.text(group['id'], 'hi', cmd=11)
    ack = m.recv_ack()
    assert ack['code'] == -1 and 'not a member' in ack['msg']
    a.expect_nothing()


@pytest.mark.parametrize('raw, reason', [
    ('{not json', 'not valid JSON'),
    ('{"id": 4, "cmd": 42}', 'unknown cmd'),
    ('{"id": 4, "cmd": 10, "dstid": 2, "media": 77, "content": "x"}', 'unknown media'),
    ('"a string"', 'JSON object'),
    (b'\x01\x02binary', 'JSON text frames'),
])
def test_bad_frames_get_an_error_and_the_connection_stays_up(pair, connect, raw, reason):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    a.send_raw(raw)
    ack = a.recv_ack()
    assert ack['code'] == -1 and reason in ack['msg']
    a.text(bob.id, 'still here')
    assert a.recv_ack()['code'] == 0
    assert b.recv()['content'] == 'still here'


def test_oversized_frame_is_refused_and_connection_stays_up(app, pair, connect):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    limit = app.config['WS_MAX_FRAME']
    a.send(id='big', cmd=10, dstid=bob.id, media=1, content='x' * (limit + 10))
    ack = a.recv_ack()
    assert ack == {'cmd': 1, 'code': -1, 'id': 'big',
                   'msg': 'the frame is too large: at most {} bytes'.format(limit)}
    a.text(bob.id, 'small')
    assert a.recv_ack()['code'] == 0 and b.recv()['content'] == 'small'


def test_huge_frame_closes_without_being_read(app, pair, live_server):
    alice, _ = pair
    sock = raw_handshake(live_server.port, alice)
    # Only the header of a frame far past the limit: the server must not wait for it.
    length = app.config['WS_MAX_FRAME'] * 16 + 1
    sock.sendall(bytes([0x81, 0x80 | 127]) + length.to_bytes(8, 'big') + b'mask')
    sock.settimeout(5)
    reply = sock.recv(64)
    assert reply[0] == 0x88 and int.from_bytes(reply[2:4], 'big') == 1009
    sock.close()


def test_large_message_arrives_whole(pair, connect):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    content = '长' * 4000  # 12 kB of UTF-8 in one frame
    a.text(bob.id, content)
    a.recv_ack()
    assert b.recv()['content'] == content


def test_heartbeat_gets_no_reply(pair, connect):
    alice, _ = pair
    a = connect(alice)
    a.send(cmd=0)
    a.expect_nothing()


@pytest.mark.parametrize('params, code', [
    ({'token': 'not-a-token'}, 4401),
    ({'token': ''}, 4401),
])
def test_bad_token_gets_no_usable_connection(live_server, pair, params, code):
    alice, _ = pair
    client = ChatClient(live_server.ws_url(alice, **params))
    got_code, reason = client.close_code()
    assert got_code == code and 'token' in reason
    assert not live_server.hub.is_online(alice.id)


def test_id_must_match_the_token(live_server, pair):
    alice, bob = pair
    client = ChatClient(live_server.ws_url(alice, id=bob.id))
    code, reason = client.close_code()
    assert code == 4403 and 'not the token' in reason
    assert not live_server.hub.is_online(bob.id)


def test_bad_since_is_refused(live_server, pair):
    alice, _ = pair
    client = ChatClient(live_server.ws_url(alice, since='yesterday'))
    code, reason = client.close_code()
    assert code == 4400 and 'since' in reason


def test_logged_out_token_cannot_connect(live_server, client, pair):
    alice, _ = pair
    client.post('/user/logout', headers=alice.headers)
    ws = ChatClient(live_server.ws_url(alice))
    assert ws.close_code()[0] == 4401


def test_token_in_bearer_header(live_server, pair):
    import websocket
    alice, bob = pair
    ws = websocket.create_connection('ws://127.0.0.1:{}/chat'.format(live_server.port),
                                     header=['Authorization: Bearer ' + alice.token], timeout=5)
    try:
        ws.send(json.dumps({'id': 1, 'cmd': 10, 'dstid': bob.id, 'media': 1, 'content': 'x'}))
        assert json.loads(ws.recv())['code'] == 0
    finally:
        ws.close()


def test_plain_http_get_on_chat_is_a_clear_error(client):
    response = client.get('/chat')
    assert response.status_code == 400 and 'WebSocket' in response.json['msg']


def test_offline_messages_arrive_on_connect_in_order_once(pair, connect, live_server):
    alice, bob = pair
    a = connect(alice)
    sent = a.send_texts(bob.id, ['offline %d' % i for i in range(5)])
    b = connect(bob)
    got = b.recv_messages(5)
    assert [m['msgid'] for m in got] == sent
    assert [m['content'] for m in got] == ['offline %d' % i for i in range(5)]
    b.expect_nothing()
    b.close()
    # Reconnecting without `since` resumes after what was delivered.
    assert wait_for(lambda: not live_server.hub.is_online(bob.id))
    again = connect(bob)
    again.expect_nothing()


def test_since_replays_exactly_what_is_missing(pair, connect):
    alice, bob = pair
    a = connect(alice)
    ids = a.send_texts(bob.id, [str(i) for i in range(4)])
    b = connect(bob, since=ids[1])
    assert [m['msgid'] for m in b.recv_messages(2)] == ids[2:]
    b.expect_nothing()
    everything = connect(bob, since=0)
    assert [m['msgid'] for m in everything.recv_messages(4)] == ids
    everything.expect_nothing()


def test_own_messages_from_another_device_are_in_the_backlog(pair, connect):
    alice, bob = pair
    a = connect(alice)
    a.text(bob.id, 'sent while my laptop was off')
    msgid = a.recv_ack()['msgid']
    laptop = connect(alice, since=0)
    got = laptop.recv()
    assert got['msgid'] == msgid and got['userid'] == alice.id


def test_offline_group_messages_since_joining(auth, connect):
    alice, bob, carol = (auth.register() for _ in range(3))
    group = auth.create_community(alice)
    auth.join(bob, group['id'])
    a = connect(alice)
    a.text(group['id'], 'before carol', cmd=11)
    a.recv_ack()
    auth.join(carol, group['id'])
    a.text(group['id'], 'after carol', cmd=11)
    after = a.recv_ack()['msgid']
    b = connect(bob)
    assert [m['content'] for m in b.recv_messages(2)] == ['before carol', 'after carol']
    c = connect(carol)
    got = c.recv()
    assert got['msgid'] == after and got['content'] == 'after carol'
    c.expect_nothing()


def test_joining_updates_open_connections_at_once(auth, connect, client):
    alice, bob = auth.register(), auth.register()
    group = auth.create_community(alice)
    a, b = connect(alice), connect(bob)
    auth.join(bob, group['id'])
    a.text(group['id'], 'welcome bob', cmd=11)
    a.recv_ack()
    assert b.recv()['content'] == 'welcome bob'


def test_live_messages_during_catch_up_are_neither_lost_nor_doubled(pair, connect, live_server):
    alice, bob = pair
    live_server.hub.message_rate = 0  # a burst far past any person's typing
    a = connect(alice)
    backlog = 1200  # more than two backlog pages
    for i in range(backlog):
        a.text(bob.id, 'old %d' % i)
    for _ in range(backlog):
        assert a.recv_ack()['code'] == 0
    b = connect(bob)

    def send_live():
        for i in range(50):
            a.text(bob.id, 'live %d' % i)
    sender = gevent.spawn(send_live)
    got = b.recv_messages(backlog + 50, timeout=20)
    sender.join()
    ids = [m['msgid'] for m in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    contents = [m['content'] for m in got]
    assert contents[:backlog] == ['old %d' % i for i in range(backlog)]
    assert contents[backlog:] == ['live %d' % i for i in range(50)]
    b.expect_nothing()


def test_history_pages_back_oldest_first(pair, connect, client):
    alice, bob = pair
    a = connect(alice)
    ids = a.send_texts(bob.id, ['m%d' % i for i in range(7)])
    page = client.get('/chat/history', query_string={'cmd': 10, 'dstid': bob.id, 'limit': 3},
                      headers=alice.headers).json
    assert [m['msgid'] for m in page['rows']] == ids[4:]
    older = client.get('/chat/history', query_string={'cmd': 10, 'dstid': alice.id, 'limit': 3,
                                                        'before': ids[4]},
                       headers=bob.headers).json['rows']
    assert [m['content'] for m in older] == ['m1', 'm2', 'm3']
    oldest = client.post('/chat/history', data={'cmd': 10, 'dstid': bob.id, 'before': ids[1]},
                         headers=alice.headers).json['rows']
    assert [m['msgid'] for m in oldest] == ids[:1]


def test_history_of_a_group_needs_membership(auth, connect, client):
    alice, mallory = auth.register(), auth.register()
    group = auth.create_community(alice)
    a = connect(alice)
    a.text(group['id'], 'members only', cmd=11)
    a.recv_ack()
    rows = client.get('/chat/history', query_string={'cmd': 11, 'dstid': group['id']},
                      headers=alice.headers).json['rows']
    assert [m['content'] for m in rows] == ['members only']
    refused = client.get('/chat/history', query_string={'cmd': 11, 'dstid': group['id']},
                         headers=mallory.headers)
    assert refused.status_code == 403
    missing = client.get('/chat/history', query_string={'cmd': 11, 'dstid': 999},
                         headers=alice.headers)
    assert missing.status_code == 404


def test_history_only_shows_my_conversations(auth, connect, client, pair):
    alice, bob = pair
    carol = auth.register()
    a = connect(alice)
    a.text(bob.id, 'private')
    a.recv_ack()
    rows = client.get('/chat/history', query_string={'cmd': 10, 'dstid': bob.id},
                      headers=carol.headers).json['rows']
    assert rows == []


@pytest.mark.parametrize('query, field', [
    ({'dstid': 2}, 'cmd'), ({'cmd': 10}, 'dstid'), ({'cmd': 12, 'dstid': 2}, 'cmd'),
    ({'cmd': 10, 'dstid': 2, 'limit': 1000}, 'limit'),
])
def test_history_bad_fields(client, pair, query, field):
    alice, _ = pair
    response = client.get('/chat/history', query_string=query, headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == field


def test_history_needs_a_token(client):
    assert client.get('/chat/history?cmd=10&dstid=1').status_code == 401


@pytest.mark.slow  # 6 MB through the server, on purpose
def test_stalled_reader_is_cut_off_while_others_keep_receiving(app_config, auth, live_server,
                                                                connect):
    hub = live_server.hub
    hub.queue_size = 32
    hub.message_rate = 0
    alice, stalled, carol = auth.register(), auth.register(), auth.register()
    group = auth.create_community(alice)
    auth.join(stalled, group['id'])
    auth.join(carol, group['id'])
    # A raw WebSocket handshake, then never read: the server's writes pile up.
    sock = raw_handshake(live_server.port, stalled, rcvbuf=4096)
    assert wait_for(lambda: hub.is_online(stalled.id))
    a, c = connect(alice), connect(carol)
    content = '长' * 4000
    # 6 MB for the stalled reader: past the kernel's socket buffers (tcp_wmem tops out at
    # 4 MB here) and the connection's queue.
    total = 500
    received = []

    def read_carol():
        for _ in range(total):
            received.append(c.recv(timeout=10)['msgid'])
    reader = gevent.spawn(read_carol)
    for i in range(total):
        a.text(group['id'], content, cmd=11)
        assert a.recv_ack()['code'] == 0
    reader.join(timeout=20)
    assert len(received) == total and received == sorted(received)
    assert wait_for(lambda: not hub.is_online(stalled.id))
    assert live_server.app.extensions['imchat'].metrics.value('imchat_queue_drops_total') >= 1
    sock.close()


def test_abruptly_dropped_connection_leaves_no_trace(live_server, pair):
    alice, _ = pair
    hub = live_server.hub
    client = ChatClient(live_server.ws_url(alice))
    assert wait_for(lambda: hub.is_online(alice.id))
    client.ws.sock.shutdown(socket.SHUT_RDWR)
    client.ws.sock.close()
    assert wait_for(lambda: not hub.is_online(alice.id))
    assert alice.id not in hub.users
    assert hub.communities == {}


def test_silent_connection_is_closed_after_the_idle_timeout(app_config, auth, live_server):
    live_server.hub.ping_interval = 0.2
    live_server.hub.idle_timeout = 0.6
    alice = auth.register()
    group = auth.create_community(alice)
    sock = raw_handshake(live_server.port, alice)
    assert wait_for(lambda: live_server.hub.is_online(alice.id))
    assert group['id'] in live_server.hub.communities
    assert wait_for(lambda: not live_server.hub.is_online(alice.id), timeout=5)
    assert live_server.hub.communities == {}
    sock.close()


@pytest.mark.slow  # waits several idle timeouts
def test_a_client_answering_pings_stays_connected(auth, live_server, pair):
    live_server.hub.ping_interval = 0.2
    live_server.hub.idle_timeout = 1.0
    alice, bob = pair
    a = ChatClient(live_server.ws_url(alice))
    b = ChatClient(live_server.ws_url(bob))
    deadline = time.monotonic() + 3  # three idle timeouts, with nothing but pongs
    while time.monotonic() < deadline:  # websocket-client answers pings while reading
        a.expect_nothing(0.05)
        b.expect_nothing(0.05)
    assert live_server.hub.is_online(alice.id)
    a.text(bob.id, 'still alive')
    assert a.recv_ack()['code'] == 0
    assert b.recv()['content'] == 'still alive'


def test_online_flag_follows_connections(live_server, client, pair, connect):
    alice, bob = pair
    assert client.post('/user/find', data={'id': alice.id},
                       headers=bob.headers).json['data']['online'] == 0
    a = connect(alice)
    assert wait_for(lambda: live_server.hub.is_online(alice.id))
    assert client.post('/user/find', data={'id': alice.id},
                       headers=bob.headers).json['data']['online'] == 1
    a.close()
    assert wait_for(lambda: not live_server.hub.is_online(alice.id))


def test_going_away_on_shutdown_after_storing_in_flight(app, pair, connect, live_server):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    a.text(bob.id, 'last words')
    a.recv_ack()
    app.extensions['imchat'].writer.stop(timeout=1)
    live_server.hub.close_all(timeout=1)
    assert b.recv()['content'] == 'last words'
    assert b.close_code()[0] == 1001


def test_a_connection_still_authenticating_at_shutdown_is_closed_going_away(app, pair,
                                                                          live_server):
    # The WebSocket is open, and the server is still reading the user's groups, when
    # the node starts to stop: it is closed with the rest, not registered after them.
    alice, _ = pair
    contacts = app.extensions['imchat'].contacts
    reading, go_on = gevent.event.Event(), gevent.event.Event()
    community_ids = contacts.community_ids

    def slow(user_id):
        reading.set()
        go_on.wait(10)
        return community_ids(user_id)
    contacts.community_ids = slow
    hub = live_server.hub
    # The server is done with the connection's opening (registered or refused) once it
    # calls hub.opened: what is asserted below is settled by then.
    settled, opened = gevent.event.Event(), hub.opened

    def watched(conn):
        opened(conn)
        settled.set()
    hub.opened = watched
    client = ChatClient(live_server.ws_url(alice))
    assert reading.wait(10)
    hub.close_all(timeout=1)
    go_on.set()
    assert client.close_code()[0] == 1001
    assert settled.wait(10)
    assert not hub.is_online(alice.id)


def test_a_frame_sent_again_after_a_dropped_connection_is_stored_once(pair, connect):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    frame = dict(id='c-lf8q2x-1', cmd=10, dstid=bob.id, media=1, content='exactly once')
    a.send(**frame)
    first = a.recv_ack()
    assert b.recv()['msgid'] == first['msgid']
    a.close()
    again = connect(alice, since=first['msgid'])
    again.send(**frame)
    second = again.recv_ack()
    assert (second['code'], second['msgid'], second['createat']) == (
        0, first['msgid'], first['createat'])
    b.expect_nothing()


def test_a_database_failure_at_connect_closes_with_a_server_error(app, live_server, pair):
    alice, _ = pair
    contacts = app.extensions['imchat'].contacts
    db = app.extensions['imchat'].db

    def broken(user_id):
        # A real error from the real database, where the connect path first reads it.
        with db_session:
            db.execute('SELECT no_such_column FROM message')
    contacts.community_ids = broken
    client = ChatClient(live_server.ws_url(alice))
    code, reason = client.close_code()
    assert code == 1011 and 'reconnect' in reason
    assert not live_server.hub.is_online(alice.id)


@pytest.mark.slow  # waits the token bucket refilling
def test_a_sender_over_the_rate_is_refused_and_stays_connected(pair, connect, live_server):
    live_server.hub.message_rate = 1  # slow, so the burst below cannot earn a token back
    live_server.hub.message_burst = 3
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    codes = []
    for i in range(5):
        a.text(bob.id, 'burst %d' % i)
        codes.append(a.recv_ack())
    assert [ack['code'] for ack in codes] == [0, 0, 0, -1, -1]
    assert 'too many messages' in codes[3]['msg'] and codes[3]['id'] == 4
    assert [m['content'] for m in b.recv_messages(3)] == ['burst 0', 'burst 1', 'burst 2']
    b.expect_nothing()
    # The time passing is what is tested: the bucket refills at 1 a second.
    gevent.sleep(1.1)
    a.text(bob.id, 'after a breath')
    assert a.recv_ack()['code'] == 0
    assert b.recv()['content'] == 'after a breath'


def test_a_reader_that_vanishes_during_catch_up_is_cleaned_up(pair, connect, live_server):
    alice, bob = pair
    live_server.hub.message_rate = 0
    live_server.hub.queue_size = 4
    a = connect(alice)
    for i in range(600):
        a.text(bob.id, '长' * 4000)
    for _ in range(600):
        assert a.recv_ack()['code'] == 0
    # Bob connects to 7 MB of backlog (past the kernel's socket buffers, so the server's
    # writer blocks), reads nothing, and is gone.
    sock = raw_handshake(live_server.port, bob, rcvbuf=4096)
    assert wait_for(lambda: live_server.hub.is_online(bob.id))
    sock.close()
    assert wait_for(lambda: not live_server.hub.is_online(bob.id), timeout=10)


def test_logout_closes_that_logins_websockets_only(pair, connect, auth, client, live_server):
    alice, bob = pair
    laptop = auth.login(alice)
    phone_ws, laptop_ws, b = connect(alice), connect(laptop), connect(bob)
    assert client.post('/user/logout', headers=alice.headers).json['code'] == 0
    code, reason = phone_ws.close_code()
    assert code == 4401 and reason == 'logged out'
    b.text(alice.id, 'still reaches the laptop')
    b.recv_ack()
    assert laptop_ws.recv()['content'] == 'still reaches the laptop'
    assert wait_for(lambda: len(live_server.hub.users.get(alice.id, ())) == 1)


@pytest.mark.slow  # waits a token's lifetime
def test_a_connection_ends_when_its_token_expires(app, auth, live_server):
    live_server.hub.ping_interval = 0.2
    app.extensions['imchat'].users.token_ttl_ms = 1500
    alice = auth.register()
    ws = ChatClient(live_server.ws_url(alice))
    code, reason = ws.close_code(timeout=10)
    assert code == 4401 and 'expired' in reason
    assert wait_for(lambda: not live_server.hub.is_online(alice.id))


@pytest.mark.parametrize('app_config', [dict(WS_RATE=1, WS_BURST=3)], indirect=True)
def test_every_refusal_over_the_socket_says_why_for_programs(app_config, auth, pair, connect):
    """A client decides on `reason`, never on `msg` (docs/protocol.md, "Error reasons")."""
    alice, bob = pair
    stranger = auth.register()
    a = connect(alice)
    refusals = {}

    def refused(name, **frame):
        a.send(id=name, **frame)
        ack = a.recv_ack()
        assert ack['code'] == -1 and ack['id'] == name, ack
        refusals[name] = ack.get('reason')

    refused('recall-nothing', cmd=14, msgid=10 ** 9)
    refused('to-a-stranger', cmd=10, dstid=stranger.id, media=1, content='hi')
    refused('typing-to-a-stranger', cmd=13, dstid=stranger.id)
    assert refusals == {'recall-nothing': 'recall.not_found',
                        'to-a-stranger': 'contact.not_friends',
                        'typing-to-a-stranger': 'contact.not_friends'}, refusals
    # The burst is spent: of three more at once, at least two are over the rate.
    for n in range(3):
        a.send(id='fast-{}'.format(n), cmd=10, dstid=bob.id, media=1, content='quick')
    acks = [a.recv_ack() for _ in range(3)]
    over = [ack.get('reason') for ack in acks if ack['code'] != 0]
    assert len(over) >= 2 and set(over) == {'rate_limited.message'}, acks
