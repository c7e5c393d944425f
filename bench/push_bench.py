"""What Web Push costs the sender of a group message (issue 21, docs/push.md).

One `python wsgi.py` (this working tree, SQLite or MariaDB) with a community of G
members (default 1,000) and one sender. Two phases, in one run, on the same database:
push off (the server started without IMCHAT_VAPID_SUBJECT) and push on (every member
subscribed to a push service on 127.0.0.1 written here, which answers 201 to every
POST, and no member connected, so each group message means G pushes). In each phase
the sender sends K group texts, one every --interval seconds, and the time from a send
to its acknowledgement is measured. It prints p50/p99/max of both phases and the
pushes the push service received.

    .venv/bin/python bench/push_bench.py                      # 1,000 members, SQLite
    .venv/bin/python bench/push_bench.py --db mysql --members 1000 --messages 100
"""
import argparse
import base64
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PushService:
    """Accepts every push (201) and counts them; decrypting is test_push.py's job.

    In a process of its own: in the bench's process its threads, a thousand requests
    at a merge window's end, held the GIL while the bench's client waited to read an
    acknowledgement, and the wait was counted as the server's."""

    def __init__(self):
        self._count = multiprocessing.Value('q', 0)
        ready = multiprocessing.Queue()
        self.process = multiprocessing.get_context('fork').Process(
            target=_serve_pushes, args=(self._count, ready), daemon=True)
        self.process.start()
        self.port = ready.get(timeout=30)

    @property
    def count(self):
        return self._count.value

    def stop(self):
        self.process.terminate()
        self.process.join(5)


def _serve_pushes(count, ready):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def do_POST(self):
            self.rfile.read(int(self.headers.get('Content-Length') or 0))
            with count.get_lock():
                count.value += 1
            self.send_response(201)
            self.send_header('Content-Length', '0')
            self.end_headers()

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    ready.put(server.server_address[1])
    server.serve_forever()


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, folder, database_url, push_port=None):
        self.port = free_port()
        self.base = 'http://127.0.0.1:{}'.format(self.port)
        env = dict(os.environ, IMCHAT_DATABASE_URL=database_url, IMCHAT_HOST='127.0.0.1',
                   IMCHAT_PORT=str(self.port), IMCHAT_UPLOAD_DIR=os.path.join(folder, 'mnt'),
                   IMCHAT_PASSWD_COST='4', IMCHAT_LOG_LEVEL='WARNING', IMCHAT_WS_RATE='0',
                   IMCHAT_LOGIN_RATE='0', IMCHAT_REGISTER_RATE='0', IMCHAT_LOGIN_ATTEMPTS='100000',
                   IMCHAT_PUSH_ALLOW_PRIVATE='1',
                   # Members join at once (issue 22's default asks the owner first).
                   IMCHAT_DEFAULT_JOINMODE='open', IMCHAT_JOINS_PER_HOUR='0')
        env.pop('IMCHAT_VAPID_SUBJECT', None)
        if push_port is not None:
            env['IMCHAT_VAPID_SUBJECT'] = 'mailto:bench@example.com'
        self.log = open(os.path.join(folder, 'server-{}.log'.format(self.port)), 'ab')
        # The server on core 0 and this process (the sender, and the push service's
        # process) on the others, as bench/chat_bench.py does: on one core the sender's
        # wake-up to read its acknowledgement waited for the server's CPU, which after
        # each group message plans a thousand pushes, and the wait was counted as the
        # server's latency.
        self.proc = subprocess.Popen(['taskset', '-c', '0', sys.executable, 'wsgi.py'],
                                     cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(self.base + '/user/login.shtml', timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError('the server did not start')
                time.sleep(0.2)

    def call(self, path, token=None, body=None, **fields):
        data = json.dumps(body).encode() if body is not None else \
            urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.base + path, data=data)
        if body is not None:
            request.add_header('Content-Type', 'application/json')
        if token:
            request.add_header('Authorization', 'Bearer ' + token)
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.loads(response.read())
        assert reply.get('code') == 0, reply
        return reply['data']

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def setup(server, members, push_port):
    mobiles = iter(range(15000000000, 15999999999))
    owner = server.call('/user/register', mobile=str(next(mobiles)), passwd='bench-pass',
                        nickname='sender')
    group = server.call('/contact/createcommunity', owner['token'], name='bench')
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def member(i):
        user = server.call('/user/register', mobile=str(15100000000 + i), passwd='bench-pass',
                           nickname='m{}'.format(i))
        server.call('/contact/joincommunity', user['token'], dstid=group['id'])
        server.call('/push/subscribe', user['token'], body={'subscription': {
            'endpoint': 'http://127.0.0.1:{}/push/{}'.format(push_port, i),
            'keys': {'p256dh': b64url(key), 'auth': b64url(os.urandom(16))}}})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(member, range(members)))
    return owner, group['id']


def measure(server, owner, group_id, messages, interval):
    ws = websocket.create_connection('ws://127.0.0.1:{}/chat?id={}&token={}&since={}'.format(
        server.port, owner['id'], owner['token'], 10 ** 12), timeout=30)
    took = []
    try:
        for n in range(messages):
            frame_id = uuid.uuid4().hex
            start = time.perf_counter()
            ws.send(json.dumps({'cmd': 11, 'id': frame_id, 'dstid': group_id, 'media': 1,
                                'content': 'bench {}'.format(n)}))
            while True:
                reply = json.loads(ws.recv())
                if reply.get('cmd') == 1 and reply.get('id') == frame_id:
                    break
            took.append(time.perf_counter() - start)
            assert reply.get('code') == 0, reply
            time.sleep(max(0.0, interval - took[-1]))
    finally:
        ws.close()
    return took


def figures(took):
    ordered = sorted(took)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
    return at(0.5), at(0.99), ordered[-1] * 1000


def main():
    if hasattr(os, 'sched_setaffinity') and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, set(os.sched_getaffinity(0)) - {0})
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--db', choices=['sqlite', 'mysql'], default='sqlite')
    parser.add_argument('--members', type=int, default=1000)
    parser.add_argument('--messages', type=int, default=100)
    parser.add_argument('--interval', type=float, default=0.5,
                        help='seconds between two group messages')
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix='push-bench-')
    if args.db == 'sqlite':
        url = 'sqlite:///' + os.path.join(folder, 'imchat.db')
    else:
        url = 'mysql://root@127.0.0.1:3306/imchat_push_bench_' + uuid.uuid4().hex[:8]
    service = PushService()
    try:
        server = Server(folder, url, push_port=service.port)
        print('setting up {} members, each subscribed...'.format(args.members), flush=True)
        owner, group_id = setup(server, args.members, service.port)
        server.stop()
        results = {}
        for phase, push_port in (('push off', None), ('push on', service.port)):
            server = Server(folder, url, push_port=push_port)
            try:
                measure(server, owner, group_id, 5, 0.05)  # warm up
                before = service.count
                results[phase] = figures(measure(server, owner, group_id, args.messages,
                                                 args.interval))
                time.sleep(1)
                results[phase] += (service.count - before,)
            finally:
                server.stop()
        print('{} group messages to {} members (all offline), one every {} s, {}'.format(
            args.messages, args.members, args.interval, args.db))
        print('{:10} {:>9} {:>9} {:>9} {:>14}'.format('', 'ack p50', 'ack p99', 'max',
                                                      'pushes sent'))
        for phase, (p50, p99, top, pushes) in results.items():
            print('{:10} {:7.2f}ms {:7.2f}ms {:7.2f}ms {:>14}'.format(phase, p50, p99, top,
                                                                    pushes))
    finally:
        service.stop()
        if args.db == 'mysql':
            import pymysql
            con = pymysql.connect(host='127.0.0.1', user='root')
            con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(url.rsplit('/', 1)[1]))
            con.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
