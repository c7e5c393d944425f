"""Web Push (issue 21, docs/push.md) against a real push service on 127.0.0.1 written
in tests/pushservice.py: it checks every push's VAPID signature and claims and
decrypts it with the subscription's own private key. The server runs for real (gevent's
server, real WebSockets); several nodes are real processes."""
import json
import time

import pytest

from pushservice import PushService
from wsclient import ChatClient

SUBJECT = 'mailto:ops@example.com'


@pytest.fixture
def service():
    push_service = PushService(SUBJECT)
    yield push_service
    push_service.close()


@pytest.fixture
def app_config(app_config, request):
    app_config.update(VAPID_SUBJECT=SUBJECT, PUSH_ALLOW_PRIVATE=True, PUSH_SENDERS=1,
                      PUSH_MERGE_SECONDS=0.0, PUSH_RETRY_SECONDS=0.01, WS_RATE=0)
    # A test's own settings: @pytest.mark.parametrize('app_config', [{...}], indirect=True)
    app_config.update(getattr(request, 'param', {}))
    return app_config


def subscribe(client, account, subscription):
    return client.post('/push/subscribe', json={'subscription': subscription},
                       headers=account.headers)


def friends(auth, count=2):
    people = [auth.register(nickname='person{}'.format(i)) for i in range(count)]
    for other in people[1:]:
        auth.befriend(people[0], other)
    return people


def send_texts(live_server, sender, dstid, contents, cmd=10):
    # A fresh connection that replays nothing: only the acks come back.
    chat = ChatClient(live_server.ws_url(sender, since=10 ** 12))
    try:
        return chat.send_texts(dstid, contents, cmd=cmd)
    finally:
        chat.close()


def wait_for(condition, seconds=20, what='the condition'):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError('{} did not hold within {}s'.format(what, seconds))


def subscription_count(app):
    from pony.orm import db_session

    with db_session:
        return app.extensions['imchat'].db.PushSubscription.select().count()


# -- the calls -------------------------------------------------------------------


def test_key_subscribe_and_unsubscribe(client, auth, service, app):
    a = auth.register()
    key = client.get('/push/key').json['data']['key']
    assert len(key) == 87  # an uncompressed P-256 point, base64url
    service.public_key = key
    assert subscribe(client, a, service.subscription()).json['code'] == 0
    second = service.subscription()
    assert subscribe(client, a, second).json['code'] == 0
    assert subscription_count(app) == 2
    reply = client.post('/push/unsubscribe', data={'endpoint': second['endpoint']},
                        headers=a.headers)
    assert reply.json['code'] == 0 and subscription_count(app) == 1
    client.post('/push/unsubscribe', headers=a.headers)
    assert subscription_count(app) == 0


@pytest.mark.parametrize('subscription, reason', [
    (None, 'push.bad_subscription'),
    ('not json', 'push.bad_subscription'),
    ({'endpoint': 'http://127.0.0.1/x'}, 'push.bad_subscription'),
    ({'endpoint': 'ftp://push.example/x', 'keys': {'p256dh': 'AA', 'auth': 'AA'}},
     'push.endpoint_refused'),
    ({'endpoint': 'https://push.example/x', 'keys': {'p256dh': 'B' * 87, 'auth': 'A' * 22}},
     'push.bad_subscription'),
])
def test_a_bad_subscription_is_refused_naming_the_field(client, auth, subscription, reason):
    a = auth.register()
    reply = client.post('/push/subscribe', json={'subscription': subscription},
                        headers=a.headers)
    assert reply.status_code == 400, reply.json
    assert reply.json['field'] == 'subscription' and reply.json['reason'] == reason


def test_at_most_ten_subscriptions_a_person_the_oldest_go(client, auth, service, app):
    from pony.orm import db_session

    a = auth.register()
    subscriptions = [service.subscription() for _ in range(12)]
    for subscription in subscriptions:
        assert subscribe(client, a, subscription).json['code'] == 0
    with db_session:
        kept = {s.endpoint for s in app.extensions['imchat'].db.PushSubscription.select()}
    assert kept == {s['endpoint'] for s in subscriptions[2:]}


# -- who gets a push ---------------------------------------------------------------


def test_an_offline_friend_gets_an_encrypted_signed_push_the_sender_none(
        client, auth, service, live_server):
    a, b = friends(auth)
    service.public_key = client.get('/push/key').json['data']['key']
    mine, theirs = service.subscription(), service.subscription()
    subscribe(client, a, mine)
    subscribe(client, b, theirs)
    msgid, = send_texts(live_server, a, b.id, ['hello 你好'])
    push, = service.wait(1)
    assert push.payload == {'kind': 'message', 'target': 10, 'dstid': a.id, 'msgid': msgid,
                            'media': 1, 'from': {'id': a.id, 'nickname': 'person0',
                                                 'avatar': ''},
                            'text': 'hello 你好', 'count': 1}
    assert push.headers['urgency'] == 'high' and push.headers['topic'] == 'c10-{}'.format(a.id)
    assert service.to(mine) == []


def test_a_recipient_looking_gets_none_until_the_page_is_hidden(client, auth, service,
                                                                live_server):
    a, b = friends(auth)
    subscribe(client, b, service.subscription())
    watching = ChatClient(live_server.ws_url(b))
    try:
        # Answered once the connection is registered: from then on it counts.
        watching.send(cmd=20, visible=1)
        assert watching.recv_ack()['code'] == 0
        first, = send_texts(live_server, a, b.id, ['seen in the open page'])
        assert watching.recv()['msgid'] == first
        watching.send(cmd=20, visible=0)
        assert watching.recv_ack()['code'] == 0
        second, = send_texts(live_server, a, b.id, ['the page is hidden'])
        push, = service.wait(1)
        # One sender: a push for the first message would have come first.
        assert push.payload['msgid'] == second
        assert watching.recv()['msgid'] == second
        watching.send(cmd=20, visible=1)
        watching.recv_ack()
        third, = send_texts(live_server, a, b.id, ['shown again'])
        assert watching.recv()['msgid'] == third
        watching.send(cmd=20, visible=0)
        watching.recv_ack()
        fourth, = send_texts(live_server, a, b.id, ['hidden again'])
        assert [p.payload['msgid'] for p in service.wait(2)] == [second, fourth]
    finally:
        watching.close()


def test_looking_is_judged_when_the_message_was_stored_not_when_planned(
        client, auth, service, live_server, app):
    import gevent.event

    push = app.extensions['imchat'].push
    planner_may_go = gevent.event.Event()
    of_users = push.subscriptions.of_users

    def held_of_users(*args, **kwargs):
        planner_may_go.wait()
        return of_users(*args, **kwargs)
    push.subscriptions.of_users = held_of_users
    a, b = friends(auth)
    subscribe(client, b, service.subscription())
    watching = ChatClient(live_server.ws_url(b))
    try:
        watching.send(cmd=20, visible=1)
        assert watching.recv_ack()['code'] == 0
        seen, = send_texts(live_server, a, b.id, ['seen before the page hid'])
        assert watching.recv()['msgid'] == seen
        watching.send(cmd=20, visible=0)
        assert watching.recv_ack()['code'] == 0
        unseen, = send_texts(live_server, a, b.id, ['stored while hidden'])
        assert watching.recv()['msgid'] == unseen
        watching.send(cmd=20, visible=1)
        assert watching.recv_ack()['code'] == 0
        # The planner comes to both only now, the page shown again.
        planner_may_go.set()
        push, = service.wait(1)
        assert push.payload['msgid'] == unseen
        last, = send_texts(live_server, a, b.id, ['shown'])
        assert watching.recv()['msgid'] == last
        watching.send(cmd=20, visible=0)
        assert watching.recv_ack()['code'] == 0
        hidden, = send_texts(live_server, a, b.id, ['hidden'])
        assert [p.payload['msgid'] for p in service.wait(2)] == [unseen, hidden]
    finally:
        watching.close()


def test_a_bad_visibility_frame_is_refused(live_server, auth):
    a = auth.register()
    chat = ChatClient(live_server.ws_url(a))
    try:
        chat.send(cmd=20, visible=2)
        ack = chat.recv_ack()
        assert ack['code'] == -1 and 'visible' in ack['msg']
    finally:
        chat.close()


def test_community_members_away_get_it_the_sender_not(client, auth, service, live_server):
    owner, member, other = [auth.register(nickname='p{}'.format(i)) for i in range(3)]
    community = auth.create_community(owner)
    auth.join(member, community['id'])
    auth.join(other, community['id'])
    for person in (owner, member, other):
        subscribe(client, person, service.subscription())
    msgid, = send_texts(live_server, owner, community['id'], ['to the group'], cmd=11)
    pushes = service.wait(2)
    assert sorted(p.subscription for p in pushes) == [2, 3]
    assert {p.payload['target'] for p in pushes} == {11}
    assert {p.payload['dstid'] for p in pushes} == {community['id']}
    assert {p.payload['msgid'] for p in pushes} == {msgid}


def test_a_communitys_pushes_follow_joins_leaves_and_logouts(client, auth, service,
                                                             live_server):
    """The planner keeps a community's subscriptions between messages
    (push/subscriptions.py): a join, a leave, a new subscription and a logout each
    change who the very next message is pushed to."""
    owner, bob, carol, dave = [auth.register(nickname='p{}'.format(i)) for i in range(4)]
    community = auth.create_community(owner)
    for member in (bob, dave):
        auth.join(member, community['id'])
    to_bob, to_dave = service.subscription(), service.subscription()
    subscribe(client, bob, to_bob)
    subscribe(client, dave, to_dave)
    send_texts(live_server, owner, community['id'], ['one'], cmd=11)
    service.wait(2)

    auth.join(carol, community['id'])
    carol_login = auth.login(carol)
    to_carol = service.subscription()
    subscribe(client, carol_login, to_carol)
    send_texts(live_server, owner, community['id'], ['two'], cmd=11)
    service.wait(5)
    assert [p['text'] for p in service.to(to_carol)] == ['two']

    assert client.post('/contact/quitcommunity', data={'dstid': community['id']},
                       headers=bob.headers).status_code == 200
    assert client.post('/user/logout', headers=carol_login.headers).json['code'] == 0
    send_texts(live_server, owner, community['id'], ['three'], cmd=11)
    service.wait(6)
    assert [p['text'] for p in service.to(to_dave)] == ['one', 'two', 'three']
    assert [p['text'] for p in service.to(to_bob)] == ['one', 'two']
    assert [p['text'] for p in service.to(to_carol)] == ['two']


def test_a_long_text_is_cut_to_fit(client, auth, service, live_server):
    a, b = friends(auth)
    subscribe(client, b, service.subscription())
    send_texts(live_server, a, b.id, ['字' * 4000])
    push, = service.wait(1)  # the service checks the payload is under 3,000 bytes
    assert push.payload['text'].startswith('字' * 100) and push.payload['text'].endswith('…')


# -- merging, preview, read --------------------------------------------------------


MERGE_SECONDS = 3.0


@pytest.mark.slow  # waits a merge window
@pytest.mark.parametrize('app_config', [{'PUSH_MERGE_SECONDS': MERGE_SECONDS}], indirect=True)
def test_messages_in_quick_succession_are_merged(client, auth, service, live_server):
    a, b = friends(auth)
    subscribe(client, b, service.subscription())
    started = time.monotonic()
    first, second, third = send_texts(live_server, a, b.id, ['one', 'two', 'three'])
    sent_within = time.monotonic() - started
    push, = service.wait(1)
    assert push.payload['msgid'] == first and push.payload['count'] == 1
    # The rest leave as one when the window ends.
    merged = service.wait(2, seconds=MERGE_SECONDS + 30)[1].payload
    assert time.monotonic() - started >= MERGE_SECONDS * 0.9  # not before the window ends
    if sent_within < MERGE_SECONDS:  # all three within one window: the usual case
        assert merged['msgid'] == third and merged['count'] == 2, merged
        assert merged['text'] == 'three'
    else:  # a machine slow enough to send them across two windows
        pushes = service.wait(3 if merged['count'] == 1 else 2, seconds=MERGE_SECONDS + 30)
        assert sum(p.payload['count'] for p in pushes) == 3
        assert pushes[-1].payload['msgid'] == third


@pytest.mark.parametrize('app_config', [{'PUSH_PREVIEW': False}], indirect=True)
def test_without_preview_a_push_says_only_that_there_is_a_message(client, auth, service,
                                                                 live_server):
    a, b = friends(auth)
    subscribe(client, b, service.subscription())
    send_texts(live_server, a, b.id, ['a secret'])
    push, = service.wait(1)
    assert push.payload['text'] == '' and push.payload['from']['nickname'] == ''
    assert 'secret' not in json.dumps(push.payload)


def test_reading_on_another_device_closes_the_notification(client, auth, service,
                                                           live_server):
    a, b = friends(auth)
    phone = service.subscription()
    subscribe(client, b, phone)
    msgid, = send_texts(live_server, a, b.id, ['read me'])
    service.wait(1)
    laptop = auth.login(b)
    chat = ChatClient(live_server.ws_url(laptop))
    try:
        chat.recv()  # the message
        chat.send(cmd=12, target=10, dstid=a.id, msgid=msgid)
        chat.recv_ack()
    finally:
        chat.close()
    read = service.wait(2)[1].payload
    assert read == {'kind': 'read', 'target': 10, 'dstid': a.id, 'msgid': msgid}


# -- logins --------------------------------------------------------------------------


def test_logout_and_a_password_change_remove_that_logins_subscriptions(client, auth, service,
                                                                       app):
    a = auth.register()
    subscribe(client, a, service.subscription())
    client.post('/user/logout', headers=a.headers)
    assert subscription_count(app) == 0
    kept, other = auth.login(a), auth.login(a)
    subscribe(client, kept, service.subscription())
    subscribe(client, other, service.subscription())
    reply = client.post('/user/password', data={'passwd': a.passwd, 'newpasswd': 'another-one'},
                        headers=kept.headers)
    assert reply.json['code'] == 0
    assert subscription_count(app) == 1


def test_an_expired_login_gets_no_push(client, auth, service, live_server, app):
    from pony.orm import db_session

    a, b = friends(auth)
    expired, current = service.subscription(), service.subscription()
    subscribe(client, b, expired)
    with db_session:
        app.extensions['imchat'].db.PushSubscription.get(
            endpoint=expired['endpoint']).expireat = 1
    subscribe(client, auth.login(b), current)
    send_texts(live_server, a, b.id, ['hello'])
    service.wait(1)
    metrics = app.extensions['imchat'].metrics
    wait_for(lambda: metrics.value('imchat_push_queued') == 0, what='the queue drained')
    assert service.to(expired) == [] and len(service.to(current)) == 1


# -- sending -------------------------------------------------------------------------


def test_a_410_removes_the_subscription(client, auth, service, live_server, app):
    a, b = friends(auth)
    subscribe(client, b, service.subscription(410))
    send_texts(live_server, a, b.id, ['to a browser that unsubscribed'])
    wait_for(lambda: subscription_count(app) == 0, what='the subscription removed')
    assert service.requests == [(1, 410)]


def test_429_and_5xx_are_tried_again(client, auth, service, live_server, app):
    a, b = friends(auth)
    subscribe(client, b, service.subscription(429, 503))
    send_texts(live_server, a, b.id, ['try again'])
    push, = service.wait(1)
    assert service.requests == [(1, 429), (1, 503), (1, 201)]
    assert app.extensions['imchat'].metrics.value('imchat_push_retries_total') == 2
    assert subscription_count(app) == 1


def test_a_redirect_is_not_followed(client, auth, service, live_server, app):
    a, b = friends(auth)
    subscribe(client, b, service.subscription(307))
    send_texts(live_server, a, b.id, ['no detour'])
    metrics = app.extensions['imchat'].metrics
    wait_for(lambda: metrics.value('imchat_push_failed_total', reason='refused_by_service'),
             what='the redirect counted as a refusal')
    assert service.requests == [(1, 307)]


@pytest.mark.parametrize('app_config', [{'PUSH_QUEUE': 2}], indirect=True)
def test_a_full_queue_drops_the_oldest_and_counts_them(client, auth, service, live_server, app):
    people = friends(auth, 6)
    sender, stuck, rest = people[0], people[1], people[2:]
    subscribe(client, stuck, service.subscription('stall'))
    for person in rest:
        subscribe(client, person, service.subscription())
    send_texts(live_server, sender, stuck.id, ['stalls the only sender'])
    service.stalled.wait(20)
    for person in rest:
        send_texts(live_server, sender, person.id, ['waits for it'])
    metrics = app.extensions['imchat'].metrics
    wait_for(lambda: metrics.value('imchat_push_dropped_total') == 2, what='two dropped')
    service.release()
    pushes = service.wait(3)
    # The stalled one, then the two newest.
    assert [p.subscription for p in pushes] == [1, 4, 5]


def test_sending_never_holds_up_a_message(client, auth, service, live_server):
    a, b = friends(auth)
    subscribe(client, b, service.subscription('stall'))
    watching = ChatClient(live_server.ws_url(a))
    try:
        send_texts(live_server, a, b.id, ['stalls the sender'])
        service.stalled.wait(20)
        # Stored, acknowledged and delivered while the push service does not answer.
        chat = ChatClient(live_server.ws_url(b))
        try:
            chat.recv()
            chat.text(a.id, 'still flowing')
            assert chat.recv_ack()['code'] == 0
            assert watching.recv()['content'] == 'stalls the sender'
            assert watching.recv()['content'] == 'still flowing'
        finally:
            chat.close()
    finally:
        watching.close()
        service.release()


# -- safety --------------------------------------------------------------------------


@pytest.mark.parametrize('url', [
    'https://127.0.0.1/x', 'https://localhost/x', 'https://10.1.2.3/x',
    'https://169.254.169.254/latest', 'https://[::1]/x', 'https://192.168.0.1:8443/x',
    'https://[::ffff:127.0.0.1]/x'])
def test_private_addresses_are_refused_when_sending(url):
    from imchat.service.push.endpoint import EndpointRefused, parse_endpoint, resolve

    with pytest.raises(EndpointRefused):
        resolve(parse_endpoint(url, allow_private=False), allow_private=False)


def test_only_https_endpoints_by_default(client, auth, app):
    from imchat.service.push.endpoint import EndpointRefused, parse_endpoint

    with pytest.raises(EndpointRefused):
        parse_endpoint('http://push.example/x', allow_private=False)
    assert parse_endpoint('https://push.example/x?y=1', False).audience == 'https://push.example'
    assert parse_endpoint('https://push.example:8443/x', False).audience == \
        'https://push.example:8443'


@pytest.mark.parametrize('app_config', [{'PUSH_ALLOW_PRIVATE': False}], indirect=True)
def test_an_endpoint_turned_private_after_subscribing_gets_nothing(client, auth, service,
                                                                   live_server, app):
    from pony.orm import db_session

    a, b = friends(auth)
    public = {'endpoint': 'https://push.example.com/x', 'keys': service.subscription()['keys']}
    assert subscribe(client, b, public).json['code'] == 0
    # Its name now resolves to this machine (DNS changed): pointed here by hand.
    with db_session:
        row = app.extensions['imchat'].db.PushSubscription.select().first()
        row.endpoint = 'https://127.0.0.1:{}/push/1'.format(service.server.server_port)
    send_texts(live_server, a, b.id, ['to the inside'])
    metrics = app.extensions['imchat'].metrics
    wait_for(lambda: metrics.value('imchat_push_failed_total', reason='refused'),
             what='the endpoint refused')
    assert service.requests == []


@pytest.mark.parametrize('app_config', [{'VAPID_SUBJECT': ''}], indirect=True)
def test_without_a_subject_push_is_off_and_says_so(client, auth, service):
    a = auth.register()
    key = client.get('/push/key').json
    assert key['data'] is None and 'off' in key['msg']
    reply = subscribe(client, a, service.subscription())
    assert reply.status_code == 400 and reply.json['reason'] == 'push.disabled'


def test_the_vapid_key_is_kept_in_the_database(app_config, service):
    from imchat import create_app

    keys = []
    for _ in range(2):
        app = create_app(app_config)
        keys.append(app.test_client().get('/push/key').json['data']['key'])
        app.extensions['imchat'].close()
    assert keys[0] == keys[1]


def test_the_payloads_leave_no_secret_in_the_log(client, auth, service, live_server, caplog):
    a, b = friends(auth)
    subscribe(client, b, service.subscription(503))
    with caplog.at_level('DEBUG'):
        send_texts(live_server, a, b.id, ['private words'])
        service.wait(1)
    text = caplog.text
    for secret in (a.token, b.token, 'private words', service.subscription()['keys']['auth']):
        assert secret not in text


# -- issue 22: mutes and friend requests -----------------------------------------


def test_a_muted_conversation_pushes_nothing(client, auth, service, live_server):
    owner, muting, other = [auth.register(nickname='p{}'.format(i)) for i in range(3)]
    community = auth.create_community(owner)
    auth.join(muting, community['id'])
    auth.join(other, community['id'])
    friend = auth.register(nickname='friend')
    auth.befriend(friend, muting)
    auth.befriend(friend, other)
    subscribe(client, muting, service.subscription())
    subscribe(client, other, service.subscription())
    for target, dstid in ((11, community['id']), (10, friend.id)):
        reply = client.post('/chat/mute', data={'target': target, 'dstid': dstid, 'until': -1},
                            headers=muting.headers)
        assert reply.status_code == 200, reply.json
    send_texts(live_server, friend, muting.id, ['muted 1:1'])
    group_msgid, = send_texts(live_server, owner, community['id'], ['to the group'], cmd=11)
    # Planned and sent in order (one sending greenlet): once this last one is in, any
    # push of the muted conversations would be too.
    last_msgid, = send_texts(live_server, friend, other.id, ['the last'])
    wait_for(lambda: any(p.payload['msgid'] == last_msgid for p in service.received),
             what='the last push')
    assert [(p.subscription, p.payload['msgid']) for p in service.received] == [
        (2, group_msgid), (2, last_msgid)]


@pytest.mark.parametrize('app_config', [{'FRIEND_REQUESTS': True}], indirect=True)
def test_a_friend_request_pushes_a_request(client, auth, service):
    asking, asked = auth.register(nickname='asking'), auth.register(nickname='asked')
    subscribe(client, asked, service.subscription())
    reply = client.post('/contact/addfriend', data={'dstid': asked.id, 'memo': 'hi'},
                        headers=asking.headers)
    assert reply.status_code == 200 and reply.json['data']['status'] == 'requested'
    push, = service.wait(1)
    assert push.payload == {'kind': 'request', 'from': {'id': asking.id,
                                                         'nickname': 'asking', 'avatar': ''}}
    assert push.headers['topic'] == 'request'


def test_the_conversations_notified_are_shared_between_nodes(app):
    """With several nodes a read on one node closes what another pushed: the entries
    reach the database in chunks, off the message path."""
    from imchat.service.push import notified as module
    from imchat.service.push.notified import Notified

    db = app.extensions['imchat'].db
    pushing, reading = Notified(db, shared=True), Notified(db, shared=True)
    try:
        entries = {(user_id, 11, 7): 100 + user_id for user_id in range(1, module.FLUSH_CHUNK + 3)}
        pushing.remember(entries)
        pushing.remember({(1, 11, 7): 50})  # an older one never moves it back
        wait_for(lambda: reading.take((module.FLUSH_CHUNK + 2, 11, 7), 10 ** 6),
                 what='the last chunk written')
        assert not reading.take((1, 11, 7), 100)  # a newer message is still unread
        assert reading.take((1, 11, 7), 101)
        assert not reading.take((1, 11, 7), 101)  # taken once
        assert not reading.take((1, 10, 7), 10 ** 6)  # never notified
    finally:
        pushing.stop()
        reading.stop()
