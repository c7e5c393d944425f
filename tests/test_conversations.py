"""Conversation events end to end (PROTOCOL.md, cmd 12-15, /chat/conversations): a real
server, real WebSocket clients, two devices of one user and several users, on SQLite
and MySQL."""
import pytest
from pony.orm import db_session

from imchat import create_app
from tests.test_chat import connect, pair, wait_for  # noqa: F401 (fixtures)


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
    assert rows[2]['readmsgid'] == to_bob[0]  # sending reads the conversation
    assert rows[2]['peerreadmsgid'] == 0
    assert conversations(client, alice, limit=2) == rows[:2]
    # Replying reads everything before the reply.
    a.send_texts(carol.id, ['yes'])
    assert conversation(client, alice, 10, carol.id)['unread'] == 0
    assert conversation(client, carol, 10, alice.id)['unread'] == 1


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
    db = app.extensions['imchat'].db
    with db_session:
        db.Conversation.select().delete(bulk=True)
    restarted = create_app(app_config)
    try:
        rows = conversations(restarted.test_client(), bob)
        assert [(r['target'], r['dstid'], r['last']['msgid'], r['unread']) for r in rows] == [
            (11, group, in_group[0], 0), (10, alice.id, to_bob[0], 0)]
        assert rows[1]['peerreadmsgid'] == to_bob[0]
    finally:
        restarted.extensions['imchat'].close()
