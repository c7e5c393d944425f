"""The door under slow and stormy clients (issue 25): only real handshakes hold a slot,
a handshake ends at registration, bodies have a deadline, a request past the proxies
counts under its peer, tokens stay out of URLs and logs, and refusing a handshake
costs no database work. Real sockets against the production server (pywsgi and the
door), in this process or, where open files are counted, in its own.
"""
import json
import logging
import re
import socket
import time

import gevent
import pytest
import requests
import websocket
from gevent.event import Event

from tests.harness import ServerProcess
from tests.wsclient import ChatClient

# Generous: two cores shared by several test runs.
WAIT_SECONDS = 60

HANDSHAKE_HEADERS = ('Upgrade: websocket\r\nConnection: Upgrade\r\n'
                     'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                     'Sec-WebSocket-Version: 13\r\n')


def wait_for(condition, timeout=WAIT_SECONDS, what='the condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, '{} did not hold within {} s'.format(what, timeout)
        gevent.sleep(0.02)


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


def refused(app, reason):
    return services(app).metrics.value('imchat_connections_refused_total', reason=reason)


def status_line(sock):
    """The first line the server answers on `sock` ('' when it closed without one)."""
    head = b''
    while b'\r\n' not in head:
        chunk = sock.recv(256)
        if not chunk:
            break
        head += chunk
    return head.split(b'\r\n', 1)[0].decode('latin-1')


def handshake_status(port, query='', headers=''):
    """The status line answering a WebSocket handshake to /chat."""
    with socket.create_connection(('127.0.0.1', port), timeout=WAIT_SECONDS) as sock:
        sock.sendall('GET /chat{} HTTP/1.1\r\nHost: x\r\n{}{}\r\n'.format(
            '?' + query if query else '', HANDSHAKE_HEADERS, headers).encode())
        return status_line(sock)


# --- 1. only real handshakes hold a slot -----------------------------------------------

@settings(WS_HANDSHAKES=4, PROXY_COUNT=1, CONNECTIONS_PER_ADDRESS=0, CONNECT_RATE=0,
          BODY_TIMEOUT=600)
def test_slow_requests_asking_to_upgrade_hold_no_handshake_slot(app, auth, live_server):
    alice = auth.register()
    door = live_server.server.door
    # Logins with an upgrade header whose bodies never finish, more than there are slots.
    slow = []
    for _ in range(8):
        sock = socket.create_connection(('127.0.0.1', live_server.port), timeout=WAIT_SECONDS)
        sock.sendall(('POST /user/login HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9'
                      '\r\n{}Content-Type: application/x-www-form-urlencoded\r\n'
                      'Content-Length: 100\r\n\r\nmobile=1').format(HANDSHAKE_HEADERS).encode())
        slow.append(sock)
    # The door counts each request from its forwarded address once its headers are read,
    # and decides on its slot in the same step.
    wait_for(lambda: door.open.get('203.0.113.9') == 8, what='the slow requests read')
    assert services(app).handshakes.in_progress == 0
    assert refused(app, 'handshakes') == 0
    ws = ChatClient(live_server.ws_url(alice))
    wait_for(lambda: live_server.hub.is_online(alice.id), what='alice online')
    ws.close()
    for sock in slow:
        sock.close()


@settings(WS_HANDSHAKES=2)
def test_only_a_get_of_chat_with_a_valid_upgrade_is_a_handshake(app, live_server):
    from imchat.process.door import is_handshake

    valid = {'Upgrade': 'websocket', 'Connection': 'keep-alive, Upgrade',
             'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13'}
    assert is_handshake('GET', '/chat?id=1', valid)
    assert not is_handshake('POST', '/chat', valid)
    assert not is_handshake('GET', '/user/login', valid)
    assert not is_handshake('GET', '/chatx', valid)
    for missing in valid:
        assert not is_handshake('GET', '/chat', {k: v for k, v in valid.items()
                                                 if k != missing})


# --- 1. bodies have a deadline -------------------------------------------------------

@pytest.fixture
def trickle_server(tmp_path):
    """A server of 300 open files whose bodies have 2 s (and one more per 16 KiB)."""
    server = ServerProcess(tmp_path, files=300, IMCHAT_BODY_TIMEOUT=2,
                           IMCHAT_HEADER_TIMEOUT=600).start()
    yield server.port
    server.stop()


@pytest.mark.process
@pytest.mark.slow
def test_bodies_trickled_in_are_cut_off_and_the_server_is_not_left_full(trickle_server):
    port = trickle_server
    slow = []
    for _ in range(200):
        sock = socket.create_connection(('127.0.0.1', port), timeout=WAIT_SECONDS)
        sock.sendall(b'POST /user/login HTTP/1.1\r\nHost: x\r\n'
                     b'Content-Type: application/x-www-form-urlencoded\r\n'
                     b'Content-Length: 1000\r\n\r\nm')
        slow.append(sock)

    def trickle():  # one byte a second to each, for as long as it is open
        while slow:
            for sock in list(slow):
                try:
                    sock.send(b'0')
                except OSError:
                    pass
            gevent.sleep(1)
    trickler = gevent.spawn(trickle)
    try:
        answers = []
        for sock in list(slow):
            data = b''
            while True:
                chunk = sock.recv(4096)  # the server's answer, then its close
                if not chunk:
                    break
                data += chunk
            answers.append(data)
        # Those accepted past the files kept free were told the server is full; every
        # other one is cut off at its body's deadline.
        reasons = [json.loads(a.split(b'\r\n\r\n', 1)[1])['reason'] for a in answers]
        assert set(reasons) <= {'timeout.body', 'busy.full'}, set(answers)
        cut_off = reasons.count('timeout.body')
        assert cut_off >= 150
    finally:
        for sock in slow:
            sock.close()
        del slow[:]
        trickler.join()
    base = 'http://127.0.0.1:{}'.format(port)
    assert requests.get(base + '/healthz', timeout=WAIT_SECONDS).status_code == 200
    metrics = requests.get(base + '/metrics', timeout=WAIT_SECONDS).text
    assert re.search(r'^imchat_connections_refused_total\{[^}]*reason="body"[^}]*\} %d$'
                     % cut_off, metrics, re.M), metrics
    # Once they are gone, the server is no longer full: more are served.
    for _ in range(50):
        assert requests.get(base + '/healthz', timeout=WAIT_SECONDS,
                            headers={'Connection': 'close'}).status_code == 200


@settings(BODY_TIMEOUT=1)
def test_a_body_that_arrives_in_time_is_served(auth, live_server):
    alice = auth.register(mobile='13700000001')
    response = requests.post(live_server.url + '/user/login', timeout=WAIT_SECONDS,
                             data={'mobile': '13700000001', 'passwd': alice.passwd})
    assert response.status_code == 200, response.text


# --- 2. catch-up is not a handshake --------------------------------------------------

@settings(WS_HANDSHAKES=4)
def test_readers_in_catch_up_hold_no_handshake_slot(app, auth, live_server, monkeypatch):
    alice = auth.register()
    reader = services(app).reader
    in_catch_up = []
    release = Event()
    backlog = reader.backlog

    def held_backlog(user_id, after):
        in_catch_up.append(user_id)
        release.wait()  # a replay that takes its time, as to a reader that stalls
        yield from backlog(user_id, after)
    monkeypatch.setattr(reader, 'backlog', held_backlog)
    query = 'id={}&token={}'.format(alice.id, alice.token)
    readers = [gevent.spawn(handshake_status, live_server.port, query) for _ in range(4)]
    wait_for(lambda: len(in_catch_up) == 4, what='four connections in catch-up')
    assert [r.get() for r in readers] == ['HTTP/1.1 101 Switching Protocols'] * 4
    assert services(app).handshakes.in_progress == 0
    # A fifth is accepted while they are still replaying.
    assert handshake_status(live_server.port, query).startswith('HTTP/1.1 101')
    assert refused(app, 'handshakes') == 0
    release.set()


# --- 3. behind proxies, a request without X-Forwarded-For counts under its peer -------

@settings(PROXY_COUNT=1, CONNECTIONS_PER_ADDRESS=0, CONNECT_RATE=2)
def test_a_request_past_the_proxies_is_limited_by_its_peer_address(app, live_server):

    def fetch():
        return requests.get(live_server.url + '/healthz', timeout=WAIT_SECONDS,
                            headers={'Connection': 'close'}).status_code
    jobs = [gevent.spawn(fetch) for _ in range(20)]
    gevent.joinall(jobs, raise_error=True)
    statuses = [job.value for job in jobs]
    assert 429 in statuses and 200 in statuses
    assert refused(app, 'address') == statuses.count(429)


# --- 4. tokens out of URLs and logs ----------------------------------------------------

def test_the_token_may_come_as_a_subprotocol(auth, live_server):
    alice = auth.register()
    url = 'ws://127.0.0.1:{}/chat?id={}'.format(live_server.port, alice.id)
    ws = websocket.create_connection(url, timeout=WAIT_SECONDS, subprotocols=[
        'imchat', 'imchat.token.' + alice.token])
    assert ws.getsubprotocol() == 'imchat'
    wait_for(lambda: live_server.hub.is_online(alice.id), what='alice online')
    ws.close()
    # Old clients: the token in the URL, no subprotocol offered, none answered.
    ws = websocket.create_connection(live_server.ws_url(alice), timeout=WAIT_SECONDS)
    assert ws.getsubprotocol() is None
    ws.close()


def test_a_wrong_subprotocol_token_closes_with_4401(auth, live_server):
    alice = auth.register()
    sock = socket.create_connection(('127.0.0.1', live_server.port), timeout=WAIT_SECONDS)
    sock.sendall(('GET /chat?id={} HTTP/1.1\r\nHost: x\r\n{}Sec-WebSocket-Protocol: imchat, '
                  'imchat.token.nope\r\n\r\n').format(alice.id, HANDSHAKE_HEADERS).encode())
    data = b''
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, frame = data.split(b'\r\n\r\n', 1)
    assert head.startswith(b'HTTP/1.1 101')
    assert b'Sec-WebSocket-Protocol: imchat\r\n' in head + b'\r\n'
    assert frame[0] == 0x88 and int.from_bytes(frame[2:4], 'big') == 4401


def test_malformed_request_lines_are_logged_without_their_tokens(live_server, caplog):
    caplog.set_level(logging.INFO)
    for line in (b'GET /chat?id=1&token=s3cr3t-in-url HTTP/1.1 extra\r\n\r\n',
                 b'BREW /chat?token=s3cr3t-in-url HTTP/1.1\r\n\r\n',
                 b'GET /chat?passwd=s3cr3t-in-url\r\n\r\n'):
        with socket.create_connection(('127.0.0.1', live_server.port),
                                      timeout=WAIT_SECONDS) as sock:
            sock.sendall(line)
            status_line(sock)
    wait_for(lambda: [r for r in caplog.records if 'Invalid HTTP' in r.getMessage()],
             what='the malformed request logged')
    assert 's3cr3t' not in caplog.text


# --- 5. refusing a handshake costs no database work ----------------------------------

@settings(WS_HANDSHAKE_RATE=3)
def test_handshakes_past_the_rate_are_refused_before_any_database_work(app, auth, live_server,
                                                                       monkeypatch):
    alice = auth.register()
    users = services(app).users
    sessions = []
    session = users.session

    def counted_session(token):
        sessions.append(token)
        return session(token)
    monkeypatch.setattr(users, 'session', counted_session)
    query = 'id={}&token={}'.format(alice.id, alice.token)
    jobs = [gevent.spawn(handshake_status, live_server.port, query) for _ in range(30)]
    gevent.joinall(jobs, raise_error=True)
    statuses = [job.value.split(' ')[1] for job in jobs]
    accepted, refusals = statuses.count('101'), statuses.count('503')
    assert accepted + refusals == 30
    assert refusals > 0 and refused(app, 'handshakes') == refusals
    # Only the accepted ones asked the database who their token is.
    wait_for(lambda: len(sessions) == accepted, what='each accepted handshake checked')
    assert len(sessions) == accepted


# --- 6. memory after a burst ---------------------------------------------------------

def test_memory_is_given_back_once_a_burst_of_handshakes_is_over():
    from imchat.process.memory import BURST_CONNECTIONS, BurstTrimmer

    made, handshaking, trims = [0], [0], []
    # glibc's malloc_trim, counted instead
    trimmer = BurstTrimmer(lambda: made[0], lambda: handshaking[0], trim=trims.append)
    made[0] = BURST_CONNECTIONS - 1
    assert not trimmer.check()  # a trickle of connections is no burst
    made[0], handshaking[0] = BURST_CONNECTIONS * 4, 3
    assert not trimmer.check()  # not while the burst goes on
    handshaking[0] = 0
    assert trimmer.check() and trims == [0]
    assert not trimmer.check()  # once per burst
