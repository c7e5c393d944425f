"""Database outages: with MariaDB behind a TCP proxy that the test stalls, cuts and
restores (and SQLite locked by another process), senders get a refusal ack rather than
a hang, /healthz turns 503 in seconds, the HTTP API answers 503 and new WebSockets
close with 1013, the log says once that the outage began and once that it ended (with
a count), and the server recovers by itself."""
import json
import logging
import os
import re
import sqlite3
import uuid

import pytest

from imchat import create_app
from tests.conftest import FAST_PASSWD_COST, MYSQL_SERVER, _mysql_admin, _mysql_params
from tests import harness
from tests.harness import TcpRelay, wait_for
from tests.harness.live import LiveServer
from tests.wsclient import ChatClient, ConnectionClosed

DB_TIMEOUT = 2
# Generous bounds for a loaded machine; without timeouts these waits never end.
REFUSAL_WITHIN = 25


def http(url, data=None, timeout=REFUSAL_WITHIN):
    """(status, parsed body) of a GET, or of a POST of `data` as JSON."""
    body = None if data is None else json.dumps(data).encode()
    return harness.http(url, body, {'Content-Type': 'application/json'}, timeout)


class Deployment:
    """The app on the real gevent server, with two friends connected."""

    def __init__(self, database_url, tmp_path):
        self.app = create_app({'DATABASE_URL': database_url, 'PASSWD_COST': FAST_PASSWD_COST,
                               'UPLOAD_DIR': str(tmp_path / 'mnt'), 'LOG_LEVEL': 'WARNING',
                               'DB_TIMEOUT': DB_TIMEOUT})
        self.server = LiveServer(self.app)
        self.base = self.server.url
        self.clients = []
        self.alice = self.register('13700000001')
        self.bob = self.register('13700000002')
        status, answer = http(self.base + '/contact/addfriend',
                              {'token': self.alice['token'], 'dstid': self.bob['id']})
        assert status == 200, answer

    def register(self, mobile):
        status, answer = http(self.base + '/user/register',
                              {'mobile': mobile, 'passwd': 'secret-pass'})
        assert status == 200, answer
        return answer['data']

    def connect(self, user):
        client = ChatClient('ws://127.0.0.1:{}/chat?id={}&token={}'.format(
            self.server.port, user['id'], user['token']), timeout=REFUSAL_WITHIN)
        self.clients.append(client)
        return client

    def close(self):
        for client in self.clients:
            client.close()
        self.server.close()
        self.app.extensions['imchat'].close()


@pytest.fixture
def proxied_mysql(mysql_reachable):
    """A throw-away MariaDB database reached through a TcpRelay: (proxy, url)."""
    if 'mysql' not in os.environ.get('IMCHAT_TEST_BACKENDS', 'sqlite,mysql'):
        pytest.skip('the MySQL leg is not selected')
    if mysql_reachable is not True:
        message = 'MySQL at {} is not reachable: {}'.format(MYSQL_SERVER, mysql_reachable)
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    params = _mysql_params()
    proxy = TcpRelay(params['port'], params['host'])
    name = 'imchat_test_' + uuid.uuid4().hex[:12]
    yield proxy, 'mysql://{}:{}@127.0.0.1:{}/{}'.format(params['user'], params['password'],
                                                        proxy.port, name)
    proxy.close()
    con = _mysql_admin()
    try:
        con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(name))
    finally:
        con.close()


def outage_records(caplog):
    began = [r for r in caplog.records if r.getMessage().startswith('database unavailable')]
    ended = [r for r in caplog.records if r.getMessage().startswith('database answering again')]
    return began, ended


def refused_count(record):
    return int(re.search(r'; (\d+) requests', record.getMessage()).group(1))


def no_tracebacks(caplog):
    traced = [r.getMessage() for r in caplog.records if r.exc_info]
    assert not traced, traced


def refused_ack(client, text_to, content):
    client.text(text_to, content)
    ack = client.recv_ack(timeout=REFUSAL_WITHIN)
    assert ack['code'] == -1 and 'database is unavailable' in ack['msg'], ack
    return ack


def new_socket_is_closed_1013(deployment, user):
    client = deployment.connect(user)
    code, reason = client.close_code(timeout=REFUSAL_WITHIN)
    assert code == 1013, (code, reason)


def recovered(deployment, sender, receiver, content):
    """After the outage: a message goes through and arrives, a new socket works."""
    sender.text(deployment.bob['id'], content)
    ack = sender.recv_ack(timeout=REFUSAL_WITHIN)
    assert ack['code'] == 0, ack
    assert receiver.recv(timeout=REFUSAL_WITHIN)['content'] == content
    fresh = deployment.connect(deployment.bob)
    # The new socket catches up (since nothing: from the resume point) and then is live.
    sender.text(deployment.bob['id'], content + ' again')
    assert sender.recv_ack(timeout=REFUSAL_WITHIN)['code'] == 0
    got = fresh.recv(timeout=REFUSAL_WITHIN)
    while got.get('content') != content + ' again':
        got = fresh.recv(timeout=REFUSAL_WITHIN)


def test_a_stalled_database_refuses_instead_of_holding(proxied_mysql, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger='imchat')
    proxy, url = proxied_mysql
    deployment = Deployment(url, tmp_path)
    try:
        a, b = deployment.connect(deployment.alice), deployment.connect(deployment.bob)
        a.text(deployment.bob['id'], 'before')
        assert a.recv_ack()['code'] == 0 and b.recv()['content'] == 'before'

        proxy.stall()
        refused_ack(a, deployment.bob['id'], 'during the stall')
        status, answer = http(deployment.base + '/healthz')
        assert status == 503 and answer['data'] == {'database': 'unreachable'}, answer
        status, answer = http(deployment.base + '/contact/loadfriend',
                              {'token': deployment.alice['token']})
        assert status == 503 and answer['code'] == -1, answer
        new_socket_is_closed_1013(deployment, deployment.bob)
        refused_ack(a, deployment.bob['id'], 'still stalled')
        b.expect_nothing(0.3)

        proxy.restore()
        assert wait_for(lambda: http(deployment.base + '/healthz')[0] == 200, timeout=60)
        recovered(deployment, a, b, 'after the stall')
    finally:
        deployment.close()
    began, ended = outage_records(caplog)
    assert len(began) == 1 and len(ended) == 1, [r.getMessage() for r in began + ended]
    assert refused_count(ended[0]) >= 4, ended[0].getMessage()
    no_tracebacks(caplog)


def test_a_database_that_is_down_is_logged_once_and_recovered_from(proxied_mysql, tmp_path,
                                                                   caplog):
    caplog.set_level(logging.WARNING, logger='imchat')
    proxy, url = proxied_mysql
    deployment = Deployment(url, tmp_path)
    try:
        a, b = deployment.connect(deployment.alice), deployment.connect(deployment.bob)
        a.text(deployment.bob['id'], 'before')
        assert a.recv_ack()['code'] == 0 and b.recv()['content'] == 'before'

        proxy.cut()
        for n in range(50):
            refused_ack(a, deployment.bob['id'], 'refused {}'.format(n))
        for path in ('/user/find', '/contact/loadcommunity', '/chat/history'):
            status, answer = http(deployment.base + path, {'token': deployment.alice['token'],
                                                           'cmd': 10, 'dstid': 2})
            assert status == 503 and 'database' in answer['msg'], (path, answer)
        status, answer = http(deployment.base + '/user/login',
                              {'mobile': '13700000001', 'passwd': 'secret-pass'})
        assert status == 503, answer
        new_socket_is_closed_1013(deployment, deployment.alice)
        b.expect_nothing(0.3)
        began, ended = outage_records(caplog)
        assert len(began) == 1 and not ended

        # Back by itself: nobody asks /healthz; the server's own probe notices.
        proxy.restore()
        assert wait_for(lambda: outage_records(caplog)[1], timeout=60)
        recovered(deployment, a, b, 'after the cut')
    finally:
        deployment.close()
    began, ended = outage_records(caplog)
    assert len(began) == 1 and len(ended) == 1, [r.getMessage() for r in began + ended]
    assert refused_count(ended[0]) >= 55, ended[0].getMessage()
    no_tracebacks(caplog)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r not in began]


@pytest.mark.slow  # waits each refusal waits out the database timeout
def test_a_locked_sqlite_database_refuses_instead_of_holding(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger='imchat')
    path = tmp_path / 'imchat.db'
    deployment = Deployment('sqlite:///{}'.format(path), tmp_path)
    other_process = sqlite3.connect(str(path), timeout=1, isolation_level=None)
    try:
        a, b = deployment.connect(deployment.alice), deployment.connect(deployment.bob)
        a.text(deployment.bob['id'], 'before')
        assert a.recv_ack()['code'] == 0 and b.recv()['content'] == 'before'

        # Another program holds the write lock, as a long migration or backup might.
        other_process.execute('BEGIN EXCLUSIVE')
        refused_ack(a, deployment.bob['id'], 'while locked')
        status, answer = http(deployment.base + '/healthz')
        assert status == 503, answer
        status, answer = http(deployment.base + '/user/find',
                              {'token': deployment.alice['token']})
        assert status == 503, answer
        new_socket_is_closed_1013(deployment, deployment.bob)

        other_process.execute('ROLLBACK')
        assert wait_for(lambda: outage_records(caplog)[1], timeout=60)
        recovered(deployment, a, b, 'after the lock')
    finally:
        other_process.close()
        deployment.close()
    began, ended = outage_records(caplog)
    assert len(began) == 1 and len(ended) == 1
    assert refused_count(ended[0]) >= 3, ended[0].getMessage()
    no_tracebacks(caplog)
