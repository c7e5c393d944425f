"""The benchmark's load generators (bench/loadgen.c and bench/loadgen.py) against a real
server: they count every message once, and count what is lost, refused or closed.

The benchmark's figures are only as good as these counts, so both generators are run
here through chat_bench's own Workers, with the jobs its scenarios write."""
import base64
import hashlib
import importlib.util
import os
import shutil
import socket

import gevent
import pytest
from gevent.server import StreamServer
from pony.orm import db_session, select

from tests.harness import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _chat_bench():
    spec = importlib.util.spec_from_file_location(
        'chat_bench', os.path.join(ROOT, 'bench', 'chat_bench.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chat_bench = _chat_bench()


@pytest.fixture(scope='module', params=['c', 'python'])
def load(request):
    """chat_bench.Workers, starting the generator named by the parameter."""
    if request.param == 'c' and not (shutil.which('cc') or shutil.which('gcc')):
        pytest.skip('no C compiler')
    command = chat_bench.build_loadgen(request.param)
    assert (command[0] == chat_bench.PYTHON) == (request.param == 'python')
    before, chat_bench.Workers.command = chat_bench.Workers.command, command
    yield chat_bench.Workers
    chat_bench.Workers.command = before


@pytest.fixture
def app_config(app_config):
    app_config['WS_RATE'] = 0  # as the benchmark runs it
    return app_config


# The generators do not care which database stores the messages.
sqlite_only = pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)


def conn(account):
    return {'uid': account.id, 'token': account.token}


def chat_job(live_server, conns, senders, expect, window=4, stall=15):
    return {'kind': 'chat', 'url': 'ws://127.0.0.1:{}/chat'.format(live_server.port),
            'window': window, 'stall': stall, 'conns': conns, 'senders': senders,
            'expect': expect}


def run(load, jobs, timeout=60):
    workers = load(jobs)
    try:
        assert workers.expect('ready', timeout) == [len(job['conns']) for job in jobs]
        workers.say('go')
        return workers.expect('result', timeout)
    finally:
        workers.close()


def stored_contents(app, sender_id):
    db = app.extensions['imchat'].db
    with db_session:
        return sorted(select(m.content for m in db.Message if m.userid == sender_id)[:],
                      key=lambda content: int(content.split(':')[1]))


@sqlite_only
def test_pairs_every_message_is_acknowledged_and_delivered_once(app, auth, live_server,
                                                                load):
    a, b, c, d = (auth.register() for _ in range(4))
    auth.befriend(a, b)
    auth.befriend(c, d)
    senders = [{'conn': 0, 'dstid': b.id, 'cmd': 10, 'count': 25, 'local': [1]},
               {'conn': 2, 'dstid': d.id, 'cmd': 10, 'count': 25, 'local': [3]}]
    [result] = run(load, [chat_job(live_server, [conn(a), conn(b), conn(c), conn(d)],
                                   senders, {1: {a.id: 25}, 3: {c.id: 25}})])
    assert (result['sent'], result['acked'], result['delivered'], result['expected']) == (
        50, 50, 50, 50)
    assert (result['duplicates'], result['out_of_order'], result['refused'],
            result['closed']) == (0, 0, 0, 0)
    # Every delivery is timed, once.
    assert sum(result['hist'].values()) == 50
    assert result['end'] >= result['start'] and result['cpu'] > 0
    # What was sent is what was stored: "<sender>:<seq>:<ns>", seqs 0..24 once each.
    for sender in (a, c):
        contents = stored_contents(app, sender.id)
        assert [content.split(':')[:2] for content in contents] == [
            [str(sender.id), str(seq)] for seq in range(25)]


@sqlite_only
def test_a_group_spread_over_two_processes(app, auth, live_server, load):
    owner, *members = (auth.register() for _ in range(4))
    group = auth.create_community(owner)
    for member in members:
        auth.join(member, group['id'])
    everyone = [owner] + members
    first, second = everyone[:2], everyone[2:]
    jobs = []
    for part in (first, second):
        # The first two members send 10 each; a sender is complete when acknowledged and
        # delivered to the recipients in its own process.
        senders = [{'conn': i, 'dstid': group['id'], 'cmd': 11, 'count': 10,
                    'local': [j for j in range(len(part)) if j != i]}
                   for i, account in enumerate(part) if account in first]
        expect = {i: {s.id: 10 for s in first if s is not account}
                  for i, account in enumerate(part)}
        jobs.append(chat_job(live_server, [conn(x) for x in part], senders, expect))
    results = run(load, jobs)
    assert [r['acked'] for r in results] == [20, 0]
    # The senders get each other's 10; the two others get 20 each.
    assert [r['delivered'] for r in results] == [20, 40]
    assert [r['expected'] for r in results] == [20, 40]
    assert [(r['duplicates'], r['out_of_order'], r['refused']) for r in results] == [
        (0, 0, 0), (0, 0, 0)]


@sqlite_only
def test_refused_and_undelivered_messages_are_counted(auth, live_server, load):
    a, stranger = auth.register(), auth.register()
    senders = [{'conn': 0, 'dstid': stranger.id, 'cmd': 10, 'count': 5, 'local': [1]}]
    [result] = run(load, [chat_job(live_server, [conn(a), conn(stranger)], senders,
                                   {1: {a.id: 5}}, window=5, stall=1)])
    # Not a friend: every message is refused, nothing arrives, and the phase ends once
    # nothing has come for the stall time, with all 5 short.
    assert (result['sent'], result['refused'], result['acked'], result['delivered']) == (
        5, 5, 0, 0)
    assert result['expected'] - result['delivered'] == 5


@sqlite_only
def test_a_paced_sender_sends_no_message_before_it_falls_due(auth, live_server, load):
    a, b = auth.register(), auth.register()
    auth.befriend(a, b)
    senders = [{'conn': 0, 'dstid': b.id, 'cmd': 10, 'count': 12, 'local': [1],
                'rate': 40}]
    [result] = run(load, [chat_job(live_server, [conn(a), conn(b)], senders,
                                   {1: {a.id: 12}})])
    assert (result['acked'], result['delivered']) == (12, 12)
    # Message 11 falls due 11/40 s after the first: the phase cannot end sooner.
    assert result['end'] - result['start'] >= 11 / 40


@sqlite_only
def test_idle_connections_are_held_and_the_ones_the_server_closes_are_counted(
        client, auth, live_server, load):
    a, b = auth.register(), auth.register()
    url = 'ws://127.0.0.1:{}/chat'.format(live_server.port)
    workers = load([{'kind': 'idle', 'url': url, 'conns': [conn(a), conn(a), conn(b)],
                     'concurrency': 2}])
    try:
        assert workers.expect('ready', 60) == [3]
        assert wait_for(lambda: len(live_server.hub.users.get(a.id, ())) == 2
                        and len(live_server.hub.users.get(b.id, ())) == 1)
        # Logging out closes the user's sockets (4401): one of the three.
        response = client.post('/user/logout', headers=b.headers)
        assert response.status_code == 200, response.json
        assert wait_for(lambda: not live_server.hub.users.get(b.id))
        # The server forgets a closed connection once the load process answers the
        # close (or CLOSE_GRACE after it wrote the close, dropping the socket): the
        # close has reached the load process by then.
        workers.say('close')
        [result] = workers.expect('result', 60)
    finally:
        workers.close()
    assert result == {'closed_by_server': 1}


@sqlite_only
def test_a_connection_the_server_closes_while_it_is_set_up_counts_as_closed(auth,
                                                                            live_server,
                                                                            load):
    """A bad token: the server upgrades, then closes with 4401, before or after the
    ping goes out (the close can come in the same read as the upgrade's answer). The
    job still gets ready (the others are open) and counts each such one as closed by
    the server, rather than waiting for it for ever. Several of them, so both orders
    come up."""
    a, b = auth.register(), auth.register()
    url = 'ws://127.0.0.1:{}/chat'.format(live_server.port)
    refused = {'uid': b.id, 'token': 'not-a-token'}
    conns = [conn(a)] + [refused] * 40 + [conn(a)]
    workers = load([{'kind': 'idle', 'url': url, 'conns': conns, 'concurrency': 4}])
    try:
        assert workers.expect('ready', 20) == [len(conns)]
        workers.say('close')
        [result] = workers.expect('result', 20)
    finally:
        workers.close()
    assert result == {'closed_by_server': 40}


def _closes_as_it_upgrades(sock, _address):
    """A server that sends its close (4401) in the same write as the upgrade's answer,
    as a server may: the client reads both at once, before it sends its ping."""
    request = b''
    while b'\r\n\r\n' not in request:
        chunk = sock.recv(4096)
        if not chunk:
            return
        request += chunk
    key = next(line.split(b':', 1)[1].strip() for line in request.split(b'\r\n')
               if line.lower().startswith(b'sec-websocket-key:'))
    accept = base64.b64encode(hashlib.sha1(
        key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
    sock.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                 b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n'
                 + bytes([0x88, 2]) + (4401).to_bytes(2, 'big'))
    while sock.recv(4096):  # the client's answering close, then its end
        pass


def test_a_close_in_the_same_read_as_the_upgrade_counts_as_closed(load):
    server = StreamServer(('127.0.0.1', 0), _closes_as_it_upgrades)
    server.start()
    try:
        url = 'ws://127.0.0.1:{}/chat'.format(server.server_port)
        conns = [{'uid': n, 'token': 'any'} for n in range(1, 6)]
        workers = load([{'kind': 'idle', 'url': url, 'conns': conns, 'concurrency': 2}])
        try:
            assert workers.expect('ready', 20) == [5]
            workers.say('close')
            [result] = workers.expect('result', 20)
        finally:
            workers.close()
    finally:
        server.stop()
    assert result == {'closed_by_server': 5}


def test_a_connection_the_server_never_sets_up_is_tried_again_then_given_up(load):
    """A server that takes the connection and never answers (one out of files leaves
    it in its listen queue): each try ends after the job's `setup` seconds, and after
    five the generator exits with an error, rather than waiting for ever."""
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(16)  # never accepted, never answered
    try:
        url = 'ws://127.0.0.1:{}/chat'.format(silent.getsockname()[1])
        workers = load([{'kind': 'idle', 'url': url, 'conns': [{'uid': 1, 'token': 't'}],
                         'setup': 0.2}])
        try:
            with pytest.raises(RuntimeError, match='exited'):
                workers.expect('ready', 30)
        finally:
            workers.close()
    finally:
        silent.close()
