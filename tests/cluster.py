"""Several real imchat processes (nodes) on one database, joined by a bus, for the
scale-out tests; and small real relays (TCP for Redis, UDP) that a test can stall."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gevent
from gevent.event import Event

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# IMCHAT_BUS_SECRET of every node a test starts (a udp bus needs one).
BUS_SECRET = 'test-bus-secret-of-at-least-32-bytes!'


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def http(url, data=None, headers=None, timeout=10):
    """(status, parsed JSON or text); error statuses are answers too."""
    body = None if data is None else urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, body, headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode('utf-8', 'replace')


def wait_for(condition, seconds=20, what='the condition'):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError('{} did not hold within {}s'.format(what, seconds))


class Node:
    def __init__(self, name, database_url, bus, log_dir, **settings):
        self.name = name
        self.bus = bus
        self.port = free_port()
        self.url = 'http://127.0.0.1:{}'.format(self.port)
        env = {k: v for k, v in os.environ.items() if not k.startswith('IMCHAT_')}
        env.update(IMCHAT_DATABASE_URL=database_url, IMCHAT_PORT=str(self.port),
                   IMCHAT_BUS=bus, IMCHAT_NODE_ID=name, IMCHAT_PASSWD_COST='4',
                   IMCHAT_LOG_LEVEL='INFO', IMCHAT_ACCESS_LOG='0',
                   IMCHAT_UPLOAD_DIR=os.path.join(log_dir, 'mnt'), IMCHAT_WS_RATE='0',
                   IMCHAT_BUS_SECRET=BUS_SECRET,
                   # The bus tests join communities at once (issue 22's rules have theirs).
                   IMCHAT_DEFAULT_JOINMODE='open')
        env.update({'IMCHAT_' + k: str(v) for k, v in settings.items()})
        self.log_path = os.path.join(log_dir, name + '.log')
        self.log = open(self.log_path, 'wb')
        self.process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'wsgi.py')],
                                        cwd=log_dir, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, seconds=40):
        def ready():
            assert self.process.poll() is None, 'node {} exited:\n{}'.format(
                self.name, self.read_log())
            try:
                return http(self.url + '/healthz', timeout=2)[0] == 200
            except OSError:
                return False
        wait_for(ready, seconds, 'node {} answering'.format(self.name))
        return self

    def health(self):
        return http(self.url + '/healthz')[1]['data']

    def read_log(self):
        with open(self.log_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def metric(self, name, **labels):
        status, text = http(self.url + '/metrics')
        labels['node'] = self.name
        label_text = ','.join('{}="{}"'.format(k, v) for k, v in sorted(labels.items()))
        match = re.search(r'^{}\{{{}\}} (\d+)$'.format(name, re.escape(label_text)),
                          text, re.M)
        if not match and len(labels) > 1:
            return 0  # a labelled series appears once counted
        assert match, text
        return int(match.group(1))

    def ws_url(self, account, **params):
        query = {'id': account['id'], 'token': account['token']}
        query.update(params)
        return 'ws://127.0.0.1:{}/chat?{}'.format(self.port, urllib.parse.urlencode(query))

    def post(self, path, data=None, account=None):
        headers = {'Authorization': 'Bearer ' + account['token']} if account else {}
        return http(self.url + path, data or {}, headers)

    def register(self, mobile):
        status, reply = self.post('/user/register', {'mobile': mobile, 'passwd': 'secret-pass'})
        assert status == 200, reply
        return reply['data']

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()

    def kill(self):
        self.stop(signal.SIGKILL)


class RedisServer:
    """A redis-server of the test's own on a free port, so it may be stopped."""

    def __init__(self, directory):
        self.port = free_port()
        self.directory = directory
        self.process = None
        self.start()

    @property
    def url(self):
        return 'redis://127.0.0.1:{}/0'.format(self.port)

    def start(self):
        self.process = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--dir', self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers():
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=1) as sock:
                    sock.sendall(b'PING\r\n')
                    return sock.recv(16).startswith(b'+PONG')
            except OSError:
                return False
        wait_for(answers, 10, 'redis-server answering')

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class TcpRelay:
    """Forwards 127.0.0.1:port to a target; `pause()` holds what clients send."""

    def __init__(self, target_port):
        self.target = ('127.0.0.1', target_port)
        self.running = Event()
        self.running.set()
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(50)
        self.port = self.listener.getsockname()[1]
        self.greenlets = [gevent.spawn(self._accept)]

    def pause(self):
        self.running.clear()

    def resume(self):
        self.running.set()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target)
            self.greenlets.append(gevent.spawn(self._pump, client, upstream, True))
            self.greenlets.append(gevent.spawn(self._pump, upstream, client, False))

    def _pump(self, source, sink, from_client):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client:
                    self.running.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self):
        gevent.killall(self.greenlets, block=False)
        self.listener.close()


class UdpRelay:
    """Forwards datagrams to a target port; `drop` loses them all."""

    def __init__(self, target_port):
        self.target = ('127.0.0.1', target_port)
        self.drop = False
        self.dropped = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            data, _ = self.sock.recvfrom(65536)
            if self.drop and b'"e":[]' not in data:  # keep the hellos: the peer is alive
                self.dropped += 1
                continue
            self.out.sendto(data, self.target)

    def close(self):
        self.greenlet.kill(block=False)
        self.sock.close()
        self.out.close()
