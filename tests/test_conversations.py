"""Conversation events end to end (docs/protocol.md, cmd 12-15, /chat/conversations): a real
server, real WebSocket clients, two devices of one user and several users, on SQLite
and MySQL."""
import time

import gevent
import pytest
from pony.orm import db_session

from imchat import create_app
from tests.wsclient import ChatClient
from tests.harness import wait_for
from tests.test_chat import connect, pair  # noqa: F401 (fixtures)


def conversations(client, account, **query):
    response = client.get('/chat/conversations', query_string=query, headers=account.headers)
    assert response.status_code == 200, response.json
    return response.json['rows']


def conversation(client, account, target, dstid):
    found = [row for row in conversations(client, account)
             if row['target'] == target and row['dstid'] == dstid]
    assert len(found) == 1, found
    return found[0]


def read(ws, target, dstid, msgid):
    ws.send(cmd=12, target=target, dstid=dstid, msgid=msgid)
    return ws.recv_ack()


@pytest.fixture
def group_of_three(auth):
    alice, bob, carol = (auth.register(nickname=n) for n in ('alice', 'bob', 'carol'))
    group = auth.create_community(alice, 'trio')
    auth.join(bob, group['id'])
    auth.join(carol, group['id'])
    return alice, bob, carol, group['id']


# -- cmd 12: read positions -------------------------------------------------------------

def test_a_read_reaches_my_other_devices_and_the_peer(pair, connect, auth, client):
    alice, bob = pair
    phone, laptop, b = connect(alice), connect(auth.login(alice)), connect(bob)
    ids = b.send_texts(alice.id, ['one', 'two', 'three'])
    for ws in (phone, laptop):
        assert [m['msgid'] for m in ws.recv_messages(3)] == ids
    assert conversation(client, alice, 10, bob.id)['unread'] == 3
    ack = read(phone, 10, bob.id, ids[1])
    assert ack['code'] == 0
    event = {'cmd': 12, 'userid': alice.id, 'target': 10, 'dstid': bob.id, 'msgid': ids[1]}
    assert laptop.recv() == event
    assert b.recv() == event
    phone.expect_nothing()
    mine = conversation(client, alice, 10, bob.id)
    assert (mine['unread'], mine['readmsgid']) == (1, ids[1])
    theirs = conversation(client, bob, 10, alice.id)
    assert (theirs['peerreadmsgid'], theirs['unread']) == (ids[1], 0)


def test_a_read_position_only_moves_forward(pair, connect, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    ids = b.send_texts(alice.id, ['one', 'two', 'three'])
    a.recv_messages(3)
    assert read(a, 10, bob.id, ids[2])['code'] == 0
    assert b.recv()['msgid'] == ids[2]
    assert read(a, 10, bob.id, ids[0])['code'] == 0
    b.expect_nothing()
    row = conversation(client, alice, 10, bob.id)
    assert (row['readmsgid'], row['unread']) == (ids[2], 0)


def test_a_read_past_the_last_message_stops_at_it(pair, connect, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    ids = b.send_texts(alice.id, ['one', 'two'])
    a.recv_messages(2)
    assert read(a, 10, bob.id, ids[-1] + 1000)['code'] == 0
    assert b.recv()['msgid'] == ids[-1]
    b.text(alice.id, 'three')
    b.recv_ack()
    row = conversation(client, alice, 10, bob.id)
    assert (row['readmsgid'], row['unread']) == (ids[-1], 1)


def test_a_group_read_reaches_my_devices_and_no_one_else(group_of_three, connect, auth, client):
    alice, bob, carol, group = group_of_three
    a, b1, b2 = connect(alice), connect(bob), connect(auth.login(bob))
    ids = connect(carol).send_texts(group, ['hi', 'all'], cmd=11)
    for ws in (b1, b2):
        assert [m['msgid'] for m in ws.recv_messages(2)] == ids
    assert read(b1, 11, group, ids[0])['code'] == 0
    assert b2.recv() == {'cmd': 12, 'userid': bob.id, 'target': 11,
                                       'dstid': group, 'msgid': ids[0]}
    a.recv_messages(2)
    a.expect_nothing()
    row = conversation(client, bob, 11, group)
    assert (row['readmsgid'], row['unread']) == (ids[0], 1)
    assert 'peerreadmsgid' not in row


@pytest.mark.parametrize('frame, reason', [
    ({'target': 10}, 'not your friend'),
    ({'target': 11}, 'not a member'),
    ({'target': 10, 'dstid': 999999}, 'no user 999999'),
    ({'target': 11, 'dstid': 999999}, 'no community 999999'),
    ({'target': 12}, 'target must be 10'),
    ({'target': 10, 'msgid': 'x'}, 'msgid must be a whole number'),
])
def test_reading_a_conversation_i_am_not_in_is_refused(auth, connect, pair, frame, reason):
    alice, bob = pair
    group = auth.create_community(bob)['id']
    stranger = auth.register()
    s, b = connect(stranger), connect(bob)
    full = {'cmd': 12, 'dstid': bob.id if frame['target'] == 10 else group, 'msgid': 1}
    full.update(frame)
    sent = s.send(**full)
    ack = s.recv_ack()
    assert ack['code'] == -1 and ack['id'] == sent and reason in ack['msg'], ack
    b.expect_nothing()


# -- /chat/conversations ---------------------------------------------------------------

def test_conversations_most_recent_first_with_unread_counts(group_of_three, connect, auth,
                                                          client):
    alice, bob, carol, group = group_of_three
    auth.befriend(alice, bob)
    auth.befriend(alice, carol)
    a, b, c = connect(alice), connect(bob), connect(carol)
    to_bob = a.send_texts(bob.id, ['hi bob'])
    assert b.recv()['msgid'] == to_bob[0]
    from_carol = c.send_texts(alice.id, ['hi alice', 'are you there?'])
    in_group = b.send_texts(group, ['bob to the group'], cmd=11)
    assert [m['msgid'] for m in a.recv_messages(3)] == from_carol + in_group
    rows = conversations(client, alice)
    assert [(r['target'], r['dstid']) for r in rows] == [(11, group), (10, carol.id),
                                                         (10, bob.id)]
    assert [r['unread'] for r in rows] == [1, 2, 0]
    assert rows[0]['last']['msgid'] == in_group[0]
    assert rows[0]['last']['content'] == 'bob to the group'
    assert rows[1]['last'] == {'msgid': from_carol[1], 'userid': carol.id, 'cmd': 10,
                               'dstid': alice.id, 'media': 1,
                               'createat': rows[1]['last']['createat'],
                               'content': 'are you there?'}
    assert rows[2]['readmsgid'] == 0  # sending reads nothing; my own are never unread
    assert rows[2]['peerreadmsgid'] == 0
    assert conversations(client, alice, limit=2) == rows[:2]
    a.send_texts(carol.id, ['yes'])
    assert conversation(client, alice, 10, carol.id)['unread'] == 2
    assert conversation(client, carol, 10, alice.id)['unread'] == 1


def test_a_read_sent_after_a_reply_still_reaches_the_peer(pair, connect, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    question = a.send_texts(bob.id, ['coming?'])[0]
    assert b.recv()['msgid'] == question
    answer = b.send_texts(alice.id, ['yes'])[0]  # stored before bob's client says it read
    assert a.recv()['msgid'] == answer
    assert read(b, 10, alice.id, question)['code'] == 0
    assert a.recv() == {'cmd': 12, 'userid': bob.id, 'target': 10, 'dstid': alice.id,
                        'msgid': question}
    assert conversation(client, alice, 10, bob.id)['peerreadmsgid'] == question


def test_group_unread_counts_only_messages_since_joining(group_of_three, connect, auth, client):
    alice, bob, carol, group = group_of_three
    a = connect(alice)
    a.send_texts(group, ['before dave'], cmd=11)
    dave = auth.register()
    assert conversations(client, dave) == []
    auth.join(dave, group)
    assert conversations(client, dave) == []  # nothing there for dave yet
    later = a.send_texts(group, ['after dave', 'and again'], cmd=11)
    row = conversation(client, dave, 11, group)
    assert (row['unread'], row['last']['msgid']) == (2, later[-1])
    d = connect(dave)
    assert [m['msgid'] for m in d.recv_messages(2)] == later
    assert read(d, 11, group, later[0])['code'] == 0
    assert conversation(client, dave, 11, group)['unread'] == 1
    assert conversation(client, bob, 11, group)['unread'] == 3


def test_conversations_bad_fields_and_token(client, auth):
    alice = auth.register()
    response = client.get('/chat/conversations', query_string={'limit': 0},
                          headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == 'limit'
    response = client.get('/chat/conversations')
    assert response.status_code == 401 and response.json['code'] == -1


def test_a_database_from_before_conversations_gets_its_list_at_start(group_of_three, connect,
                                                                     auth, app, app_config):
    alice, bob, carol, group = group_of_three
    auth.befriend(alice, bob)
    a = connect(alice)
    to_bob = a.send_texts(bob.id, ['hi'])
    in_group = a.send_texts(group, ['hello'], cmd=11)
    quiet = auth.create_community(carol, 'quiet')['id']  # members, no messages yet
    auth.join(bob, quiet)
    db = app.extensions['imchat'].db
    with db_session:
        db.Conversation.select().delete(bulk=True)
    restarted = create_app(app_config)
    try:
        rows = conversations(restarted.test_client(), bob)
        assert [(r['target'], r['dstid'], r['last']['msgid'], r['unread']) for r in rows] == [
            (11, group, in_group[0], 0), (10, alice.id, to_bob[0], 0)]
        assert rows[1]['peerreadmsgid'] == to_bob[0]
        with db_session:
            assert restarted.extensions['imchat'].db.Conversation.exists(
                ownerid=bob.id, target=11, dstid=quiet)
    finally:
        restarted.extensions['imchat'].close()


# -- cmd 13: typing, cmd 15: presence --------------------------------------------------

def listening(connect, account):
    """A connection that sees typing (the test client skips it, and presence)."""
    ws = connect(account)
    ws.ignore = {15}
    return ws


@pytest.mark.slow  # waits two seconds of typing limit
def test_typing_reaches_the_friends_connections_at_most_every_two_seconds(pair, connect, auth):
    alice, bob = pair
    b1, b2 = listening(connect, bob), listening(connect, auth.login(bob))
    a = listening(connect, alice)
    before_first = time.monotonic()
    a.send(cmd=13, dstid=bob.id)
    assert a.recv_ack()['code'] == 0
    after_first = time.monotonic()
    typing = {'cmd': 13, 'userid': alice.id, 'dstid': bob.id}
    for ws in (b1, b2):
        assert ws.recv() == typing
    a.send(cmd=13, dstid=bob.id)
    assert a.recv_ack()['code'] == 0
    if time.monotonic() - before_first < 2:  # within 2 s: acknowledged and dropped
        b1.expect_nothing(0.3)
    # The two seconds passing is what is tested: then typing goes through again.
    gevent.sleep(max(0, after_first + 2.05 - time.monotonic()))
    a.send(cmd=13, dstid=bob.id)
    assert a.recv_ack()['code'] == 0
    assert b1.recv() == typing and b2.recv() == typing
    a.expect_nothing()


def test_typing_to_a_stranger_is_refused(pair, connect, auth):
    alice, bob = pair
    stranger = auth.register()
    s, b = listening(connect, stranger), listening(connect, bob)
    sent = s.send(cmd=13, dstid=bob.id)
    ack = s.recv_ack()
    assert ack['code'] == -1 and ack['id'] == sent and 'not your friend' in ack['msg']
    b.expect_nothing()


def test_typing_to_an_offline_friend_costs_nothing(pair, connect, live_server):
    alice, bob = pair
    a = listening(connect, alice)
    a.send(cmd=13, dstid=bob.id)
    assert a.recv_ack()['code'] == 0
    assert not live_server.hub.is_online(bob.id)


@pytest.mark.slow  # waits the presence grace
def test_presence_goes_to_friends_when_first_connection_opens_and_after_grace_when_last_closes(
        auth, live_server):
    live_server.app.extensions['imchat'].events.presence_grace = 1

    alice, bob, stranger = auth.register(), auth.register(), auth.register()
    auth.befriend(alice, bob)
    clients = []

    def open_client(account):
        before = set(live_server.hub.users.get(account.id, ()))
        ws = ChatClient(live_server.ws_url(account), ignore=())
        clients.append(ws)
        assert wait_for(lambda: set(live_server.hub.users.get(account.id, ())) - before)
        return ws
    try:
        b, s = open_client(bob), open_client(stranger)
        a1 = open_client(alice)
        assert b.recv() == {'cmd': 15, 'userid': alice.id, 'online': 1}
        a2 = open_client(auth.login(alice))
        b.expect_nothing(0.5)  # a second device changes nothing
        a1.close()
        b.expect_nothing(1.5)  # alice is still on her laptop
        a2.close()
        assert b.recv(timeout=10) == {'cmd': 15, 'userid': alice.id, 'online': 0}
        s.expect_nothing()
    finally:
        for ws in clients:
            ws.close()


@pytest.mark.slow  # waits the presence grace, twice
def test_a_quick_reconnect_does_not_flap(auth, live_server):
    # Long enough for a reconnect on a loaded machine.
    live_server.app.extensions['imchat'].events.presence_grace = 5

    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    b = ChatClient(live_server.ws_url(bob), ignore=())
    assert wait_for(lambda: live_server.hub.is_online(bob.id))
    a = ChatClient(live_server.ws_url(alice))
    try:
        assert b.recv() == {'cmd': 15, 'userid': alice.id, 'online': 1}
        a.close()
        assert wait_for(lambda: not live_server.hub.is_online(alice.id))
        a = ChatClient(live_server.ws_url(alice))
        assert wait_for(lambda: live_server.hub.is_online(alice.id))
        b.expect_nothing(6)  # past the grace period: neither offline nor online again
    finally:
        a.close()
        b.close()


# -- cmd 14: recall --------------------------------------------------------------------

def recall(ws, msgid, **extra):
    ws.send(cmd=14, msgid=msgid, **extra)
    return ws.recv_ack()


def stored_message(app, msgid):
    with db_session:
        row = app.extensions['imchat'].db.Message[msgid]
        return row.media, row.content, row.url, row.amount


def test_a_recall_reaches_everyone_and_erases_the_body(pair, connect, auth, client, app):
    alice, bob = pair
    phone, laptop, b = connect(alice), connect(auth.login(alice)), connect(bob)
    phone.send(cmd=10, dstid=bob.id, media=4, url='/mnt/oops.png')
    sent = phone.recv_ack()
    assert laptop.recv()['msgid'] == b.recv()['msgid'] == sent['msgid']
    ack = recall(phone, sent['msgid'], id='recall-0001')
    assert ack['code'] == 0 and ack['id'] == 'recall-0001' and ack['msgid'] > sent['msgid']
    event = {'msgid': ack['msgid'], 'userid': alice.id, 'cmd': 14, 'target': 10,
             'dstid': bob.id, 'recalledmsgid': sent['msgid'], 'createat': ack['createat']}
    assert laptop.recv() == event
    assert b.recv() == event
    phone.expect_nothing()
    assert stored_message(app, sent['msgid']) == (0, '', '', 0)
    history = client.get('/chat/history', query_string={'cmd': 10, 'dstid': alice.id},
                         headers=bob.headers).json['rows']
    assert history == [{'msgid': sent['msgid'], 'userid': alice.id, 'cmd': 10,
                        'dstid': bob.id, 'media': 0, 'createat': sent['createat'],
                        'recalled': 1}]
    # Sent again after a dropped connection: the same ack, nothing new delivered.
    assert recall(phone, sent['msgid'], id='recall-0001') == ack
    b.expect_nothing()


def test_an_offline_client_learns_of_a_recall_through_since(pair, connect):
    alice, bob = pair
    a = connect(alice)
    first, oops = a.send_texts(bob.id, ['hello', 'oops'])
    recalled = recall(a, oops)
    assert recalled['code'] == 0
    had_seen_oops = connect(bob, since=oops)
    assert had_seen_oops.recv() == {
        'msgid': recalled['msgid'], 'userid': alice.id, 'cmd': 14, 'target': 10,
        'dstid': bob.id, 'recalledmsgid': oops, 'createat': recalled['createat']}
    had_nothing = connect(bob, since=0)
    backlog = had_nothing.recv_messages(3)
    assert [m['msgid'] for m in backlog] == [first, oops, recalled['msgid']]
    assert backlog[0]['content'] == 'hello'
    assert backlog[1]['recalled'] == 1 and 'content' not in backlog[1]
    assert backlog[2]['cmd'] == 14


def test_a_group_recall_reaches_the_members(group_of_three, connect, client):
    alice, bob, carol, group = group_of_three
    a, b, c = connect(alice), connect(bob), connect(carol)
    oops = a.send_texts(group, ['wrong group'], cmd=11)[0]
    b.recv()
    c.recv()
    ack = recall(a, oops)
    assert ack['code'] == 0
    for ws in (b, c):
        got = ws.recv()
        assert (got['cmd'], got['target'], got['dstid'], got['recalledmsgid']) == (
            14, 11, group, oops)
    row = conversation(client, carol, 11, group)
    assert row['last'] == {'msgid': oops, 'userid': alice.id, 'cmd': 11, 'dstid': group,
                           'media': 0, 'createat': row['last']['createat'], 'recalled': 1}


def test_only_the_sender_recalls_and_only_in_time(pair, connect, app):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    mine, old = a.send_texts(bob.id, ['mine', 'old'])
    b.recv_messages(2)
    refused = recall(b, mine, id='r1')
    assert refused['code'] == -1 and refused['id'] == 'r1' and 'not yours' in refused['msg']
    assert 'no message 999999' in recall(b, 999999)['msg']
    with db_session:
        app.extensions['imchat'].db.Message[old].createat -= 121 * 1000
    late = recall(a, old)
    assert late['code'] == -1 and 'too old' in late['msg'] and '120 seconds' in late['msg']
    assert stored_message(app, old)[1] == 'old'
    assert recall(a, mine)['code'] == 0
    again = recall(a, mine)
    assert again['code'] == -1 and 'already recalled' in again['msg']
    assert b.recv()['recalledmsgid'] == mine
    b.expect_nothing()
    app.extensions['imchat'].permissions.recall_seconds = 0  # no limit
    assert recall(a, old)['code'] == 0


# -- /contact/delfriend, quitcommunity, kick, transfer ---------------------------------

def post(client, account, path, **fields):
    return client.post(path, data=fields, headers=account.headers)


def test_unfriending_stops_both_directions_at_once_on_open_connections(pair, connect, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    hello = a.send_texts(bob.id, ['hello'])  # the permission is cached now
    b.recv()
    response = post(client, alice, '/contact/delfriend', dstid=bob.id)
    assert response.status_code == 200 and response.json['code'] == 0
    for ws, peer in ((a, bob), (b, alice)):
        ws.text(peer.id, 'still there?')
        ack = ws.recv_ack()
        assert ack['code'] == -1 and 'not your friend' in ack['msg']
        ws.send(cmd=13, dstid=peer.id)
        assert ws.recv_ack()['code'] == -1
    a.expect_nothing()
    b.expect_nothing()
    history = client.get('/chat/history', query_string={'cmd': 10, 'dstid': alice.id},
                         headers=bob.headers).json['rows']
    assert [m['msgid'] for m in history] == hello
    assert client.get('/contact/loadfriend', headers=bob.headers).json['rows'] == []
    again = post(client, alice, '/contact/delfriend', dstid=bob.id)
    assert again.status_code == 404 and again.json['field'] == 'dstid'


def test_a_kicked_member_stops_receiving_at_once(group_of_three, connect, auth, client):
    alice, bob, carol, group = group_of_three
    a, b1, b2, c = connect(alice), connect(bob), connect(auth.login(bob)), connect(carol)
    b1.send_texts(group, ['bob was here'], cmd=11)
    for ws in (a, b2, c):
        ws.recv()
    assert post(client, bob, '/contact/kick', dstid=group, memberid=carol.id).status_code == 403
    response = post(client, alice, '/contact/kick', dstid=group, memberid=bob.id)
    assert response.status_code == 200 and response.json['code'] == 0
    # Bob is told (cmd 17, issue 22), and then hears nothing more of the group.
    for ws in (b1, b2):
        assert ws.recv() == {'cmd': 17, 'event': 'kicked', 'userid': alice.id,
                             'dstid': group, 'memberid': bob.id}
    a.send_texts(group, ['bob is gone'], cmd=11)
    assert c.recv()['content'] == 'bob is gone'
    b1.expect_nothing()
    b2.expect_nothing()
    b1.text(group, 'let me back', cmd=11)
    ack = b1.recv_ack()
    assert ack['code'] == -1 and 'not a member' in ack['msg']
    assert [(r['target'], r['dstid']) for r in conversations(client, bob)] == []
    assert client.get('/chat/history', query_string={'cmd': 11, 'dstid': group},
                      headers=bob.headers).status_code == 403
    members = client.get('/contact/members', query_string={'dstid': group},
                         headers=alice.headers).json['rows']
    assert sorted(m['id'] for m in members) == sorted([alice.id, carol.id])


@pytest.mark.parametrize('fields, status, field', [
    ({'memberid': 'me'}, 400, 'memberid'),
    ({'memberid': 'self'}, 400, 'memberid'),
    ({'memberid': 'stranger'}, 404, 'memberid'),
    ({'dstid': 999999, 'memberid': 'carol'}, 404, 'dstid'),
    ({}, 400, 'memberid'),
])
@pytest.mark.parametrize('path', ['/contact/kick', '/contact/transfer'])
def test_kick_and_transfer_bad_fields(group_of_three, auth, client, path, fields, status, field):
    alice, bob, carol, group = group_of_three
    stranger = auth.register()
    ids = {'self': alice.id, 'stranger': stranger.id, 'carol': carol.id, 'me': 'x'}
    data = {'dstid': group}
    data.update({k: ids.get(v, v) for k, v in fields.items()})
    response = client.post(path, data=data, headers=alice.headers)
    assert response.status_code == status and response.json['field'] == field, response.json


def test_leaving_and_passing_ownership(group_of_three, connect, auth, client):
    alice, bob, carol, group = group_of_three
    a, c = connect(alice), connect(carol)
    c.send_texts(group, ['carol speaking'], cmd=11)
    a.recv()
    assert post(client, carol, '/contact/quitcommunity', dstid=group).status_code == 200
    a.send_texts(group, ['carol left'], cmd=11)
    c.expect_nothing()
    c.text(group, 'hello?', cmd=11)
    assert c.recv_ack()['code'] == -1
    again = post(client, carol, '/contact/quitcommunity', dstid=group)
    assert again.status_code == 404 and again.json['field'] == 'dstid'
    refused = post(client, alice, '/contact/quitcommunity', dstid=group)
    assert refused.status_code == 409 and 'transfer' in refused.json['msg']
    assert post(client, bob, '/contact/transfer', dstid=group,
                memberid=alice.id).status_code == 403
    assert post(client, alice, '/contact/transfer', dstid=group,
                memberid=bob.id).status_code == 200
    [community] = client.get('/contact/loadcommunity', headers=bob.headers).json['rows']
    assert community['ownerid'] == bob.id
    assert post(client, alice, '/contact/kick', dstid=group, memberid=bob.id).status_code == 403
    assert post(client, alice, '/contact/quitcommunity', dstid=group).status_code == 200
    assert post(client, bob, '/contact/quitcommunity', dstid=group).status_code == 200
    gone = post(client, carol, '/contact/joincommunity', dstid=group)
    assert gone.status_code == 404  # the last member left: the community is gone


@pytest.mark.slow  # waits the database timeout
def test_a_read_while_the_database_is_locked_is_refused_and_the_connection_stays(tmp_path):
    import sqlite3

    from tests.test_outage import REFUSAL_WITHIN, Deployment

    path = tmp_path / 'imchat.db'
    deployment = Deployment('sqlite:///{}'.format(path), tmp_path)
    other_process = sqlite3.connect(str(path), timeout=1, isolation_level=None)
    alice, bob = deployment.alice, deployment.bob
    try:
        a, b = deployment.connect(alice), deployment.connect(bob)
        a.text(bob['id'], 'before')
        sent = a.recv_ack()
        assert b.recv()['msgid'] == sent['msgid']
        other_process.execute('BEGIN EXCLUSIVE')
        b.send(cmd=12, target=10, dstid=alice['id'], msgid=sent['msgid'])
        ack = b.recv_ack(timeout=REFUSAL_WITHIN)
        assert ack['code'] == -1 and 'database is unavailable' in ack['msg'], ack
        other_process.execute('ROLLBACK')

        def read_goes_through():
            b.send(cmd=12, target=10, dstid=alice['id'], msgid=sent['msgid'])
            return b.recv_ack(timeout=REFUSAL_WITHIN)['code'] == 0
        assert wait_for(read_goes_through, timeout=60, interval=0.5)
        assert a.recv(timeout=REFUSAL_WITHIN)['cmd'] == 12
    finally:
        other_process.close()
        deployment.close()


def test_memberships_without_messages_get_their_rows_at_start(auth, app, app_config):
    alice, bob = auth.register(), auth.register()
    group = auth.create_community(alice)['id']
    auth.join(bob, group)
    with db_session:
        app.extensions['imchat'].db.Conversation.select().delete(bulk=True)
    restarted = create_app(app_config)
    try:
        with db_session:
            rows = restarted.extensions['imchat'].db.Conversation.select()[:]
            assert sorted((r.ownerid, r.target, r.dstid) for r in rows) == [
                (alice.id, 11, group), (bob.id, 11, group)]
    finally:
        restarted.extensions['imchat'].close()


def test_online_shows_to_friends_only(auth, connect, client):
    """Whether someone is connected is theirs to show friends: a stranger (or a fellow
    member of a group) finding their profile or the member list sees `online: 0`."""
    alice, friend, stranger = auth.register(), auth.register(), auth.register()
    auth.befriend(alice, friend)
    group = auth.create_community(alice)
    for account in (friend, stranger):
        auth.join(account, group['id'])
    connect(alice)

    def online_as_seen_by(viewer):
        found = client.post('/user/find', data={'id': alice.id}, headers=viewer.headers)
        members = client.post('/contact/members', data={'dstid': group['id']},
                              headers=viewer.headers)
        listed = [row for row in members.json['rows'] if row['id'] == alice.id][0]
        return found.json['data']['online'], listed['online']

    assert online_as_seen_by(friend) == (1, 1)
    assert online_as_seen_by(stranger) == (0, 0)
    assert online_as_seen_by(alice) == (1, 1)
    friends = client.post('/contact/loadfriend', headers=friend.headers).json['rows']
    assert [row['online'] for row in friends if row['id'] == alice.id] == [1]


# -- once the relationship is gone ---------------------------------------------------------

def test_an_ex_friends_read_receipt_is_refused_and_reaches_nobody(pair, connect, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    ids = b.send_texts(alice.id, ['one'])
    assert a.recv()['msgid'] == ids[0]
    response = client.post('/contact/delfriend', data={'dstid': bob.id}, headers=alice.headers)
    assert response.status_code == 200, response.json
    ack = read(a, 10, bob.id, ids[0])
    assert ack['code'] == -1 and ack['reason'] == 'contact.not_friends', ack
    b.expect_nothing()


def test_an_ex_friends_recall_is_refused_and_reaches_nobody(pair, connect, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    msgid = a.send_texts(bob.id, ['oops'])[0]
    assert b.recv()['msgid'] == msgid
    response = client.post('/contact/delfriend', data={'dstid': bob.id}, headers=alice.headers)
    assert response.status_code == 200, response.json
    a.send(cmd=14, msgid=msgid)
    ack = a.recv_ack()
    assert ack['code'] == -1 and 'not your friend' in ack['msg'], ack
    b.expect_nothing()


def test_a_kicked_members_recall_is_refused_and_reaches_nobody(group_of_three, connect,
                                                                client):
    alice, bob, carol, group = group_of_three
    a, b, c = connect(alice), connect(bob), connect(carol)
    b.ignore.add(17)  # told it was kicked (issue 22): not what this test is about
    msgid = b.send_texts(group, ['oops'], cmd=11)[0]
    assert a.recv()['msgid'] == msgid and c.recv()['msgid'] == msgid
    response = client.post('/contact/kick', data={'dstid': group, 'memberid': bob.id},
                           headers=alice.headers)
    assert response.status_code == 200, response.json
    b.send(cmd=14, msgid=msgid)
    ack = b.recv_ack()
    assert ack['code'] == -1 and 'not a member' in ack['msg'], ack
    a.expect_nothing()
    c.expect_nothing()
