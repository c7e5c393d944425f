"""Several processes on one machine: what the bus costs and what a second core buys.

Two phases, each on a fresh database, with chat_bench's load generators (bench/loadgen.c,
built with the system's cc, or bench/loadgen.py with `--load python`; in processes of
their own) as the clients:

  latency   two nodes (`python wsgi.py` twice, each on its own port, one database, one
            Redis bus: what two workers are). P "local" pairs have sender and recipient
            on node A; P "cross" pairs have the sender on A and the recipient on B. Both
            kinds run at the same time, so they see the same load; each sender keeps at
            most W messages unacknowledged. It prints the send-to-delivery latency of
            each kind and what crossing the bus adds.
  workers   one process (IMCHAT_BUS=none) against IMCHAT_WORKERS=2 with the Redis bus,
            on one port: P pairs, each sender keeping W messages unacknowledged or
            undelivered; the kernel puts each connection on either worker, so about half
            of the pairs cross. It prints messages/s, latency and the server's CPU (all
            its processes) for each.

Latency is measured on the machine's monotonic clock, shared by every process: each
message carries its send time. The run exits 1 when a message is lost or doubled.

    .venv/bin/python bench/multinode_bench.py                          # SQLite
    .venv/bin/python bench/multinode_bench.py --mysql mysql://root@127.0.0.1:3306
    .venv/bin/python bench/multinode_bench.py --only latency --pairs 50 --window 1
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

# The load-generator pool, its histogram and a free port, as the single-node bench has them.
from chat_bench import CONTACTS_AT_ONCE, Workers, build_loadgen, free_port, percentile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
LOADGEN = os.path.join(ROOT, 'bench', 'loadgen.py')
CLK_TCK = os.sysconf('SC_CLK_TCK')


def process_tree_cpu(pid):
    """CPU seconds used so far by `pid` and its living descendants."""
    total = 0.0
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        with open('/proc/{0}/task/{0}/children'.format(pid)) as f:
            children = [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return total
    return total + sum(process_tree_cpu(child) for child in children)


class Database:
    """A fresh SQLite file or MySQL database for one phase, dropped afterwards."""

    def __init__(self, args, folder):
        self.mysql = args.mysql
        if not self.mysql:
            self.url = 'sqlite:///' + os.path.join(folder, 'bench.db')
            self.name = None
            return
        self.name = 'imchat_multinode_{}'.format(uuid.uuid4().hex[:10])
        self.url = '{}/{}'.format(self.mysql.rstrip('/'), self.name)

    def drop(self):
        if not self.name:
            return
        import pymysql
        parts = urllib.parse.urlsplit(self.mysql)
        con = pymysql.connect(host=parts.hostname or '127.0.0.1', port=parts.port or 3306,
                              user=parts.username or 'root', password=parts.password or '')
        try:
            con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(self.name))
        finally:
            con.close()


class Server:
    """`python wsgi.py` with the given settings, logging to a file in `folder`."""

    def __init__(self, folder, database_url, **settings):
        self.port = free_port()
        self.base = 'http://127.0.0.1:{}'.format(self.port)
        self.ws = 'ws://127.0.0.1:{}/chat'.format(self.port)
        os.makedirs(folder, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith('IMCHAT_')}
        env.update(IMCHAT_PORT=str(self.port), IMCHAT_HOST='127.0.0.1',
                   IMCHAT_DATABASE_URL=database_url, IMCHAT_PASSWD_COST='4',
                   IMCHAT_LOGIN_ATTEMPTS='0', IMCHAT_LOG_LEVEL='WARNING',
                   IMCHAT_ACCESS_LOG='0', IMCHAT_WS_RATE='0',
                   IMCHAT_UPLOAD_DIR=os.path.join(folder, 'mnt'))
        # The abuse limits are for strangers, not for a benchmark's own clients.
        env.update(IMCHAT_WS_HANDSHAKES='0', IMCHAT_CONNECT_RATE='0',
                   IMCHAT_CONNECTIONS_PER_ADDRESS='0', IMCHAT_REGISTER_RATE='0',
                   IMCHAT_LOGIN_RATE='0', **CONTACTS_AT_ONCE)
        env.update({k: str(v) for k, v in settings.items()})
        self.log_path = os.path.join(folder, 'server.log')
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen([PYTHON, os.path.join(ROOT, 'wsgi.py')],
                                            cwd=folder, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('the server exited:\n' + self.log_tail())
            try:
                urllib.request.urlopen(self.base + '/healthz', timeout=2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError('the server did not answer:\n' + self.log_tail())

    def log_tail(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()[-3000:]

    def call(self, path, token=None, **fields):
        request = urllib.request.Request(self.base + path,
                                         urllib.parse.urlencode(fields).encode())
        if token:
            request.add_header('Authorization', 'Bearer ' + token)
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        if body.get('code') != 0:
            raise RuntimeError('{} failed: {}'.format(path, body))
        return body['data']

    def pairs(self, count, tag):
        """`count` pairs of friends: [(sender, recipient)] as {uid, token}."""
        out = []
        for i in range(count):
            a, b = [self.call('/user/register', mobile='1{}{:02d}{:07d}'.format(tag, side, i),
                              passwd='bench-pass') for side in (0, 1)]
            self.call('/contact/addfriend', a['token'], dstid=b['id'])
            out.append(({'uid': a['id'], 'token': a['token']},
                        {'uid': b['id'], 'token': b['token']}))
        return out

    def cpu(self):
        return process_tree_cpu(self.process.pid)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def sender_job(url, pairs, messages, window):
    return {'kind': 'chat', 'url': url, 'window': window,
            'conns': [a for a, _ in pairs],
            'senders': [{'conn': i, 'dstid': b['uid'], 'cmd': 10, 'count': messages,
                         'local': []} for i, (_, b) in enumerate(pairs)],
            'expect': {}}


def recipient_job(url, pairs, messages):
    return {'kind': 'chat', 'url': url, 'conns': [b for _, b in pairs], 'senders': [],
            'expect': {str(i): {str(a['uid']): messages} for i, (a, _) in enumerate(pairs)}}


def pair_job(url, pairs, messages, window):
    """Senders and their recipients in one process: a message is done once acknowledged
    and delivered."""
    conns, senders, expect = [], [], {}
    for a, b in pairs:
        conns += [a, b]
        ia, ib = len(conns) - 2, len(conns) - 1
        senders.append({'conn': ia, 'dstid': b['uid'], 'cmd': 10, 'count': messages,
                        'local': [ib]})
        expect[str(ib)] = {str(a['uid']): messages}
    return {'kind': 'chat', 'url': url, 'window': window, 'conns': conns,
            'senders': senders, 'expect': expect}


def run(jobs, server_cpu, time_limit):
    """Run the jobs at once; return their results and the servers' CPU seconds."""
    loads = Workers(jobs)
    try:
        loads.expect('ready', 300)
        cpu0 = server_cpu()
        loads.say('go')
        results = loads.expect('result', time_limit)
        cpu = server_cpu() - cpu0
    finally:
        loads.close()
    return results, cpu


def summarize(results):
    hist = {}
    for result in results:
        for bucket, n in result['hist'].items():
            hist[int(bucket)] = hist.get(int(bucket), 0) + n
    start = min(r['start'] for r in results)
    end = max(r['end'] for r in results)
    return {'hist': hist, 'seconds': max(end - start, 1e-6),
            'acked': sum(r['acked'] for r in results),
            'delivered': sum(r['delivered'] for r in results),
            'lost': sum(r['expected'] - r['delivered'] for r in results),
            'duplicates': sum(r['duplicates'] for r in results),
            'out_of_order': sum(r['out_of_order'] for r in results),
            'refused': sum(r['refused'] for r in results)}


def latency_phase(args, folder):
    database = Database(args, folder)
    bus = '{}?prefix=bench-{}'.format(args.redis, uuid.uuid4().hex[:8])
    a = Server(os.path.join(folder, 'node-a'), database.url, IMCHAT_BUS=bus,
               IMCHAT_NODE_ID='a')
    b = Server(os.path.join(folder, 'node-b'), database.url, IMCHAT_BUS=bus,
               IMCHAT_NODE_ID='b')
    try:
        local = a.pairs(args.pairs, 1)
        cross = a.pairs(args.pairs, 2)
        jobs = [sender_job(a.ws, local, args.messages, args.window),
                recipient_job(a.ws, local, args.messages),
                sender_job(a.ws, cross, args.messages, args.window),
                recipient_job(b.ws, cross, args.messages)]
        results, cpu = run(jobs, lambda: a.cpu() + b.cpu(), args.time_limit)
    finally:
        a.stop()
        b.stop()
        database.drop()
    senders = summarize([results[0], results[2]])
    local_s, cross_s = summarize([results[1]]), summarize([results[3]])
    rows = []
    for name, s in (('local (A to A)', local_s), ('cross-node (A to B)', cross_s)):
        rows.append({'kind': name, 'deliveries': s['delivered'],
                     'p50_ms': percentile(s['hist'], 0.5),
                     'p99_ms': percentile(s['hist'], 0.99), 'lost': s['lost'],
                     'duplicates': s['duplicates'], 'out_of_order': s['out_of_order']})
    print('\nlatency: {} local and {} cross-node pairs x {} messages, window {}, at once; '
          '{:,.0f} messages/s in all, both servers {:.0f}% of a core'.format(
              args.pairs, args.pairs, args.messages, args.window,
              senders['acked'] / senders['seconds'], 100 * cpu / senders['seconds']))
    print('{:<22} {:>10} {:>9} {:>9} {:>5} {:>8} {:>12}'.format(
        'delivery', 'deliveries', 'p50 ms', 'p99 ms', 'lost', 'doubled', 'out of order'))
    for row in rows:
        print('{kind:<22} {deliveries:>10,} {p50_ms:>9.2f} {p99_ms:>9.2f} {lost:>5} '
              '{duplicates:>8} {out_of_order:>12}'.format(**row))
    print('the bus adds {:+.2f} ms at p50, {:+.2f} ms at p99'.format(
        rows[1]['p50_ms'] - rows[0]['p50_ms'], rows[1]['p99_ms'] - rows[0]['p99_ms']))
    return rows


def workers_phase(args, folder):
    rows = []
    bus = '{}?prefix=bench-{}'.format(args.redis, uuid.uuid4().hex[:8])
    for name, settings in (('1 process', {}),
                           ('IMCHAT_WORKERS=2, redis', {'IMCHAT_WORKERS': 2,
                                                        'IMCHAT_BUS': bus})):
        run_folder = os.path.join(folder, 'workers-{}'.format(len(rows)))
        database = Database(args, run_folder)
        os.makedirs(run_folder, exist_ok=True)
        server = Server(run_folder, database.url, **settings)
        try:
            pairs = server.pairs(args.pairs * 2, 3 + len(rows))
            half = len(pairs) // 2
            jobs = [pair_job(server.ws, pairs[:half], args.messages, args.window),
                    pair_job(server.ws, pairs[half:], args.messages, args.window)]
            results, cpu = run(jobs, server.cpu, args.time_limit)
        finally:
            server.stop()
            database.drop()
        s = summarize(results)
        rows.append({'setup': name, 'messages_s': s['acked'] / s['seconds'],
                     'p50_ms': percentile(s['hist'], 0.5),
                     'p99_ms': percentile(s['hist'], 0.99),
                     'cpu_pct': 100 * cpu / s['seconds'], 'lost': s['lost'],
                     'duplicates': s['duplicates'], 'out_of_order': s['out_of_order']})
    print('\nworkers: {} pairs x {} messages, window {} (clients share the cores)'.format(
        args.pairs * 2, args.messages, args.window))
    print('{:<26} {:>11} {:>9} {:>9} {:>10} {:>5} {:>8} {:>12}'.format(
        'server', 'messages/s', 'p50 ms', 'p99 ms', 'server CPU', 'lost', 'doubled',
        'out of order'))
    for row in rows:
        print('{setup:<26} {messages_s:>11,.0f} {p50_ms:>9.2f} {p99_ms:>9.2f} '
              '{cpu_pct:>9.0f}% {lost:>5} {duplicates:>8} {out_of_order:>12}'.format(**row))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mysql', help='a MySQL server URL (mysql://user:pass@host:port); '
                        'default: SQLite')
    parser.add_argument('--redis', default='redis://127.0.0.1:6379/0')
    parser.add_argument('--only', choices=('latency', 'workers'))
    parser.add_argument('--pairs', type=int, default=25,
                        help='pairs of each kind (latency) or half the pairs (workers)')
    parser.add_argument('--messages', type=int, default=200)
    parser.add_argument('--window', type=int, default=2)
    parser.add_argument('--time-limit', type=int, default=600)
    parser.add_argument('--load', choices=('auto', 'c', 'python'), default='auto',
                        help='the load generator: bench/loadgen.c (auto: when there is a '
                             'C compiler) or bench/loadgen.py')
    args = parser.parse_args()
    if not os.path.exists(LOADGEN):
        sys.exit('bench/loadgen.py is missing (the load generator of bench/chat_bench.py)')
    Workers.command = build_loadgen(args.load)
    print('load: {}'.format(os.path.basename(Workers.command[-1])))
    folder = tempfile.mkdtemp(prefix='imchat-multinode-')
    failed = False
    try:
        phases = [args.only] if args.only else ['latency', 'workers']
        for phase in phases:
            rows = (latency_phase if phase == 'latency' else workers_phase)(args, folder)
            failed |= any(r['lost'] or r['duplicates'] or r['out_of_order'] for r in rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        print('\nFAILED: a message was lost, doubled or out of order')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
