"""Abuse: each hole an attacker found (issue 11), shown closed against the real thing.

Most tests drive the production server (gevent pywsgi with imchat's door handler) on a
free port with real HTTP and WebSocket clients; a few use Flask's test client where the
peer's address must be one that is not loopback.
"""
import json
import os
import pathlib
import select
import socket
import subprocess
import sys
import time

import gevent
import pytest
import requests
import websocket
from pony.orm import db_session

from imchat.model.stream import insert_messages
from imchat.service.errors import TooManyRequests
from imchat.util.clock import now_ms
from imchat.util.token import new_token, token_key
from tests.harness import ROOT, ServerProcess, wait_for
from tests.wsclient import ChatClient, ConnectionClosed

OUTSIDE = {'REMOTE_ADDR': '203.0.113.9'}  # a peer that is not loopback (TEST-NET-3)


def services(app):
    return app.extensions['imchat']


def settings(**values):
    """Settings for the test's app, as the environment would give them."""
    return pytest.mark.parametrize('app_settings', [values], ids=[''])


@pytest.fixture
def app_settings():
    return {}


@pytest.fixture
def app_config(app_config, app_settings):
    app_config.update(app_settings)
    return app_config


# --- logins and registrations --------------------------------------------------------

@settings(LOGIN_RATE=0)  # only the failed-login limit here
def test_concurrent_wrong_logins_check_at_most_the_limit(auth, live_server):
    limit = live_server.app.config['LOGIN_ATTEMPTS']
    victim = auth.register()
    checked = []
    from imchat.service import user as user_module
    original = user_module.check_passwd

    def counting_check(plain, stored):
        checked.append(plain)
        return original(plain, stored)

    user_module.check_passwd = counting_check
    try:
        def guess(i):
            return requests.post(live_server.url + '/user/login', timeout=60,
                                 data={'mobile': victim.mobile, 'passwd': 'guess-%d' % i})
        jobs = [gevent.spawn(guess, i) for i in range(100)]
        gevent.joinall(jobs, raise_error=True)
    finally:
        user_module.check_passwd = original
    statuses = [job.value.status_code for job in jobs]
    assert set(statuses) == {401, 429}, statuses
    assert statuses.count(401) <= limit and len(checked) <= limit
    assert statuses.count(429) >= 100 - limit
    # The right password is refused too while the mobile is locked.
    response = requests.post(live_server.url + '/user/login', timeout=30,
                             data={'mobile': victim.mobile, 'passwd': victim.passwd})
    assert response.status_code == 429


@settings(PASSWD_COST=15)  # about 32 MiB and a good fraction of a second a hash
def test_password_hashing_leaves_the_event_loop_free(app):
    users = services(app).users
    ticks = []
    done = []

    def ticker():
        while not done:
            ticks.append(time.monotonic())
            gevent.sleep(0.005)

    watcher = gevent.spawn(ticker)
    gevent.sleep(0.02)
    started = time.monotonic()
    user, token = users.register('13700000001', 'secret-pass')
    users.login('13700000001', 'secret-pass', client_addr='198.51.100.1')
    finished = time.monotonic()
    done.append(True)
    watcher.join()
    during = [t for t in ticks if started < t < finished]
    # Two scrypt hashes ran; on the event loop they would have let no greenlet run at all.
    assert len(during) >= 4, (len(during), finished - started)


@settings(LOGIN_RATE=3)
def test_logins_right_or_wrong_are_limited_per_mobile_and_address(app, client, auth):
    account = auth.register()
    for _ in range(3):
        response = client.post('/user/login', environ_base=OUTSIDE,
                               data={'mobile': account.mobile, 'passwd': account.passwd})
        assert response.status_code == 200
    response = client.post('/user/login', environ_base=OUTSIDE,
                           data={'mobile': account.mobile, 'passwd': account.passwd})
    assert response.status_code == 429 and 'too many logins' in response.json['msg']
    # The same address, other mobiles: the address is over its limit as well.
    other = auth.register()
    response = client.post('/user/login', environ_base=OUTSIDE,
                           data={'mobile': other.mobile, 'passwd': other.passwd})
    assert response.status_code == 429
    # From loopback (no proxy) the address does not count, the mobile does.
    for _ in range(3):
        assert client.post('/user/login', data={'mobile': other.mobile,
                                                'passwd': other.passwd}).status_code == 200
    third = auth.register()
    assert client.post('/user/login', data={'mobile': third.mobile,
                                            'passwd': third.passwd}).status_code == 200


@settings(REGISTER_RATE=2)
def test_registrations_are_limited_per_address_but_not_from_loopback(app, client):
    for i in range(2):
        response = client.post('/user/register', environ_base=OUTSIDE,
                               data={'mobile': '1360000000%d' % i, 'passwd': 'secret-pass'})
        assert response.status_code == 200
    response = client.post('/user/register', environ_base=OUTSIDE,
                           data={'mobile': '13600000009', 'passwd': 'secret-pass'})
    assert response.status_code == 429 and response.json['code'] == -1
    for i in range(4):
        response = client.post('/user/register',
                               data={'mobile': '1361000000%d' % i, 'passwd': 'secret-pass'})
        assert response.status_code == 200


@pytest.mark.parametrize('mobile', ['１３９００００００１', '١٣٩٠٠٠٠٠٠٠١', '13９00000001', '۱۳۹۰۰۰۰۰۰۰۱'])
def test_mobiles_take_ascii_digits_only(client, auth, mobile):
    response = client.post('/user/register', data={'mobile': mobile, 'passwd': 'secret-pass'})
    assert response.status_code == 400 and response.json['field'] == 'mobile'
    response = client.post('/user/login', data={'mobile': mobile, 'passwd': 'secret-pass'})
    assert response.status_code == 400 and response.json['field'] == 'mobile'
    someone = auth.register()
    response = client.post('/contact/addfriend', data={'mobile': mobile},
                           headers=someone.headers)
    assert response.status_code == 400 and response.json['field'] == 'mobile'


def test_mobiles_are_normalised_before_use(client, auth):
    account = auth.register(mobile='13900000077')
    response = client.post('/user/login', data={'mobile': ' 13900000077 ',
                                                'passwd': account.passwd})
    assert response.status_code == 200 and response.json['data']['id'] == account.id
    response = client.post('/user/register', data={'mobile': '13900000077 ',
                                                   'passwd': 'secret-pass'})
    assert response.status_code == 409


def test_passwords_keep_their_spaces(client, auth):
    account = auth.register(passwd='  spaced out  ')
    for wrong in ('spaced out', '  spaced out', 'spaced out  '):
        response = client.post('/user/login', data={'mobile': account.mobile, 'passwd': wrong})
        assert response.status_code == 401
    response = client.post('/user/login', data={'mobile': account.mobile,
                                                'passwd': '  spaced out  '})
    assert response.status_code == 200


def test_expired_tokens_are_purged(app, client, auth):
    account = auth.register()
    db = services(app).db
    with db_session:
        for _ in range(3):
            db.Token(key=token_key(new_token()), userid=account.id, createat=1, expireat=2)
    auth.login(account)
    with db_session:
        assert db.Token.select(lambda t: t.expireat <= now_ms()).count() == 0
        assert db.Token.select(lambda t: t.userid == account.id).count() == 2


# --- /user/password ------------------------------------------------------------------

def test_password_change_ends_every_other_login_and_its_sockets(client, auth, live_server):
    alice = auth.register(passwd='old-secret')
    phone, laptop = auth.login(alice), auth.login(alice)
    phone_ws = ChatClient(live_server.ws_url(phone))
    laptop_ws = ChatClient(live_server.ws_url(laptop))
    assert wait_for(lambda: len(live_server.hub.users.get(alice.id, ())) == 2)

    response = client.post('/user/password', headers=laptop.headers,
                           data={'passwd': 'old-secret', 'newpasswd': ' new secret '})
    assert response.status_code == 200 and response.json['code'] == 0
    code, reason = phone_ws.close_code(timeout=10)
    assert code == 4401 and reason == 'logged out'
    for old in (alice, phone):
        assert client.post('/user/find', headers=old.headers).status_code == 401
    assert client.post('/user/find', headers=laptop.headers).status_code == 200
    laptop_ws.send(cmd=0)
    laptop_ws.expect_nothing(0.2)  # still open
    assert client.post('/user/login', data={'mobile': alice.mobile,
                                            'passwd': 'old-secret'}).status_code == 401
    assert client.post('/user/login', data={'mobile': alice.mobile,
                                            'passwd': ' new secret '}).status_code == 200
    phone_ws.close()
    laptop_ws.close()


def test_password_change_needs_the_current_password(client, auth):
    account = auth.register(passwd='old-secret')
    response = client.post('/user/password', headers=account.headers,
                           data={'passwd': 'not-it', 'newpasswd': 'new-secret'})
    assert response.status_code == 401 and response.json['field'] == 'passwd'
    response = client.post('/user/password', headers=account.headers,
                           data={'passwd': 'old-secret', 'newpasswd': 'short'})
    assert response.status_code == 400 and response.json['field'] == 'newpasswd'
    response = client.post('/user/password', data={'passwd': 'old-secret',
                                                   'newpasswd': 'new-secret'})
    assert response.status_code == 401
    assert client.post('/user/login', data={'mobile': account.mobile,
                                            'passwd': 'old-secret'}).status_code == 200


# --- bodies, headers, logs -----------------------------------------------------------

def test_bodies_over_64k_get_413_everywhere_but_uploads(client, auth):
    account = auth.register()
    big = 'x' * (70 * 1024)
    for path, data in [('/user/login', {'mobile': '13900000001', 'passwd': big}),
                       ('/user/register', {'mobile': '13900000001', 'passwd': big}),
                       ('/user/update', {'memo': big})]:
        response = client.post(path, data=data, headers=account.headers)
        assert response.status_code == 413 and response.json['code'] == -1, path
    response = client.post('/user/login', data=json.dumps({'mobile': big}),
                           content_type='application/json')
    assert response.status_code == 413
    png = b'\x89PNG\r\n\x1a\n' + os.urandom(100 * 1024)
    import io
    response = client.post('/attach/upload', headers=account.headers,
                           data={'file': (io.BytesIO(png), 'big.png')},
                           content_type='multipart/form-data')
    assert response.status_code == 200, response.json


def test_every_reply_says_nosniff(client, auth):
    account = auth.register()
    replies = [client.get('/'), client.get('/user/login.shtml'), client.get('/healthz'),
               client.get('/metrics'), client.get('/no/such/page'),
               client.post('/user/login', data={}), client.post('/user/find'),
               client.post('/user/find', headers=account.headers),
               client.get('/asset/js/chat.js')]
    for response in replies:
        assert response.headers.get('X-Content-Type-Options') == 'nosniff', response.request.path


def test_the_access_log_never_shows_tokens_or_passwords(auth, live_server, caplog):
    account = auth.register(passwd='hunter2-secret')
    caplog.set_level('INFO', logger='imchat.access')
    requests.get(live_server.url + '/user/find?token={}&id=1'.format(account.token), timeout=30)
    requests.post(live_server.url + '/user/login?mobile={}&passwd=hunter2-secret'.format(
        account.mobile), timeout=30)
    requests.get(live_server.url + '/chat?id=1&token={}'.format(account.token), timeout=30)
    assert wait_for(lambda: len([r for r in caplog.records if r.name == 'imchat.access']) >= 3)
    text = '\n'.join(r.getMessage() for r in caplog.records)
    assert '/user/find?token=-&id=1' in text
    assert account.token not in text and 'hunter2-secret' not in text


# --- URLs ----------------------------------------------------------------------------

UNSAFE_URLS = ['javascript:alert(1)', 'JavaScript:alert(1)', 'data:text/html,<b>x</b>',
               '//evil.example/x.png', '/\\evil.example/x.png', '/\t/evil.example',
               'vbscript:x', 'mnt/x.png', 'http:/evil.example']


@pytest.mark.parametrize('url', UNSAFE_URLS)
def test_every_url_field_refuses_unsafe_urls(client, auth, url):
    account = auth.register()
    response = client.post('/user/update', data={'avatar': url}, headers=account.headers)
    assert response.status_code == 400 and response.json['field'] == 'avatar'
    response = client.post('/user/register', data={'mobile': '13912345678',
                                                   'passwd': 'secret-pass', 'avatar': url})
    assert response.status_code == 400 and response.json['field'] == 'avatar'
    response = client.post('/contact/createcommunity', data={'name': 'g', 'icon': url},
                           headers=account.headers)
    assert response.status_code == 400 and response.json['field'] == 'icon'

    from imchat.service.frame import MEDIA_RULES, FrameError, parse_frame
    for media in MEDIA_RULES:
        for field in ('url', 'pic'):
            frame = {'id': 1, 'cmd': 10, 'dstid': 2, 'media': media, 'content': 'c',
                     'url': '/mnt/a.png', 'amount': 5, field: url}
            with pytest.raises(FrameError) as refused:
                parse_frame(json.dumps(frame), 65536)
            assert refused.value.msg.startswith(field), (media, field)


def test_safe_urls_pass_every_field(client, auth):
    account = auth.register()
    for url in ('/mnt/a.png', 'https://cdn.example/a.png', 'HTTP://example.test/a?b=c&d=e'):
        response = client.post('/user/update', data={'avatar': url}, headers=account.headers)
        assert response.status_code == 200 and response.json['data']['avatar'] == url
    from imchat.service.frame import parse_frame
    frame = parse_frame(json.dumps({'cmd': 10, 'dstid': 2, 'media': 1, 'content': 'hi',
                                    'url': 'https://example.test/', 'pic': '/mnt/p.png'}), 65536)
    assert frame.url == 'https://example.test/' and frame.pic == '/mnt/p.png'


# --- uploads -------------------------------------------------------------------------

def _nested_mp4(depth):
    box = b''
    for _ in range(depth):
        box = (8 + len(box)).to_bytes(4, 'big') + b'moov' + box
    return b'\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom' + box


def test_deeply_nested_mp4_boxes_are_a_400(client, auth):
    import io
    account = auth.register()
    response = client.post('/attach/upload', headers=account.headers,
                           data={'file': (io.BytesIO(_nested_mp4(5000)), 'clip.mp4')},
                           content_type='multipart/form-data')
    assert response.status_code == 400 and response.json['field'] == 'file'


def _upload(client, account, size):
    import io
    png = b'\x89PNG\r\n\x1a\n' + os.urandom(size - 8)
    return client.post('/attach/upload', headers=account.headers,
                       data={'file': (io.BytesIO(png), 'a.png')},
                       content_type='multipart/form-data')


@settings(UPLOAD_QUOTA_BYTES=250 * 1024)
def test_uploads_have_a_daily_quota_per_user(app, client, auth):
    alice, bob = auth.register(), auth.register()
    for _ in range(2):
        assert _upload(client, alice, 100 * 1024).status_code == 200
    response = _upload(client, alice, 100 * 1024)
    assert response.status_code == 429 and response.json['field'] == 'file'
    assert 'quota' in response.json['msg']
    assert _upload(client, alice, 40 * 1024).status_code == 200  # what is left still fits
    assert _upload(client, bob, 100 * 1024).status_code == 200  # each user has their own
    # A day later the quota is free again.
    with db_session:
        for row in services(app).db.Upload.select(lambda u: u.userid == alice.id):
            row.createat -= 25 * 3600 * 1000
    assert _upload(client, alice, 100 * 1024).status_code == 200


@settings(UPLOAD_QUOTA_BYTES=250 * 1024)
def test_concurrent_uploads_cannot_pass_the_quota_together(app, auth, live_server):
    alice = auth.register()
    png = b'\x89PNG\r\n\x1a\n' + os.urandom(100 * 1024)

    def upload():
        return requests.post(live_server.url + '/attach/upload', headers=alice.headers,
                             files={'file': ('a.png', png)}, timeout=60).status_code
    jobs = [gevent.spawn(upload) for _ in range(8)]
    gevent.joinall(jobs, raise_error=True)
    statuses = [job.value for job in jobs]
    # Uploads in flight count against each other, so a crowd may be refused a little
    # early, never late: at most two of 100 KB fit in 250 KB.
    assert set(statuses) == {200, 429} and statuses.count(200) <= 2, statuses
    # What the crowd left unused is still there, one at a time.
    accepted = statuses.count(200)
    while accepted < 2:
        assert upload() == 200
        accepted += 1
    assert upload() == 429


def _age(path, minutes):
    then = time.time() - minutes * 60
    os.utime(path, (then, then))


def test_remove_orphans_keeps_referenced_and_young_files(app, client, auth, runner):
    alice, bob = auth.register(), auth.register()
    auth.befriend(alice, bob)
    urls = [_upload(client, alice, 1000).json['data'] for _ in range(6)]
    # The last two are orphans, one old enough to go and one too young.
    in_message, in_pic, as_avatar, as_icon = urls[:4]
    client.post('/user/update', data={'avatar': as_avatar}, headers=alice.headers)
    client.post('/contact/createcommunity', data={'name': 'g', 'icon': as_icon},
                headers=alice.headers)
    db = services(app).db
    with db_session:
        insert_messages(db, [(alice.id, 10, bob.id, 4, '', '', in_message, '', 0, now_ms(), None),
                             (alice.id, 10, bob.id, 9, 'card', in_pic, '', '', 0, now_ms(),
                              None)], True)
    folder = app.config['UPLOAD_DIR']
    names = [url.rsplit('/', 1)[1] for url in urls]
    for name in names[:-1]:
        _age(os.path.join(folder, name), 120)
    _age(os.path.join(folder, names[-1]), 5)

    result = runner.invoke(args=['remove-orphans', '--dry-run', '--min-age', '0'])
    assert result.exit_code == 0, result.output
    assert 'would remove ' + names[4] in result.output and names[5] not in result.output
    assert sorted(os.listdir(folder)) == sorted(names)

    result = runner.invoke(args=['remove-orphans', '--min-age', '60'])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ['removed ' + names[4], '1 unreferenced file(s) removed']
    assert sorted(os.listdir(folder)) == sorted(names[:4] + names[5:])
    with db_session:
        assert not db.Upload.exists(name=names[4])
    # A second run finds nothing more; the young orphan waits until it is old enough.
    assert runner.invoke(args=['remove-orphans']).output == '0 unreferenced file(s) removed\n'


@pytest.mark.parametrize('region', ['', 'cn-hangzhou'], ids=['v1', 'v4'])
def test_remove_orphans_works_on_oss(app_config, region):
    from imchat import create_app
    from tests.oss_server import FakeOss
    from tests.conftest import Auth

    oss = FakeOss({'key-id': 'key-secret'}, buckets={'chat'}, region=region or None).start()
    app = create_app(dict(app_config, STORAGE='oss', OSS_ENDPOINT=oss.endpoint,
                          OSS_BUCKET='chat', OSS_ACCESS_KEY_ID='key-id',
                          OSS_ACCESS_KEY_SECRET='key-secret', OSS_REGION=region))
    try:
        client = app.test_client()
        alice = Auth(client).register()
        urls = [_upload(client, alice, 1000).json['data'] for _ in range(3)]
        client.post('/user/update', data={'avatar': urls[0]}, headers=alice.headers)
        keys = ['mnt/' + url.rsplit('/', 1)[1] for url in urls]
        for key in keys[:2]:
            oss.modified[('chat', key)] -= 3 * 3600
        runner = app.test_cli_runner()
        result = runner.invoke(args=['remove-orphans', '--dry-run'])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[0] == 'would remove ' + keys[1][4:]
        assert len(oss.objects) == 3
        result = runner.invoke(args=['remove-orphans'])
        assert result.exit_code == 0, result.output
        assert sorted(k for _, k in oss.objects) == sorted([keys[0], keys[2]])
        assert any(method == 'DELETE' and signed for method, _, signed, _ in oss.requests)
    finally:
        app.extensions['imchat'].close()
        oss.stop()


# --- WebSockets ----------------------------------------------------------------------

@pytest.fixture
def pair(auth):
    alice, bob = auth.register(nickname='alice'), auth.register(nickname='bob')
    auth.befriend(alice, bob)
    return alice, bob


@settings(WS_PER_USER=3)
def test_a_user_past_the_websocket_cap_loses_the_oldest(app, auth, live_server):
    alice = auth.register()
    sockets = []
    for _ in range(3):
        sockets.append(ChatClient(live_server.ws_url(alice)))
        assert wait_for(lambda: len(live_server.hub.users.get(alice.id, ())) == len(sockets))
    newest = ChatClient(live_server.ws_url(alice))
    code, reason = sockets[0].close_code(timeout=10)
    assert code == 4429 and 'too many connections' in reason
    assert wait_for(lambda: len(live_server.hub.users.get(alice.id, ())) == 3)
    for ws in sockets[1:] + [newest]:
        ws.send(cmd=0)
        ws.expect_nothing(0.1)
        ws.close()


def test_the_message_rate_is_per_user_not_per_connection(pair, live_server):
    live_server.hub.message_rate = 1  # slow, so the bursts below cannot earn tokens back
    live_server.hub.message_burst = 4
    alice, bob = pair
    connections = [ChatClient(live_server.ws_url(alice)) for _ in range(3)]
    assert wait_for(lambda: len(live_server.hub.users.get(alice.id, ())) == 3)
    codes = []
    for ws in connections:
        for i in range(4):
            ws.text(bob.id, 'burst %d' % i)
        while len(codes) % 4 or len(codes) < 4 * (connections.index(ws) + 1):
            frame = ws.recv()  # the user's other connections get copies: skip those
            if frame.get('cmd') == 1:
                codes.append(frame['code'])
    assert codes.count(0) <= 6 and codes.count(-1) >= 6, codes
    for ws in connections:
        ws.close()


@settings(WS_BACKLOG_MAX=5)
def test_a_reconnect_replays_at_most_the_cap_and_says_what_it_skipped(app, pair, live_server,
                                                                       client):
    live_server.hub.message_rate = 0
    alice, bob = pair
    a = ChatClient(live_server.ws_url(alice))
    msgids = a.send_texts(bob.id, ['m%d' % i for i in range(12)])
    b = ChatClient(live_server.ws_url(bob, since=0))
    notice = b.recv()
    assert notice == {'cmd': 16, 'after': 0, 'before': msgids[7]}
    replayed = b.recv_messages(5)
    assert [m['msgid'] for m in replayed] == msgids[7:]
    b.expect_nothing()
    # What was skipped comes from /chat/history, below `before`.
    rows = client.post('/chat/history', headers=bob.headers,
                       data={'cmd': 10, 'dstid': alice.id, 'before': notice['before']}).json['rows']
    assert [row['msgid'] for row in rows] == msgids[:7]
    # Under the cap nothing is skipped and no notice is sent.
    b2 = ChatClient(live_server.ws_url(bob, since=msgids[8]))
    assert [m['msgid'] for m in b2.recv_messages(3)] == msgids[9:]
    b2.expect_nothing()
    for ws in (a, b, b2):
        ws.close()


# --- the door ------------------------------------------------------------------------

@pytest.mark.slow  # waits the header timeout
@settings(HEADER_TIMEOUT=1)
def test_a_request_whose_headers_never_finish_is_dropped(app, live_server):
    sock = socket.create_connection(('127.0.0.1', live_server.port))
    sock.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n')  # and never the blank line
    sock.settimeout(30)
    assert sock.recv(1024) == b''  # closed by the server, without a reply
    sock.close()
    # A silent connection (no request line at all) goes the same way.
    sock = socket.create_connection(('127.0.0.1', live_server.port))
    sock.settimeout(30)
    assert sock.recv(1024) == b''
    sock.close()
    # Complete requests are served as before.
    assert requests.get(live_server.url + '/healthz', timeout=30).status_code == 200


def refused(live_server, reason):
    """Connections refused at the door for `reason`, as /metrics counts them."""
    return live_server.app.extensions['imchat'].metrics.value(
        'imchat_connections_refused_total', reason=reason)


@settings(PROXY_COUNT=1, CONNECTIONS_PER_ADDRESS=2, CONNECT_RATE=0)
def test_connections_per_address_are_capped_behind_a_proxy(auth, live_server):
    alice = auth.register()
    header = ['X-Forwarded-For: 203.0.113.50']
    held = [websocket.create_connection(live_server.ws_url(alice), header=header, timeout=30)
            for _ in range(2)]
    assert wait_for(lambda: len(live_server.hub.users.get(alice.id, ())) == 2)
    response = requests.get(live_server.url + '/healthz', timeout=30,
                            headers={'X-Forwarded-For': '203.0.113.50'})
    assert response.status_code == 429 and response.headers['Retry-After']
    assert response.json()['code'] == -1
    assert response.headers['X-Content-Type-Options'] == 'nosniff'
    assert refused(live_server, 'address') == 1
    # Another address, and the same one once a connection has gone, are served.
    assert requests.get(live_server.url + '/healthz', timeout=30,
                        headers={'X-Forwarded-For': '198.51.100.7'}).status_code == 200
    held[0].close()
    assert wait_for(lambda: requests.get(
        live_server.url + '/healthz', timeout=30,
        headers={'X-Forwarded-For': '203.0.113.50'}).status_code == 200)
    held[1].close()


@settings(PROXY_COUNT=1, CONNECTIONS_PER_ADDRESS=0, CONNECT_RATE=2)
def test_new_connections_a_second_are_capped_per_address(live_server):

    def fetch(address):
        return requests.get(live_server.url + '/healthz', timeout=30,
                            headers={'X-Forwarded-For': address,
                                     'Connection': 'close'}).status_code
    jobs = [gevent.spawn(fetch, '203.0.113.60') for _ in range(30)]
    gevent.joinall(jobs, raise_error=True)
    statuses = [job.value for job in jobs]
    assert 429 in statuses and 200 in statuses
    assert refused(live_server, 'address') == statuses.count(429)
    assert fetch('198.51.100.8') == 200


@settings(CONNECTIONS_PER_ADDRESS=2, CONNECT_RATE=2)
def test_loopback_peers_are_not_limited_per_address(auth, live_server):
    alice = auth.register()
    held = [ChatClient(live_server.ws_url(alice)) for _ in range(5)]
    assert wait_for(lambda: len(live_server.hub.users.get(alice.id, ())) == 5)
    for _ in range(10):
        assert requests.get(live_server.url + '/healthz', timeout=30).status_code == 200
    assert refused(live_server, 'address') == 0
    for ws in held:
        ws.close()


@settings(WS_HANDSHAKES=1)
def test_websocket_handshakes_past_the_cap_are_refused_cheaply(app, auth, live_server):
    alice = auth.register()
    slot = services(app).handshakes.enter()  # one handshake in progress, not finished
    with pytest.raises(Exception) as refusal:
        ChatClient(live_server.ws_url(alice))
    assert '503' in str(refusal.value)
    assert refused(live_server, 'handshakes') == 1
    assert refused(live_server, 'full') == 0
    slot.release()
    ws = ChatClient(live_server.ws_url(alice))
    assert wait_for(lambda: live_server.hub.is_online(alice.id))
    # The handshake's slot is given back once its backlog is sent: another one fits.
    assert wait_for(lambda: services(app).handshakes.in_progress == 0)
    second = ChatClient(live_server.ws_url(alice))
    for client in (ws, second):
        client.close()


# --- a reconnect storm ---------------------------------------------------------------


def test_a_handshake_goes_on_while_the_loop_is_never_idle():
    """Handshakes wait for the connected people's work, but not for ever: a loop that
    always finds a socket ready (steady traffic) once held every handshake slot until
    the traffic stopped, and the door refused everyone new."""
    from imchat.service.limits import IDLE_WAIT_MAX, after_connected_work

    left, right = socket.socketpair()
    busy = [True]

    def ping_pong(mine):
        # Each side wakes the other: some socket is ready in every loop iteration.
        while busy[0]:
            mine.send(b'x')
            mine.recv(1)

    talkers = [gevent.spawn(ping_pong, left), gevent.spawn(ping_pong, right)]
    try:
        gevent.sleep(0.05)
        waited = gevent.spawn(lambda: [after_connected_work() for _ in range(3)])
        waited.join(timeout=30 * IDLE_WAIT_MAX)
        assert waited.successful(), 'three waits for an idle loop did not end'
    finally:
        busy[0] = False
        gevent.killall(talkers)
        left.close()
        right.close()



def _serve(database_url, tmp_path, files=None, **settings):
    """The production server (`python wsgi.py`) in its own process, on a free port, with
    at most `files` open files if given, started; `settings` by their name without
    IMCHAT_."""
    settings = dict(dict(WS_RATE=0, ACCESS_LOG=0, LOG_LEVEL='WARNING'), **settings)
    return ServerProcess(tmp_path, database_url, files=files,
                         **{'IMCHAT_' + k: v for k, v in settings.items()}).start()


@pytest.fixture
def server_process(database_url, tmp_path):
    """The production server in its own process, with at most 8 WebSocket handshakes in
    progress."""
    server = _serve(database_url, tmp_path, WS_HANDSHAKES=8)
    yield server.url, server.port
    server.stop()


def _register(base, mobile):
    data = requests.post(base + '/user/register', timeout=30,
                         data={'mobile': mobile, 'passwd': 'secret-pass'}).json()['data']
    return data['id'], data['token']


def _refused_at_the_door(base):
    """Connections the door refused, for any reason, as /metrics counts them."""
    metrics = requests.get(base + '/metrics', timeout=10).text
    return sum(int(float(line.split()[-1])) for line in metrics.splitlines()
               if line.startswith('imchat_connections_refused_total{'))


def test_connected_people_keep_chatting_through_a_reconnect_storm(server_process, tmp_path):
    base, port = server_process
    (alice_id, alice_token), (bob_id, bob_token) = [_register(base, m) for m in
                                                    ('13500000001', '13500000002')]
    requests.post(base + '/contact/addfriend', timeout=30, data={'dstid': bob_id},
                  headers={'Authorization': 'Bearer ' + alice_token})
    url = 'ws://127.0.0.1:{}/chat?id={}&token={}'
    a = ChatClient(url.format(port, alice_id, alice_token), timeout=60)
    b = ChatClient(url.format(port, bob_id, bob_token), timeout=60)
    storm_users = [_register(base, '135100000%02d' % i) for i in range(20)]
    users_file = tmp_path / 'storm-users.json'
    users_file.write_text(json.dumps(storm_users))
    storm = subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'storm.py'),
                              str(port), '12', str(users_file)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The storm is raging: the door has begun to turn handshakes away.
        wait_for(lambda: _refused_at_the_door(base) > 0, 60, 'the storm at the door')
        sent = 0
        while storm.poll() is None and sent < 200:
            a.text(bob_id, 'through the storm %d' % sent)
            ack = a.recv_ack(timeout=60)
            assert ack['code'] == 0, ack
            assert b.recv(timeout=60)['content'] == 'through the storm %d' % sent
            sent += 1
        out, err = storm.communicate(timeout=120)
    finally:
        if storm.poll() is None:
            storm.kill()
            storm.wait()
        a.close()
        b.close()
    assert storm.returncode == 0, err
    counts = json.loads(out)
    assert sent >= 5, (sent, counts)
    # The storm got through in part, and the rest was turned away at the door.
    assert counts.get('101', 0) > 0 and counts.get('503', 0) > 0, counts


# --- out of open files ---------------------------------------------------------------

FILES = 256  # the server's open-file limit in these tests: full at 156 (door.file_ceiling)


@pytest.fixture
def small_server(tmp_path):
    """The production server on SQLite with room for FILES open files, its log in a file."""
    server = _serve(None, tmp_path, files=FILES, WS_PER_USER=1000, HEADER_TIMEOUT=60,
                    LOG_LEVEL='INFO')
    yield server.url, server.port, pathlib.Path(server.log_path)
    server.stop()


def _refusal_of(error):
    """The status and headers of a refused WebSocket handshake (websocket-client)."""
    assert isinstance(error, websocket.WebSocketBadStatusException), repr(error)
    return error.status_code, {k.lower(): v for k, v in (error.resp_headers or {}).items()}


def test_a_full_server_refuses_new_connections_with_503_and_keeps_its_own(small_server):
    """Near its open-file limit the server answers new connections 503 with Retry-After,
    rather than failing to accept them (a hang for the client, a traceback a second in
    the log); the people connected chat on, and a place freed is taken again."""
    base, port, log_path = small_server
    (alice_id, alice_token), (bob_id, bob_token) = [_register(base, m) for m in
                                                    ('13600000001', '13600000002')]
    requests.post(base + '/contact/addfriend', timeout=30, data={'dstid': bob_id},
                  headers={'Authorization': 'Bearer ' + alice_token})
    url = 'ws://127.0.0.1:{}/chat?id={}&token={}'.format(port, bob_id, bob_token)
    alice = ChatClient('ws://127.0.0.1:{}/chat?id={}&token={}'.format(
        port, alice_id, alice_token), timeout=30)
    bob = ChatClient(url, timeout=30)
    held = []
    try:
        while True:
            assert len(held) < FILES, 'never refused'
            try:
                held.append(ChatClient(url, timeout=30))
            except websocket.WebSocketException as error:
                status, headers = _refusal_of(error)
                break
        assert status == 503 and headers.get('retry-after') == '10'
        # Full at file number 156: what the server had open at start, then sockets.
        assert 100 < len(held) + 2 < 156, len(held)
        # Still full: the next is refused too, and HTTP as well, with a clear reason.
        reply = requests.get(base + '/healthz', timeout=10)
        assert reply.status_code == 503 and 'full' in reply.json()['msg']
        # Those connected chat on.
        alice.text(bob_id, 'still here')
        assert alice.recv_ack(timeout=30)['code'] == 0
        assert bob.recv(timeout=30)['content'] == 'still here'
        # A place freed is taken again.
        for client in held[:5]:
            client.close()
        del held[:5]
        assert wait_for(lambda: _connects(url, held), timeout=30)
        # Each refusal counted: the first WebSocket, the health check, and any of the
        # tries just now.
        metrics = requests.get(base + '/metrics', timeout=10).text
        [line] = [line for line in metrics.splitlines()
                  if line.startswith('imchat_connections_refused_total{') and
                  'reason="full"' in line]
        assert int(line.split()[-1]) >= 2
    finally:
        for client in [alice, bob] + held:
            client.close()
    text = log_path.read_text()
    assert 'the server is full' in text
    assert 'Too many open files' not in text


def _connects(url, held):
    try:
        held.append(ChatClient(url, timeout=30))
        return True
    except websocket.WebSocketBadStatusException:
        return False


def test_a_flood_past_the_last_open_file_is_answered_and_the_server_lives(small_server):
    """A flood of connections that send nothing, twice the server's open files: those
    accepted while there is room wait for their request as usual (up to the ceiling);
    every one past it gets 503 and is closed, so the files come free again, and none waits
    unanswered for long. The server lives through it and serves as before after it."""
    base, port, log_path = small_server
    flood = []
    try:
        for _ in range(2 * FILES):
            flood.append(socket.create_connection(('127.0.0.1', port), timeout=30))
        # Those held waiting for their request are below the ceiling (156): the rest
        # are answered within seconds (a 503, or closed), not after the header timeout.
        unanswered = set(flood)
        deadline = time.monotonic() + 30
        while len(unanswered) >= 156 and time.monotonic() < deadline:
            readable, _, _ = select.select(list(unanswered), [], [], 1)
            for sock in readable:
                try:
                    answer = sock.recv(4096)
                except ConnectionResetError:
                    answer = b''
                assert answer == b'' or answer.startswith(b'HTTP/1.1 503'), answer
                unanswered.discard(sock)
        assert len(unanswered) < 156
    finally:
        for sock in flood:
            sock.close()
    assert wait_for(lambda: requests.get(base + '/healthz', timeout=10).status_code == 200,
                    timeout=30)
    assert 'the server is full' in log_path.read_text()


ATTACKER = {'REMOTE_ADDR': '203.0.113.9'}
OWNER = {'REMOTE_ADDR': '198.51.100.7'}


@settings(LOGIN_RATE=0, LOGIN_ATTEMPTS=3)
def test_a_stranger_guessing_a_password_does_not_lock_its_owner_out(client, auth):
    """Failures count per mobile and address: the guesser's address is refused for that
    mobile, while its owner, from elsewhere, still logs in."""
    victim = auth.register()
    for i in range(3):
        response = client.post('/user/login', environ_base=ATTACKER,
                               data={'mobile': victim.mobile, 'passwd': 'guess-%d' % i})
        assert response.status_code == 401
    response = client.post('/user/login', environ_base=ATTACKER,
                           data={'mobile': victim.mobile, 'passwd': victim.passwd})
    assert response.status_code == 429 and response.json['reason'] == 'rate_limited.login'
    response = client.post('/user/login', environ_base=OWNER,
                           data={'mobile': victim.mobile, 'passwd': victim.passwd})
    assert response.status_code == 200, response.json


def test_a_mobile_s_failures_from_many_addresses_slow_its_logins_before_refusing_them():
    from imchat.service.limits import LoginGuard, MemoryStore

    guard = LoginGuard(MemoryStore(), attempts=3, window=300)
    delays = []
    for n in range(3 * LoginGuard.MOBILE_FACTOR):
        attempt = guard.begin_login('13900000001', '203.0.113.{}'.format(n))
        delays.append(attempt.delay)
        attempt.failed()
    assert delays[:4] == [0, 0, 0, 1] and delays[4:7] == [2, 4, 8]
    assert max(delays) == LoginGuard.MAX_DELAY and delays == sorted(delays)
    with pytest.raises(TooManyRequests):
        guard.begin_login('13900000001', '198.51.100.7')
    # The owner's right password forgives the mobile's failures.
    other = LoginGuard(MemoryStore(), attempts=3, window=300)
    for n in range(5):
        other.begin_login('13900000002', '203.0.113.{}'.format(n)).failed()
    other.begin_login('13900000002', '198.51.100.7').succeeded()
    assert other.begin_login('13900000002', '198.51.100.8').delay == 0
