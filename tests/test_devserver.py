"""The same app under the Flask dev server (`flask --app wsgi run`), where /chat runs on
simple-websocket instead of gevent-websocket: a real subprocess, real clients."""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.harness import ROOT, ServerProcess, wait_for
from tests.wsclient import ChatClient


def call(base, path, token=None, **fields):
    request = urllib.request.Request(base + path, data=urllib.parse.urlencode(fields).encode())
    if token:
        request.add_header('Authorization', 'Bearer ' + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


@pytest.fixture
def dev_server(database_url, tmp_path):
    flask = os.path.join(os.path.dirname(sys.executable), 'flask')
    server = ServerProcess(tmp_path, database_url, cwd=ROOT, PYTHONPATH=ROOT)
    server.command = [flask, '--app', 'wsgi', 'run', '--port', str(server.port)]
    server.start()
    yield server.url, server.port
    server.stop()


def test_chat_under_the_flask_dev_server(dev_server):
    base, port = dev_server
    alice = call(base, '/user/register', mobile='13700000001', passwd='secret-1')['data']
    bob = call(base, '/user/register', mobile='13700000002', passwd='secret-1')['data']
    assert call(base, '/contact/addfriend', alice['token'], dstid=bob['id'])['code'] == 0
    url = 'ws://127.0.0.1:{}/chat?id={}&token={}'
    a = ChatClient(url.format(port, alice['id'], alice['token']))
    b = ChatClient(url.format(port, bob['id'], bob['token']))
    # Both registered before the first message (no since: live only).
    for user, other in ((alice, bob), (bob, alice)):
        wait_for(lambda: call(base, '/user/find', other['token'], id=user['id'])['data'][
            'online'] == 1, what='{} online'.format(user['mobile']))
    try:
        big = '大' * 4000  # 12 kB: a frame simple-websocket's plain send() could cut
        for content in ('hello', big):
            a.text(bob['id'], content)
            ack = a.recv_ack()
            assert ack['code'] == 0
            got = b.recv()
            assert got['content'] == content and got['msgid'] == ack['msgid']
        a.send_raw('{oops')
        assert a.recv_ack()['code'] == -1
        b.text(alice['id'], 'back at you')
        b.recv_ack()
        assert a.recv()['content'] == 'back at you'
    finally:
        a.close()
        b.close()
    bad = ChatClient(url.format(port, alice['id'], 'wrong'))
    assert bad.close_code()[0] == 4401
