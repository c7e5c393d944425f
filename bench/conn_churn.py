"""What a closed connection leaves behind: the server's memory over many connect/close
cycles.

Starts imchat (`python wsgi.py`) on a free 127.0.0.1 port with a fresh database,
registers U users (friends in a ring) and then, C times, opens a WebSocket for one of
them (with `since`, so it catches up), sends a message to a friend, reads its ack, and
closes: half politely, half by dropping the TCP connection (an RST), some reusing a
client port. It prints the server's resident memory (VmRSS) every C/10 cycles. A
server that keeps nothing of closed connections levels off once its caches are warm;
one that leaks grows in proportion to the cycles.

    .venv/bin/python bench/conn_churn.py                 # SQLite, 20,000 cycles
    .venv/bin/python bench/conn_churn.py --cycles 50000 --mysql mysql://root@127.0.0.1:3306/imchat_churn
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import websocket  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_bench import Server  # noqa: E402


def rss_kib(pid):
    with open('/proc/{}/status'.format(pid)) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def cycle(server, user, friend_id, n, reuse_port):
    sock = None
    if reuse_port:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', reuse_port))
        sock.connect(('127.0.0.1', server.port))
    ws = websocket.create_connection(
        'ws://127.0.0.1:{}/chat?id={}&token={}&since={}'.format(
            server.port, user['id'], user['token'], user['since']),
        timeout=30, socket=sock)
    ws.send(json.dumps({'id': n, 'cmd': 10, 'dstid': friend_id, 'media': 1,
                        'content': 'churn {}'.format(n)}))
    while True:
        frame = json.loads(ws.recv())
        if frame.get('msgid'):
            user['since'] = max(user['since'], frame['msgid'])
        if frame.get('cmd') == 1 and frame.get('id') == n:
            break
    if n % 2:
        ws.close(timeout=1)
    else:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        ws.sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cycles', type=int, default=20000)
    parser.add_argument('--users', type=int, default=50)
    parser.add_argument('--concurrency', type=int, default=10)
    parser.add_argument('--mysql', help='a MySQL URL (the database is dropped first)')
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix='imchat-churn-')
    if args.mysql:
        import pymysql
        from urllib.parse import urlsplit
        parts = urlsplit(args.mysql)
        con = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                              user=parts.username or 'root', password=parts.password or '')
        con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(parts.path.lstrip('/')))
        con.close()
        url = args.mysql
    else:
        url = 'sqlite:///{}/churn.db'.format(tmp)
    server = Server(url)
    try:
        users = []
        for n in range(args.users):
            data = server.call('/user/register', mobile=str(15000000000 + n), passwd='secret-pass')
            data['since'] = 0
            users.append(data)
        for n, user in enumerate(users):
            server.call('/contact/addfriend', user['token'], dstid=users[(n + 1) % len(users)]['id'])
        print('cycles  server RSS (MiB)')
        print('{:>6}  {:.1f}'.format(0, rss_kib(server.process.pid) / 1024))
        done = 0
        step = max(1, args.cycles // 10)
        started = time.monotonic()

        def worker(w):
            nonlocal done
            reuse_port = None
            with socket.socket() as probe:
                probe.bind(('127.0.0.1', 0))
                reuse_port = probe.getsockname()[1]
            n = w
            while n < args.cycles:
                user = users[n % len(users)]
                friend = users[(n % len(users) + 1) % len(users)]
                cycle(server, user, friend['id'], n, reuse_port if n % 10 == 0 else None)
                done += 1
                if done % step == 0:
                    print('{:>6}  {:.1f}'.format(done, rss_kib(server.process.pid) / 1024),
                          flush=True)
                n += args.concurrency
        gevent.joinall([gevent.spawn(worker, w) for w in range(args.concurrency)],
                       raise_error=True)
        elapsed = time.monotonic() - started
        gevent.sleep(2)
        print('after 2 s idle: {:.1f} MiB; {:.0f} cycles/s'.format(
            rss_kib(server.process.pid) / 1024, args.cycles / elapsed))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
