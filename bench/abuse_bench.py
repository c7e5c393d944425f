"""What abuse costs the people already chatting: a bystander's round trip under load.

Starts imchat (`python wsgi.py`) on a free 127.0.0.1 port with a fresh SQLite database
and the real password cost (IMCHAT_PASSWD_COST=14), connects a pair of friends, and
measures the time from a message's send to its acknowledgement, one at a time, while:

  1. quiet: nothing else happens;
  2. registrations: R registrations a second (each a scrypt hash), from loopback so
     that the per-address registration limit does not refuse them;
  3. storm: C clients reconnect to /chat in a tight loop (tests/storm.py).

It prints p50 / p99 / max of the bystander's round trip and how many messages went
through in each phase (and a minute's worth: acks a minute), and for the storm how many
handshakes were accepted (101) or refused at the door (503). With `--commits` each
commit named is checked out (`git worktree add`, as bench/chat_bench.py does) and run
in turn, and the storm's acks a minute are compared with the quiet phase's of the same
commit. Run from the repository root:

    .venv/bin/python bench/abuse_bench.py [--seconds 8] [--registrations 22]
    .venv/bin/python bench/abuse_bench.py --commits main,. --phases quiet,storm
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402
import websocket  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_bench import CONTACTS_AT_ONCE, ROOT, Server, Tree, free_port  # noqa: E402


class ProductionServer(Server):
    """chat_bench's server, but with the real password cost and the real limits."""

    def __init__(self, database_url, folder, tree_path=ROOT):
        self.port = free_port()
        self.log = open(os.path.join(folder, 'server.log'), 'w+')
        self.tmp = folder
        self.dbname = None
        self.base = 'http://127.0.0.1:{}'.format(self.port)
        env = dict(os.environ, IMCHAT_PORT=str(self.port), IMCHAT_HOST='127.0.0.1',
                   IMCHAT_DATABASE_URL=database_url, IMCHAT_PASSWD_COST='14',
                   IMCHAT_UPLOAD_DIR=os.path.join(folder, 'mnt'), IMCHAT_LOG_LEVEL='WARNING',
                   IMCHAT_ACCESS_LOG='0', IMCHAT_WS_RATE='0', **CONTACTS_AT_ONCE)
        self.process = subprocess.Popen([sys.executable, os.path.join(tree_path, 'wsgi.py')],
                                        env=env, cwd=tree_path, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + '/healthz', timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('server did not start')

_mobiles = itertools.count(16000000000)


def register(server):
    data = server.call('/user/register', mobile=str(next(_mobiles)), passwd='bench-pass')
    return data['id'], data['token']


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else float('nan')


def connect(server, user):
    user_id, token = user
    return websocket.create_connection('ws://127.0.0.1:{}/chat?id={}&token={}'.format(
        server.port, user_id, token), timeout=120)


def bystander(ws, dstid, seconds):
    """Round trips (seconds) of messages sent one at a time on `ws` for `seconds`."""
    trips = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        ws.send(json.dumps({'id': len(trips) + 1, 'cmd': 10, 'dstid': dstid, 'media': 1,
                            'content': 'ping'}))
        while json.loads(ws.recv()).get('cmd') != 1:
            pass
        trips.append(time.monotonic() - started)
    return trips


def report(label, name, trips, seconds, extra=''):
    print('{:<16} {:<14} {:>5} messages ({:>6.0f} acks a minute)  round trip ms p50 {:7.1f} '
          'p99 {:7.1f} max {:7.1f}  {}'.format(
              label, name, len(trips), len(trips) * 60 / seconds, percentile(trips, .5) * 1000,
              percentile(trips, .99) * 1000, max(trips or [0]) * 1000, extra), flush=True)
    return len(trips) * 60 / seconds


def run(tree, args):
    """The phases against one checkout; returns {phase: acks a minute}."""
    folder = tempfile.mkdtemp(prefix='imchat-abuse-bench-')
    server = ProductionServer('sqlite:///{}'.format(os.path.join(folder, 'bench.db')), folder,
                              tree.path)
    rates = {}
    try:
        pair = [register(server), register(server)]
        server.call('/contact/addfriend', pair[0][1], dstid=pair[1][0])
        # Connected before any load, as the people already chatting are.
        ws, dstid = connect(server, pair[0]), pair[1][0]
        if 'quiet' in args.phases:
            rates['quiet'] = report(tree.label, 'quiet', bystander(ws, dstid, args.seconds),
                                    args.seconds)

        if 'registrations' in args.phases:
            stop = []

            def register_steadily():
                while not stop:
                    gevent.spawn(register, server)
                    gevent.sleep(1.0 / args.registrations)
            load = gevent.spawn(register_steadily)
            rates['registrations'] = report(
                tree.label, 'registrations', bystander(ws, dstid, args.seconds), args.seconds,
                '{} a second'.format(args.registrations))
            stop.append(True)
            load.join()

        if 'storm' in args.phases:
            users_file = os.path.join(folder, 'storm-users.json')
            with open(users_file, 'w') as f:
                json.dump([register(server) for _ in range(args.storm_users)], f)
            storm = subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'storm.py'),
                                      str(server.port), str(args.seconds + 1), users_file],
                                     stdout=subprocess.PIPE, cwd=ROOT)
            gevent.sleep(1)
            trips = bystander(ws, dstid, args.seconds)
            out, _ = storm.communicate(timeout=300)
            rates['storm'] = report(tree.label, 'storm', trips, args.seconds,
                                    'handshakes {}'.format(out.decode().strip()))
        ws.close()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=8)
    parser.add_argument('--registrations', type=int, default=22, help='a second')
    parser.add_argument('--storm-users', type=int, default=20)
    parser.add_argument('--phases', default='quiet,registrations,storm')
    parser.add_argument('--commits', default='.',
                        help='comma-separated commits to compare; "." is this work tree '
                             '(default: %(default)s)')
    args = parser.parse_args()
    args.phases = [p.strip() for p in args.phases.split(',')]
    results = []
    for ref in [c.strip() for c in args.commits.split(',') if c.strip()]:
        tree = Tree(ref)
        try:
            results.append((tree.label, run(tree, args)))
        finally:
            tree.remove()
    print()
    for label, rates in results:
        if rates.get('quiet') and 'storm' in rates:
            print('{:<16} storm: {:.0f} acks a minute, {:.2f} of quiet ({:.0f})'.format(
                label, rates['storm'], rates['storm'] / rates['quiet'], rates['quiet']))


if __name__ == '__main__':
    main()
