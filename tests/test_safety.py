"""Issue 22, "Who may reach me": friend requests, blocks, mutes, community roles and join
rules, reports, bans, over HTTP and the WebSocket (SQLite and MySQL)."""
import json

import pytest
from pony.orm import db_session

from tests.conftest import SAFETY_DEFAULTS
from tests.harness import wait_for
from tests.test_chat import connect  # noqa: F401 (a fixture)


@pytest.fixture
def app_settings():
    """What a test changes from the defaults (parametrize it)."""
    return {}


@pytest.fixture
def app_config(app_config, app_settings):
    return {**app_config, **SAFETY_DEFAULTS, **app_settings}


def call(client, path, who, **data):
    return client.post(path, data=data, headers=who.headers)


def friends_of(client, who):
    return [f['id'] for f in call(client, '/contact/loadfriend', who).json['rows']]


def befriend(client, a, b):
    assert call(client, '/contact/addfriend', a, dstid=b.id).json['data'] == {'status': 'requested'}
    assert call(client, '/contact/accept', b, dstid=a.id).status_code == 200


# -- friend requests -----------------------------------------------------------------

def test_a_request_waits_for_acceptance(client, auth):
    alice, bob = auth.register(nickname='alice'), auth.register()
    reply = call(client, '/contact/addfriend', alice, dstid=bob.id, memo='hi, from the hike')
    assert reply.json['data'] == {'status': 'requested'}
    assert friends_of(client, alice) == [] and friends_of(client, bob) == []
    incoming = call(client, '/contact/requests', bob).json['rows']
    assert [(r['userid'], r['direction'], r['memo'], r['nickname']) for r in incoming] == [
        (alice.id, 'in', 'hi, from the hike', 'alice')]
    assert call(client, '/contact/requests', alice).json['rows'][0]['direction'] == 'out'
    assert call(client, '/contact/accept', bob, dstid=alice.id).status_code == 200
    assert friends_of(client, alice) == [bob.id] and friends_of(client, bob) == [alice.id]
    assert call(client, '/contact/requests', bob).json['rows'] == []


def test_mutual_requests_are_friends_at_once(client, auth):
    alice, bob = auth.register(), auth.register()
    call(client, '/contact/addfriend', alice, dstid=bob.id)
    reply = call(client, '/contact/addfriend', bob, dstid=alice.id)
    assert reply.json['data'] == {'status': 'friends'}
    assert friends_of(client, alice) == [bob.id]


def test_decline_and_repeat_limit(client, auth):
    alice, bob = auth.register(), auth.register()
    call(client, '/contact/addfriend', alice, dstid=bob.id)
    assert call(client, '/contact/decline', bob, dstid=alice.id).status_code == 200
    assert call(client, '/contact/requests', bob).json['rows'] == []
    assert friends_of(client, bob) == []
    for _ in range(2):
        assert call(client, '/contact/addfriend', alice, dstid=bob.id).status_code == 200
    refused = call(client, '/contact/addfriend', alice, dstid=bob.id)
    assert refused.status_code == 429 and refused.json['reason'] == 'contact.request_repeated'
    missing = call(client, '/contact/accept', alice, dstid=bob.id)
    assert missing.status_code == 404 and missing.json['reason'] == 'contact.no_request'


def test_a_new_account_may_ask_few_strangers(app, client, auth):
    app.extensions['imchat'].friend_requests.new_account = 2
    alice = auth.register()
    others = [auth.register() for _ in range(3)]
    for other in others[:2]:
        assert call(client, '/contact/addfriend', alice, dstid=other.id).status_code == 200
    refused = call(client, '/contact/addfriend', alice, dstid=others[2].id)
    assert refused.status_code == 429 and refused.json['reason'] == 'contact.new_account'


def test_requests_per_day(app, client, auth):
    requests = app.extensions['imchat'].friend_requests
    requests.per_day, requests.new_account = 2, 0
    alice = auth.register()
    others = [auth.register() for _ in range(3)]
    for other in others[:2]:
        call(client, '/contact/addfriend', alice, dstid=other.id)
    refused = call(client, '/contact/addfriend', alice, dstid=others[2].id)
    assert refused.status_code == 429 and refused.json['reason'] == 'contact.requests_per_day'


def test_no_message_until_accepted(auth, client, connect):
    alice, bob = auth.register(), auth.register()
    call(client, '/contact/addfriend', alice, dstid=bob.id)
    ws_alice, ws_bob = connect(alice), connect(bob)
    for sender, receiver in ((ws_alice, bob), (ws_bob, alice)):
        sender.text(receiver.id, 'hello?')
        assert sender.recv_ack()['code'] == -1
    call(client, '/contact/accept', bob, dstid=alice.id)
    accepted = ws_alice.recv()
    assert (accepted['cmd'], accepted['event'], accepted['userid']) == (17, 'accepted', bob.id)
    ws_alice.text(bob.id, 'now?')
    assert ws_alice.recv_ack()['code'] == 0
    assert ws_bob.recv()['content'] == 'now?'


def test_a_request_arrives_live(auth, client, connect):
    alice, bob = auth.register(nickname='alice'), auth.register()
    ws_bob = connect(bob)
    call(client, '/contact/addfriend', alice, dstid=bob.id, memo='hello')
    event = ws_bob.recv()
    assert {k: event[k] for k in ('cmd', 'event', 'userid', 'dstid', 'memo', 'nickname')} == {
        'cmd': 17, 'event': 'request', 'userid': alice.id, 'dstid': bob.id, 'memo': 'hello',
        'nickname': 'alice'}


@pytest.mark.parametrize('app_settings', [{'FRIEND_REQUESTS': False}])
def test_the_original_clients_add_then_load_without_requests(client, auth, connect):
    """IMCHAT_FRIEND_REQUESTS=0: `addfriend` makes friends at once and answers as the
    original did, so its client's next call, `loadfriend`, shows the friend."""
    alice, bob = auth.register(), auth.register(nickname='bob')
    added = call(client, '/contact/addfriend', alice, userid=alice.id, dstid=bob.id)
    assert added.status_code == 200 and added.json['data'] is None
    loaded = call(client, '/contact/loadfriend', alice, userid=alice.id).json['rows']
    assert [(f['id'], f['nickname']) for f in loaded] == [(bob.id, 'bob')]
    assert friends_of(client, bob) == [alice.id]
    assert call(client, '/contact/requests', bob).json['rows'] == []
    again = call(client, '/contact/addfriend', alice, dstid=bob.id)
    assert again.status_code == 409
    ws_alice, ws_bob = connect(alice), connect(bob)
    ws_alice.text(bob.id, 'straight away')
    assert ws_alice.recv_ack()['code'] == 0
    assert ws_bob.recv()['content'] == 'straight away'


# -- blocks --------------------------------------------------------------------------

def test_blocking_a_friend_ends_it_and_refuses_everything(auth, client, connect):
    alice, mallory = auth.register(), auth.register()
    befriend(client, alice, mallory)
    ws_mallory = connect(mallory)
    ws_mallory.ignore = {13}
    ws_alice = connect(alice)
    assert ws_mallory.recv()['cmd'] == 15  # alice came online: a friend sees it
    assert call(client, '/contact/block', alice, dstid=mallory.id).status_code == 200
    assert friends_of(client, alice) == [] and friends_of(client, mallory) == []
    ws_mallory.text(alice.id, 'still there?')
    refused = ws_mallory.recv_ack()
    assert refused['code'] == -1 and 'block' not in refused['msg']
    ws_mallory.send(cmd=13, dstid=alice.id)
    assert ws_mallory.recv_ack()['code'] == -1
    # Their request looks sent and goes nowhere.
    reply = call(client, '/contact/addfriend', mallory, dstid=alice.id)
    assert reply.status_code == 200 and reply.json['data'] == {'status': 'requested'}
    assert call(client, '/contact/requests', alice).json['rows'] == []
    # No `online` for them, no presence when alice comes and goes.
    assert call(client, '/user/find', mallory, id=alice.id).json['data']['online'] == 0
    # (Only friends see `online`: issue 25.) A friend of hers still does.
    friend = auth.register()
    befriend(client, alice, friend)
    assert call(client, '/user/find', friend, id=alice.id).json['data']['online'] == 1
    ws_alice.close()
    ws_mallory.expect_nothing(0.5)
    assert [u['id'] for u in call(client, '/contact/blocked', alice).json['rows']] == [mallory.id]
    mine = call(client, '/contact/addfriend', alice, dstid=mallory.id)
    assert mine.status_code == 403 and mine.json['reason'] == 'contact.you_block'


def test_unblock_restores_only_the_possibility(client, auth):
    alice, bob = auth.register(), auth.register()
    befriend(client, alice, bob)
    call(client, '/contact/block', alice, dstid=bob.id)
    assert call(client, '/contact/unblock', alice, dstid=bob.id).status_code == 200
    assert friends_of(client, alice) == []
    assert call(client, '/contact/blocked', alice).json['rows'] == []
    again = call(client, '/contact/unblock', alice, dstid=bob.id)
    assert again.status_code == 404 and again.json['reason'] == 'contact.not_blocked'
    befriend(client, bob, alice)
    assert friends_of(client, alice) == [bob.id]


# -- conversation mutes --------------------------------------------------------------

def test_mute_a_conversation(app, client, auth, connect):
    alice, bob = auth.register(), auth.register()
    befriend(client, alice, bob)
    ws_bob, ws_alice = connect(bob), connect(alice)
    ws_bob.text(alice.id, 'hi')
    assert ws_bob.recv_ack()['code'] == 0
    ws_alice.recv()  # bob's hi
    assert call(client, '/chat/mute', alice, target=10, dstid=bob.id, until=-1).status_code == 200
    # Alice's other devices follow (bob is not told).
    assert ws_alice.recv() == {'cmd': 17, 'event': 'mute', 'userid': alice.id,
                               'dstid': bob.id, 'target': 10, 'until': -1}
    ws_bob.expect_nothing(0.3)
    row = call(client, '/chat/conversations', alice).json['rows'][0]
    assert row['muteuntil'] == -1 and row['unread'] == 1
    mutes = app.extensions['imchat'].mutes
    assert mutes.is_muted(alice.id, 10, bob.id, False)
    assert not mutes.is_muted(alice.id, 10, bob.id, True)
    assert not mutes.is_muted(bob.id, 10, alice.id, False)
    call(client, '/chat/mute', alice, target=10, dstid=bob.id, until=0)
    assert call(client, '/chat/conversations', alice).json['rows'][0]['muteuntil'] == 0
    assert ws_alice.recv()['until'] == 0
    bad = call(client, '/chat/mute', alice, target=12, dstid=bob.id, until=-1)
    assert bad.status_code == 400 and bad.json['field'] == 'target'


# -- communities ---------------------------------------------------------------------

def make_community(client, owner, **fields):
    reply = call(client, '/contact/createcommunity', owner, name='hikers', **fields)
    assert reply.status_code == 200, reply.json
    return reply.json['data']


def test_approval_is_the_default_and_a_non_member_sees_only_the_profile(client, auth, connect):
    owner, stranger = auth.register(), auth.register(nickname='stranger')
    community = make_community(client, owner, memo='walks')
    assert community['joinmode'] == 'approval'
    ws_owner = connect(owner)
    asked = call(client, '/contact/joincommunity', stranger, dstid=community['id'], memo='me!')
    assert asked.json['data'] == {'status': 'requested'}
    event = ws_owner.recv()
    assert (event['event'], event['userid'], event['memo']) == ('joinrequest', stranger.id, 'me!')
    members = call(client, '/contact/members', stranger, dstid=community['id'])
    assert members.status_code == 403
    history = call(client, '/chat/history', stranger, cmd=11, dstid=community['id'])
    assert history.status_code == 403 or history.json['rows'] == []
    profile = call(client, '/contact/community', stranger, dstid=community['id']).json['data']
    assert profile == {'id': community['id'], 'name': 'hikers', 'icon': '', 'memo': 'walks',
                       'members': 1, 'joinmode': 'approval'}
    pending = call(client, '/contact/joinrequests', owner, dstid=community['id']).json['rows']
    assert [p['userid'] for p in pending] == [stranger.id]
    ws_stranger = connect(stranger)
    assert call(client, '/contact/approve', owner, dstid=community['id'],
                memberid=stranger.id).status_code == 200
    assert ws_stranger.recv()['event'] == 'approved'
    members = call(client, '/contact/members', stranger, dstid=community['id']).json['rows']
    assert {m['id']: m['role'] for m in members} == {owner.id: 'owner', stranger.id: 'member'}


def test_reject_and_invite_only(client, auth, connect):
    owner, friend, stranger = auth.register(), auth.register(), auth.register()
    community = make_community(client, owner, joinmode='invite')
    refused = call(client, '/contact/joincommunity', stranger, dstid=community['id'])
    assert refused.status_code == 403 and refused.json['reason'] == 'community.invite_only'
    befriend(client, owner, friend)
    ws_friend = connect(friend)
    assert call(client, '/contact/invite', owner, dstid=community['id'],
                memberid=friend.id).status_code == 200
    assert ws_friend.recv()['event'] == 'invited'
    not_friend = call(client, '/contact/invite', owner, dstid=community['id'],
                      memberid=stranger.id)
    assert not_friend.status_code == 404 and not_friend.json['reason'] == 'contact.not_friends'
    joined = call(client, '/contact/joincommunity', friend, dstid=community['id'])
    assert joined.json['data'] == {'status': 'joined'}
    call(client, '/contact/updatecommunity', owner, dstid=community['id'], joinmode='approval')
    call(client, '/contact/joincommunity', stranger, dstid=community['id'])
    ws_stranger = connect(stranger)
    call(client, '/contact/reject', owner, dstid=community['id'], memberid=stranger.id)
    assert ws_stranger.recv()['event'] == 'rejected'
    assert call(client, '/contact/members', stranger, dstid=community['id']).status_code == 403


def test_an_invitation_waits_for_an_invitee_who_was_away_and_can_be_declined(client, auth):
    owner, friend = auth.register(nickname='Olga'), auth.register()
    befriend(client, owner, friend)
    hikers = make_community(client, owner, joinmode='invite')
    cyclists = make_community(client, owner, joinmode='invite')
    for community in (hikers, cyclists):
        assert call(client, '/contact/invite', owner, dstid=community['id'],
                    memberid=friend.id).status_code == 200
    # Not connected when invited: the invitations wait, newest first, with each
    # community's public profile (a non-member sees no more) and who invited.
    rows = call(client, '/contact/invitations', friend).json['rows']
    assert [row['community']['id'] for row in rows] == [cyclists['id'], hikers['id']]
    assert rows[0]['inviterid'] == owner.id and rows[0]['nickname'] == 'Olga'
    assert rows[0]['community']['members'] == 1 and rows[0]['community']['joinmode'] == 'invite'
    assert call(client, '/contact/invitations', owner).json['rows'] == []
    # Declined: gone, and the community is closed to them again.
    assert call(client, '/contact/declineinvite', friend,
                dstid=cyclists['id']).status_code == 200
    assert [row['community']['id'] for row in
            call(client, '/contact/invitations', friend).json['rows']] == [hikers['id']]
    refused = call(client, '/contact/joincommunity', friend, dstid=cyclists['id'])
    assert refused.status_code == 403 and refused.json['reason'] == 'community.invite_only'
    # Accepted by joining: gone too.
    assert call(client, '/contact/joincommunity', friend,
                dstid=hikers['id']).json['data'] == {'status': 'joined'}
    assert call(client, '/contact/invitations', friend).json['rows'] == []
    bad = call(client, '/contact/declineinvite', friend, dstid='x')
    assert bad.status_code == 400 and bad.json['field'] == 'dstid'


def open_community(client, auth, owner, count):
    community = make_community(client, owner, joinmode='open')
    members = [auth.register() for _ in range(count)]
    for member in members:
        assert call(client, '/contact/joincommunity', member,
                    dstid=community['id']).json['data'] == {'status': 'joined'}
    return community['id'], members


def test_roles_kick_and_refusals(client, auth, connect):
    owner = auth.register()
    cid, (admin, member, other) = open_community(client, auth, owner, 3)
    by_member = call(client, '/contact/kick', member, dstid=cid, memberid=other.id)
    assert by_member.status_code == 403 and by_member.json['reason'] == 'community.admin_only'
    ws_admin = connect(admin)
    assert call(client, '/contact/setrole', owner, dstid=cid, memberid=admin.id,
                role='admin').status_code == 200
    assert (ws_admin.recv()['event'], ) == ('role', )
    not_owner = call(client, '/contact/setrole', admin, dstid=cid, memberid=member.id,
                     role='admin')
    assert not_owner.status_code == 403 and not_owner.json['reason'] == 'community.owner_only'
    ws_member = connect(member)
    assert call(client, '/contact/kick', admin, dstid=cid, memberid=member.id).status_code == 200
    kicked = ws_member.recv()
    assert (kicked['event'], kicked['dstid']) == ('kicked', cid)
    ws_member.text(cid, 'still here?', cmd=11)
    assert ws_member.recv_ack()['code'] == -1
    outranked = call(client, '/contact/kick', admin, dstid=cid, memberid=owner.id)
    assert outranked.status_code == 403 and outranked.json['reason'] == 'community.outranked'
    roles = {m['id']: m['role'] for m in
             call(client, '/contact/members', owner, dstid=cid).json['rows']}
    assert roles == {owner.id: 'owner', admin.id: 'admin', other.id: 'member'}


def test_admin_limit(app, client, auth):
    app.extensions['imchat'].roles.max_admins = 1
    owner = auth.register()
    cid, (one, two) = open_community(client, auth, owner, 2)
    call(client, '/contact/setrole', owner, dstid=cid, memberid=one.id, role='admin')
    refused = call(client, '/contact/setrole', owner, dstid=cid, memberid=two.id, role='admin')
    assert refused.status_code == 409 and refused.json['reason'] == 'community.too_many_admins'


def test_a_muted_member_and_announcements(client, auth, connect):
    owner = auth.register()
    cid, (admin, member) = open_community(client, auth, owner, 2)
    call(client, '/contact/setrole', owner, dstid=cid, memberid=admin.id, role='admin')
    # Copies of the group's messages are not what this test watches: acks and events.
    ws_member = connect(member)
    ws_member.ignore = {11, 13, 15}
    ws_member.text(cid, 'first', cmd=11)
    assert ws_member.recv_ack()['code'] == 0  # allowed, and now cached as allowed
    call(client, '/contact/mutemember', admin, dstid=cid, memberid=member.id, until=-1)
    assert ws_member.recv()['event'] == 'muted'
    ws_member.text(cid, 'second', cmd=11)
    refused = ws_member.recv_ack()
    assert refused['code'] == -1 and refused['reason'] == 'community.muted'
    # The member list says who is muted (until when: -1 for ever).
    mutes = {m['id']: m['muteuntil'] for m in
             call(client, '/contact/members', admin, dstid=cid).json['rows']}
    assert mutes == {owner.id: 0, admin.id: 0, member.id: -1}
    call(client, '/contact/mutemember', admin, dstid=cid, memberid=member.id, until=0)
    ws_member.recv()
    assert {m['muteuntil'] for m in
            call(client, '/contact/members', admin, dstid=cid).json['rows']} == {0}
    ws_member.text(cid, 'third', cmd=11)
    assert ws_member.recv_ack()['code'] == 0
    reply = call(client, '/contact/updatecommunity', admin, dstid=cid, announce=1)
    assert reply.json['data']['announce'] == 1
    ws_member.text(cid, 'fourth', cmd=11)
    refused = ws_member.recv_ack()
    assert refused['code'] == -1 and refused['reason'] == 'community.announce_only'
    ws_admin = connect(admin)
    ws_admin.ignore = {11, 13, 15}
    ws_admin.text(cid, 'news', cmd=11)
    assert ws_admin.recv_ack()['code'] == 0
    by_member = call(client, '/contact/updatecommunity', member, dstid=cid, announce=0)
    assert by_member.status_code == 403


def test_joins_an_hour(app, client, auth):
    app.extensions['imchat'].joins.joins_per_hour = 2
    owner, joiner = auth.register(), auth.register()
    app.extensions['imchat'].contacts.max_communities = 5
    ids = [make_community(client, owner, joinmode='open')['id'] for _ in range(3)]
    for cid in ids[:2]:
        assert call(client, '/contact/joincommunity', joiner, dstid=cid).status_code == 200
    refused = call(client, '/contact/joincommunity', joiner, dstid=ids[2])
    assert refused.status_code == 429 and refused.json['reason'] == 'community.joins_per_hour'


# -- reports and bans ----------------------------------------------------------------

def test_a_report_keeps_the_message_as_it_was(app, client, auth, connect):
    alice, bob = auth.register(), auth.register()
    befriend(client, alice, bob)
    ws_bob = connect(bob)
    ws_bob.text(alice.id, 'nasty words')
    msgid = ws_bob.recv_ack()['msgid']
    assert call(client, '/report', alice, msgid=msgid, reason='abuse',
                memo='again').status_code == 200
    ws_bob.send(cmd=14, msgid=msgid)
    assert ws_bob.recv_ack()['code'] == 0
    assert call(client, '/report', alice, dstid=bob.id, reason='spam').status_code == 200
    bad = call(client, '/report', alice, dstid=bob.id, reason='boring')
    assert bad.status_code == 400 and bad.json['field'] == 'reason'
    stranger = auth.register()
    unseen = call(client, '/report', stranger, msgid=msgid, reason='spam')
    assert unseen.status_code == 404
    reports = app.extensions['imchat'].reports.listing()
    assert [(r['userid'], r['reason']) for r in reports] == [(bob.id, 'abuse'), (bob.id, 'spam')]
    assert json.loads(reports[0]['content'])['content'] == 'nasty words'


def test_ban_ends_logins_and_sockets(app, client, auth, connect):
    alice = auth.register()
    ws = connect(alice)
    runner = app.test_cli_runner()
    result = runner.invoke(args=['admin', 'ban', alice.mobile, '--reason', 'spam', '--by', 'ops'])
    assert result.exit_code == 0, result.output
    event = ws.recv()
    assert (event['cmd'], event['event'], event['reason']) == (17, 'banned', 'spam')
    assert ws.close_code()[0] == 4401
    assert client.post('/user/find', headers=alice.headers).status_code == 401
    login = client.post('/user/login', data={'mobile': alice.mobile, 'passwd': alice.passwd})
    assert login.status_code == 403 and login.json['reason'] == 'auth.banned'
    assert 'spam' in login.json['msg']
    assert runner.invoke(args=['admin', 'unban', str(alice.id)]).exit_code == 0
    assert auth.login(alice).id == alice.id
    with db_session:
        actions = [(r.actor, r.action) for r in app.extensions['imchat'].db.AdminLog.select()]
    assert ('ops', 'ban') in actions and any(a == 'unban' for _, a in actions)
