"""IMCHAT_WORKERS: `python wsgi.py` supervising several server processes on one port,
with real processes: both workers serve, a message crosses from one worker's user to the
other's over the bus, a killed worker is restarted, SIGTERM stops them all with exit 0,
and workers never outlive their supervisor."""
import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from imchat.process import supervisor
from imchat.process.signals import listen_url
from tests.harness import (ROOT, Api, ServerProcess, free_udp_ports, pid_alive,
                           server_pid_of, unique_mobiles, wait_for)
from tests.harness.redis_server import redis_bus_url
from tests.wsclient import ChatClient

linux_only = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='reads /proc to tell the workers apart')


@pytest.fixture
def start_node(tmp_path, database_url):
    started = []

    def start(script=None, **settings):
        # A small pool: the workers of several test runs share one MariaDB.
        node = ServerProcess(tmp_path / 'node{}'.format(len(started)), database_url,
                             command=[sys.executable, script] if script else None,
                             IMCHAT_DB_POOL_SIZE=5, **settings).spawn()
        started.append(node)
        return node
    yield start
    for node in started:
        if node.alive():
            node.stop()


def bus():
    return {'IMCHAT_BUS': redis_bus_url()}


def connect_to_worker(node, user, pids, wanted, tries=200):
    """A WebSocket of `user` served by the worker `wanted` (a pid): new connections are
    spread by the kernel, so open them until one lands there."""
    for _ in range(tries):
        client = ChatClient(user.chat_url('ws://127.0.0.1:{}'.format(node.port)), timeout=15)
        if server_pid_of(client.ws.sock, pids) == wanted:
            return client
        client.close()
    raise AssertionError('no connection reached worker pid {} in {} tries'.format(wanted,
                                                                                tries))


def two_friends(node):
    api = Api(node.url)
    alice, bob = [api.register(m) for m in unique_mobiles(2)]
    api.befriend(alice, bob)
    return alice, bob


def test_more_than_one_worker_needs_a_bus(start_node):
    node = start_node(IMCHAT_WORKERS=2)
    assert node.process.wait(timeout=60) == 1
    log = node.log()
    assert ' CRITICAL cannot start: ' in log and 'IMCHAT_WORKERS=2 needs a bus' in log
    assert 'IMCHAT_BUS' in log
    assert 'worker 1 started' not in log


@linux_only
def test_two_workers_share_one_port_and_a_message_crosses_between_them(start_node):
    node = start_node(IMCHAT_WORKERS=2, **bus())
    pids = node.wait_workers(2)
    node.wait_healthy()
    assert 'sharing the port by SO_REUSEPORT' in node.log()
    one, two = sorted(pids.values())
    assert node.pid not in (one, two) and len({one, two}) == 2
    alice, bob = two_friends(node)
    a = connect_to_worker(node, alice, [one, two], one)
    b = connect_to_worker(node, bob, [one, two], two)
    try:
        msgid, = a.send_texts(bob.id, ['from worker {}'.format(one)])
        got = b.recv(timeout=15)
        assert (got['msgid'], got['userid'], got['content']) == (
            msgid, alice.id, 'from worker {}'.format(one))
        msgid, = b.send_texts(alice.id, ['and back'])
        got = a.recv(timeout=15)
        assert (got['msgid'], got['userid']) == (msgid, bob.id)
    finally:
        a.close()
        b.close()


@linux_only
def test_workers_on_a_udp_bus_get_a_port_each_and_reach_each_other(start_node):
    """A udp bus has one address per process: worker N listens on the configured port
    + N - 1, with its siblings as peers."""
    first = free_udp_ports(2)
    node = start_node(IMCHAT_WORKERS=2, IMCHAT_NODE_ID='box',
                      IMCHAT_BUS='udp://127.0.0.1:{}'.format(first))
    pids = node.wait_workers(2)
    node.wait_healthy()
    log = node.log()
    assert ' worker 1: bus: udp on 127.0.0.1:{} to 127.0.0.1:{} as node box-w1'.format(
        first, first + 1) in log
    assert ' worker 2: bus: udp on 127.0.0.1:{} to 127.0.0.1:{} as node box-w2'.format(
        first + 1, first) in log
    alice, bob = two_friends(node)
    a = connect_to_worker(node, alice, list(pids.values()), pids[1])
    b = connect_to_worker(node, bob, list(pids.values()), pids[2])
    try:
        msgid, = a.send_texts(bob.id, ['over udp'])
        assert b.recv(timeout=15)['msgid'] == msgid
        msgid, = b.send_texts(alice.id, ['and back'])
        assert a.recv(timeout=15)['msgid'] == msgid
    finally:
        a.close()
        b.close()


@linux_only
def test_a_killed_worker_is_restarted_and_serves_again(start_node):
    node = start_node(IMCHAT_WORKERS=2, **bus())
    pids = node.wait_workers(2)
    node.wait_healthy()
    alice, bob = two_friends(node)
    index, victim = sorted(pids.items())[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim), 30, 'the worker gone')

    def replaced():
        now = node.worker_pids()
        return now if now.get(index) not in (None, victim) and pid_alive(now[index]) else None
    new_pids = wait_for(replaced, 60, 'worker {} restarted'.format(index), interval=0.1)
    assert node.alive()
    log = node.log()
    assert 'worker {} (pid {}) killed by SIGKILL'.format(index, victim) in log
    assert 'worker {} started (pid {})'.format(index, new_pids[index]) in log
    # The new worker takes connections and delivers.
    b = ChatClient(bob.chat_url('ws://127.0.0.1:{}'.format(node.port)), timeout=15)
    a = connect_to_worker(node, alice, list(new_pids.values()), new_pids[index])
    try:
        msgid, = b.send_texts(alice.id, ['to the new worker'])
        assert a.recv(timeout=15)['msgid'] == msgid
    finally:
        a.close()
        b.close()


@linux_only
def test_sigterm_stops_every_worker_gracefully_with_exit_0(start_node):
    node = start_node(IMCHAT_WORKERS=2, **bus())
    pids = node.wait_workers(2)
    node.wait_healthy()
    alice, bob = two_friends(node)
    clients = [connect_to_worker(node, alice, list(pids.values()), pids[1]),
               connect_to_worker(node, bob, list(pids.values()), pids[2])]
    try:
        assert node.stop(signal.SIGTERM, seconds=30) == 0
        # Each worker closed its WebSockets "going away".
        assert [client.close_code(timeout=15)[0] for client in clients] == [1001, 1001]
    finally:
        for client in clients:
            client.close()
    assert not any(map(pid_alive, pids.values()))
    log = node.log()
    assert 'SIGTERM received: stopping 2 workers' in log
    for index in (1, 2):
        assert ' worker {}: SIGTERM received: shutting down'.format(index) in log
        assert ' worker {}: imchat stopped'.format(index) in log
    assert log.rstrip().endswith(' INFO imchat stopped')


@linux_only
def test_a_hung_worker_is_killed_after_the_shutdown_timeout_and_the_exit_says_so(
        start_node):
    node = start_node(IMCHAT_WORKERS=2, IMCHAT_SHUTDOWN_TIMEOUT=1, **bus())
    pids = node.wait_workers(2)
    node.wait_healthy()
    os.kill(pids[2], signal.SIGSTOP)  # hung: it cannot act on SIGTERM
    try:
        assert node.stop(signal.SIGTERM, seconds=30) == 1
    finally:
        if pid_alive(pids[2]):
            os.kill(pids[2], signal.SIGKILL)
    assert not any(map(pid_alive, pids.values()))
    log = node.log()
    assert 'worker 2 (pid {}) did not stop in time: killing it'.format(pids[2]) in log
    assert ' worker 1: imchat stopped' in log


def idle_keep_alive_on_each(node, pids, tries=200):
    """An idle HTTP keep-alive connection to each worker: a browser's, which holds a
    worker's stop up to IMCHAT_SHUTDOWN_TIMEOUT."""
    held = {}
    for _ in range(tries):
        sock = socket.create_connection(('127.0.0.1', node.port), timeout=15)
        sock.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        assert sock.recv(4096).startswith(b'HTTP/1.1 200')
        pid = server_pid_of(sock, pids)
        if pid in held or pid is None:
            sock.close()
        else:
            held[pid] = sock
        if len(held) == len(pids):
            return list(held.values())
    raise AssertionError('no idle connection reached every worker')


@linux_only
def test_a_second_signal_stops_the_workers_at_once(start_node):
    node = start_node(IMCHAT_WORKERS=2, IMCHAT_SHUTDOWN_TIMEOUT=60, **bus())
    pids = node.wait_workers(2)
    node.wait_healthy()
    held = idle_keep_alive_on_each(node, list(pids.values()))
    try:
        node.process.send_signal(signal.SIGTERM)
        wait_for(lambda: node.log().count('stopped accepting connections') == 2, 30,
                 'both workers stopping')
        assert node.alive(), 'the idle connections should hold the workers up'
        # At once: the idle connections would hold them up for IMCHAT_SHUTDOWN_TIMEOUT
        # (60 s), and stop() fails a process that is not gone within 10 s.
        assert node.stop(signal.SIGINT, seconds=10) == 1
    finally:
        for sock in held:
            sock.close()
    assert not any(map(pid_alive, pids.values()))
    assert 'SIGINT received during shutdown: the workers exit now' in node.log()


@linux_only
def test_workers_stop_by_themselves_when_the_supervisor_is_killed(start_node):
    node = start_node(IMCHAT_WORKERS=2, **bus())
    pids = node.wait_workers(2)
    node.kill()
    wait_for(lambda: not any(map(pid_alive, pids.values())), 30, 'the orphaned workers gone',
             interval=0.1)
    log = node.log()
    for index in (1, 2):
        assert ' worker {}: the supervisor (pid {}) is gone: stopping'.format(
            index, node.pid) in log
        assert ' worker {}: imchat stopped'.format(index) in log


@linux_only
def test_without_so_reuseport_workers_accept_from_one_inherited_socket(start_node, tmp_path):
    """The fallback where the OS lacks SO_REUSEPORT, forced on this one: the supervisor
    listens once and both workers accept from that socket."""
    launcher = tmp_path / 'no_reuseport.py'
    launcher.write_text(
        'from gevent import monkey\nmonkey.patch_all()\n'
        'import sys\nsys.path.insert(0, {root!r})\n'
        'from imchat.process import supervisor\n'
        "supervisor.sharing_mode = lambda: 'inherit'\n"
        'import wsgi\nwsgi.main()\n'.format(root=ROOT))
    node = start_node(script=str(launcher), IMCHAT_WORKERS=2, **bus())
    pids = node.wait_workers(2)
    node.wait_healthy()
    assert 'one inherited listening socket (no SO_REUSEPORT here)' in node.log()
    alice, bob = two_friends(node)
    a = connect_to_worker(node, alice, list(pids.values()), pids[1])
    b = connect_to_worker(node, bob, list(pids.values()), pids[2])
    try:
        msgid, = a.send_texts(bob.id, ['shared socket'])
        assert b.recv(timeout=15)['msgid'] == msgid
    finally:
        a.close()
        b.close()
    assert node.stop() == 0


@linux_only
@pytest.mark.process
def test_the_release_s_run_is_the_supervisor(tmp_path, database_url):
    """`release/run` (so nohup and systemd) starts the supervisor as the pid it reports,
    the workers run the release's wsgi.py, and SIGTERM to that pid stops everything."""
    release = tmp_path / 'release'
    built = subprocess.run(['bash', os.path.join(ROOT, 'build.sh'), str(release)],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    node = ServerProcess(tmp_path / 'run', database_url, command=[str(release / 'run')],
                         IMCHAT_DB_POOL_SIZE=5, IMCHAT_VENV=sys.prefix, IMCHAT_WORKERS=2,
                         **bus()).spawn()
    try:
        pids = node.wait_workers(2)
        node.wait_healthy()
        assert 'supervisor (pid {}): 2 workers'.format(node.pid) in node.log()
        for pid in pids.values():
            with open('/proc/{}/cmdline'.format(pid), 'rb') as f:
                assert f.read().split(b'\0')[1] == str(release / 'wsgi.py').encode()
    finally:
        code = node.stop()
    assert code == 0
    assert not any(map(pid_alive, pids.values()))


def test_how_workers_share_the_port_on_each_os():
    assert supervisor.sharing_mode(platform='win32') == 'single'
    assert supervisor.sharing_mode(platform='linux', reuseport=True) == 'reuseport'
    # macOS and the BSDs bind several SO_REUSEPORT sockets but do not spread connections.
    assert supervisor.sharing_mode(platform='darwin', reuseport=True) == 'inherit'
    assert supervisor.sharing_mode(platform='linux', reuseport=False) == 'inherit'


def test_windows_start_logs_that_it_serves_alone(app, monkeypatch, caplog):
    app.config['WORKERS'] = 3
    monkeypatch.setattr(supervisor, 'sharing_mode', lambda: 'single')
    with caplog.at_level(logging.WARNING, logger='imchat'):
        assert supervisor.prepare(app) is None
    assert 'IMCHAT_WORKERS=3: several worker processes are not supported' in caplog.text
    assert 'serving with one process' in caplog.text


def test_workers_0_means_one_per_core_and_a_negative_count_is_refused():
    assert supervisor.worker_count({'WORKERS': 0}) == (os.cpu_count() or 1)
    assert supervisor.worker_count({'WORKERS': 1}) == 1
    with pytest.raises(ValueError, match='IMCHAT_WORKERS=-1'):
        supervisor.worker_count({'WORKERS': -1})


def test_the_logged_address_brackets_an_ipv6_host():
    assert listen_url(('::1', 8080, 0, 0)) == 'http://[::1]:8080'
    assert listen_url(('127.0.0.1', 5000)) == 'http://127.0.0.1:5000'
