"""Chat throughput and latency over real WebSockets.

Starts imchat (`python wsgi.py`, the production server) in a subprocess on a free
127.0.0.1 port with a fresh database, registers users over HTTP, then drives:

  1. pairs: P pairs of friends, each sender sending M messages to its partner;
  2. group: one community of G members, S of them sending K messages each.

It prints messages/s (acknowledged sends), deliveries/s (frames received by
recipients), latency percentiles (send to delivery, same clock) and lost messages
(expected deliveries that never arrived). Run from the repository root:

    .venv/bin/python bench/chat_bench.py                 # SQLite
    .venv/bin/python bench/chat_bench.py --mysql mysql://root@127.0.0.1:3306/imchat_bench
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402
import websocket  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, database_url):
        self.port = free_port()
        self.base = 'http://127.0.0.1:{}'.format(self.port)
        env = dict(os.environ, IMCHAT_PORT=str(self.port), IMCHAT_HOST='127.0.0.1',
                   IMCHAT_DATABASE_URL=database_url, IMCHAT_PASSWD_COST='4',
                   IMCHAT_LOGIN_ATTEMPTS='100000', IMCHAT_MAX_COMMUNITIES='100',
                   IMCHAT_LOG_LEVEL='WARNING', IMCHAT_WS_QUEUE_SIZE='100000',
                   IMCHAT_WS_RATE='0')
        self.process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'wsgi.py')],
                                        env=env, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + '/user/login', data=b'', timeout=1)
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('server did not start')

    def call(self, path, token=None, **fields):
        request = urllib.request.Request(self.base + path,
                                         data=urllib.parse.urlencode(fields).encode())
        if token:
            request.add_header('Authorization', 'Bearer ' + token)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert body['code'] == 0, body
        return body.get('data')

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class User:
    count = 0

    def __init__(self, server):
        User.count += 1
        data = server.call('/user/register', mobile=str(15000000000 + User.count),
                           passwd='bench-pass')
        self.id, self.token = data['id'], data['token']
        self.server = server
        self.ws = None
        self.latencies = []
        self.received = 0

    def connect(self):
        self.ws = websocket.create_connection(
            'ws://127.0.0.1:{}/chat?id={}&token={}'.format(self.server.port, self.id,
                                                         self.token), timeout=60)

    def receive(self, expected, acks_expected, deadline):
        acks = 0
        while (self.received < expected or acks < acks_expected) and time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = self.ws.recv()
            except (websocket.WebSocketTimeoutException, socket.timeout):
                break
            if not data:
                continue  # a ping's empty payload
            frame = json.loads(data)
            if frame.get('cmd') == 1:
                assert frame['code'] == 0, frame
                acks += 1
                continue
            if frame.get('cmd') not in (10, 11):
                continue  # presence and other conversation events
            self.received += 1
            self.latencies.append(time.time() - float(frame['content']))
        return acks


def send_many(user, cmd, dstid, count, interval):
    for _ in range(count):
        user.ws.send(json.dumps({'id': 1, 'cmd': cmd, 'dstid': dstid, 'media': 1,
                                 'content': repr(time.time())}))
        if interval:
            gevent.sleep(interval)


def percentile(values, fraction):
    if not values:
        return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))]


def report(name, sends, expected, users, elapsed):
    delivered = sum(u.received for u in users)
    latencies = [x for u in users for x in u.latencies]
    print('{:<6} {:>7} sent {:>8} delivered in {:6.2f}s  {:>8.0f} msgs/s {:>9.0f} deliveries/s  '
          'latency ms p50 {:6.1f} p90 {:6.1f} p99 {:6.1f} max {:6.1f}  lost {}'.format(
              name, sends, delivered, elapsed, sends / elapsed, delivered / elapsed,
              percentile(latencies, .5) * 1000, percentile(latencies, .9) * 1000,
              percentile(latencies, .99) * 1000, max(latencies or [0]) * 1000,
              expected - delivered))
    return expected - delivered


def run_pairs(server, pairs, per_sender):
    users = [(User(server), User(server)) for _ in range(pairs)]
    for a, b in users:
        server.call('/contact/addfriend', a.token, dstid=b.id)
    for a, b in users:
        a.connect()
        b.connect()
    start = time.monotonic()
    deadline = start + 120
    jobs = []
    for a, b in users:
        jobs.append(gevent.spawn(send_many, a, 10, b.id, per_sender, 0))
        jobs.append(gevent.spawn(a.receive, 0, per_sender, deadline))
        jobs.append(gevent.spawn(b.receive, per_sender, 0, deadline))
    gevent.joinall(jobs, raise_error=True)
    elapsed = time.monotonic() - start
    lost = report('pairs', pairs * per_sender, pairs * per_sender, [b for _, b in users], elapsed)
    for a, b in users:
        a.ws.close()
        b.ws.close()
    return lost


def run_group(server, members, senders, per_sender):
    users = [User(server) for _ in range(members)]
    group = server.call('/contact/createcommunity', users[0].token, name='bench')
    for user in users[1:]:
        server.call('/contact/joincommunity', user.token, dstid=group['id'])
    for user in users:
        user.connect()
    talkers = users[:senders]
    start = time.monotonic()
    deadline = start + 120
    total = senders * per_sender
    jobs = [gevent.spawn(send_many, u, 11, group['id'], per_sender, 0) for u in talkers]
    for user in users:
        # every member gets every message but its own
        own = per_sender if user in talkers else 0
        jobs.append(gevent.spawn(user.receive, total - own, own, deadline))
    gevent.joinall(jobs, raise_error=True)
    elapsed = time.monotonic() - start
    expected = total * (members - 1)
    lost = report('group', total, expected, users, elapsed)
    for user in users:
        user.ws.close()
    return lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--pairs', type=int, default=50)
    parser.add_argument('--per-sender', type=int, default=100)
    parser.add_argument('--group-members', type=int, default=200)
    parser.add_argument('--group-senders', type=int, default=5)
    parser.add_argument('--group-per-sender', type=int, default=40)
    parser.add_argument('--mysql', help='a MySQL URL to use instead of a fresh SQLite file')
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix='imchat-bench-')
    database_url = args.mysql or 'sqlite:///{}/bench.db'.format(folder)
    if args.mysql:
        import pymysql
        parts = urllib.parse.urlsplit(args.mysql)
        con = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                              user=parts.username or 'root', password=parts.password or '',
                              ssl_disabled=True)
        con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(parts.path.lstrip('/')))
        con.close()
    server = Server(database_url)
    print('imchat bench: {} on {}'.format(database_url.split('://')[0], server.base))
    try:
        lost = run_pairs(server, args.pairs, args.per_sender)
        lost += run_group(server, args.group_members, args.group_senders, args.group_per_sender)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print('lost messages: {}'.format(lost))
    sys.exit(1 if lost else 0)


if __name__ == '__main__':
    main()
