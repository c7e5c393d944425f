"""Soak: the server's resident memory, minute by minute, under a steady load.

Starts `python wsgi.py` from this tree on a fresh database (MariaDB by default, or
SQLite), registers --users users in pairs of friends, connects each over a WebSocket,
and has every pair's first user send a text every --interval seconds (each waits for
its ack) for --minutes minutes (10 by default). Prints the server's RSS once a minute,
then the growth per minute over the run (from the first minute's figure: the first
minute includes warming up). Memory is flat when that growth is near zero; before the
writer stopped Pony's per-SQL statistics (model.entities.StatlessDatabase) it grew by
about 6 MB a minute on MariaDB with 200 users.

    .venv/bin/python bench/soak.py                    # MariaDB, 200 users, 10 minutes
    .venv/bin/python bench/soak.py --db sqlite --minutes 3
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pymysql
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def rss_mb(pid):
    with open('/proc/{}/status'.format(pid)) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def post(base, path, data, token=None):
    headers = {'Authorization': 'Bearer ' + token} if token else {}
    request = urllib.request.Request(base + path, urllib.parse.urlencode(data).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())['data']


def connect(url):
    """A WebSocket, honouring the server's Retry-After while it is busy with others."""
    while True:
        try:
            return websocket.create_connection(url, timeout=30)
        except websocket.WebSocketBadStatusException as error:
            if error.status_code != 503:
                raise
            time.sleep(1)


def sender(ws, dstid, interval, stop, counts):
    n = 0
    while not stop.is_set():
        n += 1
        ws.send(json.dumps({'id': n, 'cmd': 10, 'dstid': dstid, 'media': 1,
                            'content': 'soak {} {}'.format(n, uuid.uuid4().hex)}))
        while json.loads(ws.recv()).get('cmd') != 1:
            pass
        counts[0] += 1
        stop.wait(interval)
    ws.close()


def reader(ws, stop):
    ws.settimeout(5)
    while not stop.is_set():
        try:
            ws.recv()
        except websocket.WebSocketTimeoutException:
            pass
    ws.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--db', choices=('mysql', 'sqlite'), default='mysql')
    parser.add_argument('--mysql', default='root@127.0.0.1:3306')
    parser.add_argument('--users', type=int, default=200)
    parser.add_argument('--interval', type=float, default=0.2,
                        help='seconds between a sender\'s messages')
    parser.add_argument('--minutes', type=int, default=10)
    args = parser.parse_args()

    folder = '/tmp/imchat-soak-' + uuid.uuid4().hex[:8]
    os.makedirs(folder)
    name = 'imchat_soak_' + uuid.uuid4().hex[:8]
    url = ('mysql://{}/{}'.format(args.mysql, name) if args.db == 'mysql'
           else 'sqlite:///{}/imchat.db'.format(folder))
    port = free_port()
    env = dict(os.environ, IMCHAT_PORT=str(port), IMCHAT_DATABASE_URL=url,
               IMCHAT_UPLOAD_DIR=folder + '/mnt', IMCHAT_PASSWD_COST='4',
               IMCHAT_LOG_LEVEL='WARNING', IMCHAT_WS_RATE='0')
    log = open(folder + '/server.log', 'wb')
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, 'wsgi.py')], cwd=folder,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = 'http://127.0.0.1:{}'.format(port)
    stop = threading.Event()
    threads = []
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + '/healthz', timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        first = 13000000000 + uuid.uuid4().int % 900000000
        users = [post(base, '/user/register', {'mobile': str(first + i), 'passwd': 'secret-pass'})
                 for i in range(args.users - args.users % 2)]
        counts = [0]
        for a, b in zip(users[::2], users[1::2]):
            post(base, '/contact/addfriend', {'dstid': b['id']}, a['token'])
            ws_url = 'ws://127.0.0.1:{}/chat?id={}&token={}'.format
            threads.append(threading.Thread(target=reader, daemon=True,
                                            args=(connect(ws_url(port, b['id'], b['token'])), stop)))
            threads.append(threading.Thread(target=sender, daemon=True, args=(
                connect(ws_url(port, a['id'], a['token'])), b['id'], args.interval, stop,
                counts)))
        for thread in threads:
            thread.start()
        print('db={} users={} interval={}s: RSS of the server each minute'.format(
            args.db, len(users), args.interval), flush=True)
        figures = []
        for minute in range(1, args.minutes + 1):
            time.sleep(60)
            figures.append(rss_mb(server.pid))
            print('minute {:3d}: RSS {:7.1f} MB, {} messages acked so far'.format(
                minute, figures[-1], counts[0]), flush=True)
        if len(figures) > 1:
            print('growth after the first minute: {:.2f} MB a minute'.format(
                (figures[-1] - figures[0]) / (len(figures) - 1)))
    finally:
        stop.set()
        server.terminate()
        server.wait(30)
        if args.db == 'mysql':
            host, _, port_text = args.mysql.split('@')[-1].partition(':')
            con = pymysql.connect(host=host, port=int(port_text or 3306), user='root')
            con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(name))
            con.close()


if __name__ == '__main__':
    main()
