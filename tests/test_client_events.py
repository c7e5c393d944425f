"""What the web client (and the original's) needs from the server beside messages: a
connection's own messages count as seen by its resume point; contact events (cmd 17)
for a changed profile or group, so that lists follow the server."""
import pytest

from tests.test_chat import connect, wait_for  # noqa: F401  (a fixture, found by name)


@pytest.fixture
def pair(auth):
    alice, bob = auth.register(nickname='alice'), auth.register(nickname='bob')
    auth.befriend(alice, bob)
    return alice, bob


def test_a_connections_own_messages_are_not_replayed_to_it_without_since(pair, connect,
                                                                         live_server):
    # The original client never says `since`: what it sent just before a reload must
    # not come back as new.
    alice, bob = pair
    a = connect(alice)
    a.send_texts(bob.id, ['before the reload 1', 'before the reload 2'])
    a.close()
    assert wait_for(lambda: not live_server.hub.is_online(alice.id))
    again = connect(alice)
    again.expect_nothing()


def test_what_others_sent_meanwhile_still_arrives_without_since(pair, connect, live_server):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    [mine] = a.send_texts(bob.id, ['mine'])
    assert b.recv()['msgid'] == mine
    b.close()
    a.close()
    assert wait_for(lambda: not live_server.hub.is_online(alice.id))
    # Bob's message after Alice's, sent while she was away, is replayed; hers is not.
    b2 = connect(bob, since=mine)
    [theirs] = b2.send_texts(alice.id, ['while you were away'])
    again = connect(alice)
    got = again.recv()
    assert got['msgid'] == theirs and got['content'] == 'while you were away'
    again.expect_nothing()


def test_adding_a_friend_without_requests_tells_the_other_person_at_once(auth, client, connect):
    # IMCHAT_FRIEND_REQUESTS=0 (the original's way, and the suite's): friends at once.
    alice, bob = auth.register(nickname='alice'), auth.register(nickname='bob')
    b = connect(bob)
    b.ignore.discard(17)
    response = client.post('/contact/addfriend', data={'dstid': bob.id}, headers=alice.headers)
    assert response.status_code == 200
    assert b.recv() == {'cmd': 17, 'event': 'accepted', 'userid': alice.id, 'dstid': bob.id}


def test_a_new_profile_reaches_friends_and_fellow_members(auth, client, connect):
    alice, bob, cat, stranger = (auth.register(nickname=n) for n in ('alice', 'bob', 'cat', 'x'))
    auth.befriend(alice, bob)
    group = auth.create_community(alice)['id']
    auth.join(cat, group)
    b, c, s = connect(bob), connect(cat), connect(stranger)
    for ws in (b, c, s):
        ws.ignore.discard(17)
    response = client.post('/user/update', data={'nickname': 'Alice L.'}, headers=alice.headers)
    assert response.status_code == 200
    for ws in (b, c):
        assert ws.recv() == {'cmd': 17, 'event': 'profile', 'userid': alice.id, 'dstid': alice.id}
    s.expect_nothing()


def test_the_owner_renames_a_group_and_gives_it_a_picture(auth, client, connect):
    owner, member = auth.register(), auth.register()
    group = auth.create_community(owner, 'Hikers')['id']
    auth.join(member, group)
    m = connect(member)
    m.ignore.discard(17)
    response = client.post('/contact/updatecommunity', headers=owner.headers,
                           data={'dstid': group, 'name': 'Hikers 2', 'icon': '/mnt/x.png'})
    assert response.status_code == 200, response.json
    assert response.json['data']['name'] == 'Hikers 2'
    assert response.json['data']['icon'] == '/mnt/x.png'
    assert m.recv() == {'cmd': 17, 'event': 'community', 'userid': owner.id, 'dstid': group}
    rows = client.post('/contact/loadcommunity', headers=member.headers).json['rows']
    assert [(r['name'], r['icon']) for r in rows] == [('Hikers 2', '/mnt/x.png')]
