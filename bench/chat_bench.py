"""Chat throughput, latency and memory of the production server, commit against commit.

For each commit named (default: the baseline e50eb6f, then this working tree) it checks
the commit out with `git worktree add` into a temporary folder, starts `python wsgi.py`
from there with this repository's .venv, pinned to core 0 (`taskset -c 0`), on a fresh
MariaDB database (or SQLite) with `IMCHAT_WS_RATE=0`, and drives it from load generator
processes pinned to the other cores: bench/loadgen.c, built with the system's C compiler
(`--load c`, the default when there is one: a few µs of CPU a frame), or
bench/loadgen.py (`--load python`: picows on uvloop, several times that):

  pairs  P pairs of friends; each sender sends M texts to its partner, keeping at most
         W of them unacknowledged or undelivered;
  paced  the pairs load sent at a set rate: --rate-factor (6) times the baseline's
         pairs messages/s in this run (or --rate), each message timed from when it
         fell due, for every commit but the baseline: the latency at that rate;
  group  one community of G members, S of them sending K texts each, window W
         (counted over the recipients in the sender's own load process);
  idle   N WebSockets that only answer pings: the server's RSS per connection, opened
         12 at a time by each load process;
  burst  the same N opened all at once (the handshake limits off), its RSS per connection
         once they are open and again --settle seconds (60) later: what a connect burst
         leaves behind.

It prints messages/s, deliveries/s, latency p50/p99 (send to delivery), the server's CPU
use of its core and CPU µs per message, the local MariaDB's CPU (µs a message: what
storing costs the database, which shares the machine) and how busy all cores were
together, the load processes' CPU use of theirs, lost,
duplicated and out-of-order messages, the mean messages a transaction stored (on
commits that count them), RSS per idle connection, and each figure's ratio to the first
commit. It exits 1 when a message is lost or duplicated.

    .venv/bin/python bench/chat_bench.py                       # e50eb6f vs the work tree
    .venv/bin/python bench/chat_bench.py --commits e50eb6f,HEAD --db sqlite
    .venv/bin/python bench/chat_bench.py --only idle --idle-conns 20000   # as root
"""
import argparse
import atexit
import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
LOADGEN = os.path.join(ROOT, 'bench', 'loadgen.py')
LOADGEN_C = os.path.join(ROOT, 'bench', 'loadgen.c')
BASELINE = 'e50eb6f'
BUCKET_US = 50
CLK_TCK = os.sysconf('SC_CLK_TCK')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def cores():
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return available, available
    return available[:1], available[1:]


def proc_cpu(pid):
    with open('/proc/{}/stat'.format(pid)) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy():
    """(busy, total, steal) CPU seconds of the whole machine, from /proc/stat. Steal is
    time a virtual machine's cores wanted and its host gave to others (counted as busy):
    a run with much of it measured a machine slower than usual."""
    with open('/proc/stat') as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return ((sum(fields[:8]) - idle) / CLK_TCK, sum(fields[:8]) / CLK_TCK,
            fields[7] / CLK_TCK)


def database_pid(args):
    """The local MariaDB/MySQL server's pid when the benchmark stores into one."""
    if args.db != 'mysql':
        return None
    host = urllib.parse.urlparse(args.mysql).hostname or '127.0.0.1'
    if host not in ('127.0.0.1', 'localhost', '::1'):
        return None
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/{}/comm'.format(entry)) as f:
                    if f.read().strip() in ('mariadbd', 'mysqld'):
                        return int(entry)
            except OSError:
                continue
    return None


def proc_rss_kb(pid):
    with open('/proc/{}/status'.format(pid)) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


# The benchmark's people befriend and join at once, as before friend requests and join
# rules existed (issue 22): it measures the message path, and an older commit under
# comparison ignores these settings.
CONTACTS_AT_ONCE = {'IMCHAT_FRIEND_REQUESTS': '0', 'IMCHAT_DEFAULT_JOINMODE': 'open',
                    'IMCHAT_JOINS_PER_HOUR': '0'}


class Tree:
    """A checkout of one commit (or this work tree, for '.')."""

    def __init__(self, ref):
        self.ref = ref
        if ref == '.':
            self.path = ROOT
            dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                                   cwd=ROOT, capture_output=True, text=True).stdout.strip()
            head = git('rev-parse', '--short', 'HEAD')
            self.label = head + ('+changes' if dirty else '')
            self.temp = None
            return
        self.temp = tempfile.mkdtemp(prefix='imchat-bench-')
        self.path = os.path.join(self.temp, 'tree')
        subprocess.run(['git', 'worktree', 'add', '--detach', '-q', self.path, ref],
                       cwd=ROOT, check=True)
        self.label = git('rev-parse', '--short', ref)

    def remove(self):
        if self.temp:
            subprocess.run(['git', 'worktree', 'remove', '--force', self.path], cwd=ROOT,
                           capture_output=True)
            shutil.rmtree(self.temp, ignore_errors=True)


def git(*args):
    return subprocess.run(['git'] + list(args), cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


class Server:
    counter = 0

    def __init__(self, tree, args, server_cores):
        Server.counter += 1
        self.args = args
        self.port = free_port()
        self.base = 'http://127.0.0.1:{}'.format(self.port)
        self.tmp = tempfile.mkdtemp(prefix='imchat-bench-run-')
        if args.db == 'sqlite':
            url = 'sqlite:///' + os.path.join(self.tmp, 'bench.db')
            self.dbname = None
        else:
            self.dbname = 'imchat_bench_{}_{}'.format(os.getpid(), Server.counter)
            url = '{}/{}'.format(args.mysql.rstrip('/'), self.dbname)
        env = dict(os.environ, IMCHAT_PORT=str(self.port), IMCHAT_HOST='127.0.0.1',
                   IMCHAT_DATABASE_URL=url, IMCHAT_PASSWD_COST='4',
                   IMCHAT_LOGIN_ATTEMPTS='0', IMCHAT_MAX_COMMUNITIES='100',
                   IMCHAT_LOG_LEVEL='WARNING', IMCHAT_ACCESS_LOG='0', IMCHAT_WS_RATE='0',
                   # Abuse limits that would stop one address opening thousands of
                   # connections (settings a commit does not know are ignored).
                   IMCHAT_LOGIN_RATE='0', IMCHAT_REGISTER_RATE='0', IMCHAT_CONNECT_RATE='0',
                   IMCHAT_CONNECTIONS_PER_ADDRESS='0', IMCHAT_WS_HANDSHAKES='0',
                   IMCHAT_WS_HANDSHAKE_RATE='0',
                   IMCHAT_WS_PER_USER='0',
                   IMCHAT_UPLOAD_DIR=os.path.join(self.tmp, 'mnt'), **CONTACTS_AT_ONCE)
        command = [PYTHON, 'wsgi.py']
        if shutil.which('taskset') and len(os.sched_getaffinity(0)) > 1:
            command = ['taskset', '-c', ','.join(map(str, server_cores))] + command
        self.log = open(os.path.join(self.tmp, 'server.log'), 'w+')
        self.process = subprocess.Popen(command, env=env, cwd=tree.path, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('the server exited: ' + self.log_tail())
            try:
                urllib.request.urlopen(self.base + '/healthz', timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('the server did not start: ' + self.log_tail())

    def log_tail(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def call(self, path, token=None, **fields):
        request = urllib.request.Request(self.base + path,
                                         data=urllib.parse.urlencode(fields).encode())
        if token:
            request.add_header('Authorization', 'Bearer ' + token)
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        if body.get('code') != 0:
            raise RuntimeError('{} failed: {}'.format(path, body))
        return body.get('data')

    def register(self, count, prefix):
        def one(n):
            data = self.call('/user/register', mobile='1{}{:07d}'.format(prefix, n),
                             passwd='bench-pass')
            return {'uid': data['id'], 'token': data['token']}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(count)))

    def parallel(self, calls):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda c: self.call(*c[0], **c[1]), calls))

    def start_profile(self):
        """With --profile DIR: py-spy samples the server during the phase."""
        if not self.args.profile:
            return None
        os.makedirs(self.args.profile, exist_ok=True)
        self.profile_path = os.path.join(self.args.profile, '{}-{}.txt'.format(
            self.label, self.scenario))
        return subprocess.Popen([os.path.join(ROOT, '.venv', 'bin', 'py-spy'), 'record',
                                 '-p', str(self.process.pid), '-f', 'raw', '-r', '250',
                                 '--nonblocking', '-o', self.profile_path],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_profile(self, profiler):
        if profiler is None:
            return
        profiler.send_signal(2)
        profiler.wait(30)
        print('  profile: {} (top self time below)'.format(self.profile_path))
        print_profile(self.profile_path)

    def cpu(self):
        return proc_cpu(self.process.pid)

    def rss_kb(self):
        return proc_rss_kb(self.process.pid)

    def metric(self, name):
        with urllib.request.urlopen(self.base + '/metrics', timeout=30) as response:
            for line in response.read().decode().splitlines():
                # `name value`, or `name{node="..."} value` on a commit with nodes
                if line.startswith(name + ' ') or line.startswith(name + '{'):
                    return float(line.rsplit(None, 1)[1])
        return None

    def batches(self):
        """(messages stored, transactions that stored them) so far; the second is None
        on a commit that does not count them."""
        return (self.metric('imchat_messages_stored_total'),
                self.metric('imchat_message_batches_total'))

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.dbname:
            drop_database(self.args.mysql, self.dbname)


def print_profile(path, top=25):
    """The functions with the most samples at the top of the stack, and overall."""
    own, total, samples = {}, {}, 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(' ')
            if not stack:
                continue
            count = int(count)
            samples += count
            frames = stack.split(';')
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in set(frames):
                total[frame] = total.get(frame, 0) + count
    for name, table in (('self', own), ('inclusive', total)):
        print('  {} time:'.format(name))
        for frame, count in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print('    {:5.1f}%  {}'.format(100 * count / max(samples, 1), frame[:150]))


def drop_database(mysql_url, name):
    try:
        import pymysql
        parsed = urllib.parse.urlparse(mysql_url)
        conn = pymysql.connect(host=parsed.hostname or '127.0.0.1', port=parsed.port or 3306,
                               user=parsed.username or 'root', password=parsed.password or '')
        with conn.cursor() as cursor:
            cursor.execute('DROP DATABASE IF EXISTS `{}`'.format(name))
        conn.close()
    except Exception as error:  # a leftover database is harmless
        print('could not drop database {}: {}'.format(name, error), file=sys.stderr)


def build_loadgen(choice):
    """The command of a load process: bench/loadgen.c built into a temporary folder
    (`choice` 'c', or 'auto' when there is a C compiler), else bench/loadgen.py."""
    compiler = shutil.which(os.environ.get('CC', 'cc')) or shutil.which('gcc')
    if choice == 'python' or (choice == 'auto' and compiler is None):
        return [PYTHON, LOADGEN]
    if compiler is None:
        sys.exit('--load c: no C compiler (cc or gcc) on the PATH')
    folder = tempfile.mkdtemp(prefix='imchat-loadgen-')
    atexit.register(shutil.rmtree, folder, True)
    binary = os.path.join(folder, 'loadgen')
    subprocess.run([compiler, '-O2', '-Wall', '-o', binary, LOADGEN_C], check=True)
    return [binary]


def job_lines(job):
    """A job as loadgen.c reads it: lines of words (its header comment)."""
    url = urllib.parse.urlparse(job['url'])
    conns = job['conns']
    lines = ['kind ' + job['kind'],
             'target {} {} {}'.format(url.hostname, url.port, url.path),
             'window {}'.format(job.get('window', 10)),
             'concurrency {}'.format(job.get('concurrency', 32)),
             'stall {!r}'.format(float(job.get('stall', 15))),
             'setup {!r}'.format(float(job.get('setup', 60))),
             'conns {}'.format(len(conns))]
    lines += ['{} {}'.format(c['uid'], c['token']) for c in conns]
    senders = job.get('senders', [])
    lines.append('senders {}'.format(len(senders)))
    lines += ['{} {} {} {} {} {!r}'.format(s['conn'], s['dstid'], s['cmd'], s['count'],
                                           len(s['local']), float(s.get('rate') or 0))
              for s in senders]
    expect = [(index, uid, count) for index, by_sender in job.get('expect', {}).items()
              for uid, count in by_sender.items()]
    lines.append('expect {}'.format(len(expect)))
    lines += ['{} {} {}'.format(*entry) for entry in expect]
    lines.append('end')
    return '\n'.join(lines) + '\n'


class Workers:
    """Load generator processes, each given one job; the same jobs run in all at once."""

    command = None  # set in main() (build_loadgen)

    def __init__(self, jobs, client_cores=None):
        prefix = []
        if client_cores and shutil.which('taskset') and len(os.sched_getaffinity(0)) > 1:
            prefix = ['taskset', '-c', ','.join(map(str, client_cores))]
        command = Workers.command or [PYTHON, LOADGEN]
        self.procs = []
        for job in jobs:
            proc = subprocess.Popen(prefix + command, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT)
            proc.stdin.write(json.dumps(job) + '\n' if command[0] == PYTHON
                             else job_lines(job))
            proc.stdin.flush()
            self.procs.append(proc)

    def expect(self, key, timeout):
        out = []
        for proc in self.procs:
            line = read_line(proc, timeout)
            message = json.loads(line)
            if key not in message:
                raise RuntimeError('load generator said {!r}'.format(line))
            out.append(message[key])
        return out

    def say(self, word):
        for proc in self.procs:
            proc.stdin.write(word + '\n')
            proc.stdin.flush()

    def close(self):
        for proc in self.procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def read_line(proc, timeout):
    import selectors
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise RuntimeError('a load generator gave no answer in {} s'.format(timeout))
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError('a load generator exited (status {})'.format(proc.wait()))
    return line


def split(items, parts):
    return [items[i::parts] for i in range(parts)]


def run_chat(server, workers_count, client_cores, conns_per_worker, senders_per_worker,
             expect_per_worker, window, time_limit):
    url = 'ws://127.0.0.1:{}/chat'.format(server.port)
    jobs = [{'kind': 'chat', 'url': url, 'window': window, 'conns': conns_per_worker[w],
             'senders': senders_per_worker[w], 'expect': expect_per_worker[w]}
            for w in range(workers_count)]
    workers = Workers(jobs, client_cores)
    try:
        workers.expect('ready', 300)
        profiler = server.start_profile()
        db_pid = database_pid(server.args)
        db0 = proc_cpu(db_pid) if db_pid else None
        busy0, total0, steal0 = machine_busy()
        cpu0, t0 = server.cpu(), time.monotonic()
        stored0, batches0 = server.batches()
        workers.say('go')
        results = workers.expect('result', time_limit)
        wall_end = time.monotonic()
        cpu1 = server.cpu()
        stored1, batches1 = server.batches()
        busy1, total1, steal1 = machine_busy()
        db_cpu = proc_cpu(db_pid) - db0 if db_pid else None
        server.stop_profile(profiler)
    finally:
        workers.close()
    start = min(r['start'] for r in results)
    end = max(r['end'] for r in results)
    wall = max(end - start, 1e-6)
    hist = {}
    for result in results:
        for bucket, n in result['hist'].items():
            hist[int(bucket)] = hist.get(int(bucket), 0) + n
    acked = sum(r['acked'] for r in results)
    delivered = sum(r['delivered'] for r in results)
    expected = sum(r['expected'] for r in results)
    server_cpu = cpu1 - cpu0
    return {
        'messages': acked, 'messages_s': acked / wall, 'deliveries_s': delivered / wall,
        'p50_ms': percentile(hist, 0.50), 'p99_ms': percentile(hist, 0.99),
        'server_cpu_pct': 100 * server_cpu / max(wall_end - t0, 1e-6),
        'cpu_us_msg': 1e6 * server_cpu / max(acked, 1),
        'cpu_us_delivery': 1e6 * server_cpu / max(delivered, 1),
        # The database's own work (MariaDB on this machine), and the whole machine's use
        # of all its cores: a run where these add up to every core is bound by the box.
        'db_cpu_pct': None if db_cpu is None else 100 * db_cpu / max(wall_end - t0, 1e-6),
        'db_us_msg': None if db_cpu is None else 1e6 * db_cpu / max(acked, 1),
        'machine_pct': 100 * (busy1 - busy0) / max(total1 - total0, 1e-6),
        'steal_pct': 100 * (steal1 - steal0) / max(total1 - total0, 1e-6),
        'client_cpu_pct': 100 * sum(r['cpu'] for r in results) / wall / len(client_cores),
        'client_cpu_max_pct': 100 * max(r['cpu'] for r in results) / wall,
        'lost': expected - delivered,
        'unacked': sum(r['sent'] for r in results) - acked,
        'duplicates': sum(r['duplicates'] for r in results),
        'out_of_order': sum(r['out_of_order'] for r in results),
        'refused': sum(r['refused'] for r in results),
        # Messages a transaction (on commits that count their batches).
        'batch': (stored1 - stored0) / (batches1 - batches0)
        if batches0 is not None and batches1 > batches0 else None,
        'closed': sum(r['closed'] for r in results), 'seconds': wall}


def percentile(hist, q):
    total = sum(hist.values())
    if not total:
        return float('nan')
    rank, seen = q * total, 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return (bucket + 1) * BUCKET_US / 1000
    return float('nan')


def pairs_scenario(server, args, client_cores, rate=None):
    users = server.register(2 * args.pairs, 1)
    server.parallel([(('/contact/addfriend', users[2 * i]['token']),
                      {'dstid': users[2 * i + 1]['uid']}) for i in range(args.pairs)])
    w = args.workers
    conns = [[] for _ in range(w)]
    senders = [[] for _ in range(w)]
    expect = [{} for _ in range(w)]
    for i in range(args.pairs):
        k = i % w
        a, b = users[2 * i], users[2 * i + 1]
        conns[k] += [a, b]
        ia, ib = len(conns[k]) - 2, len(conns[k]) - 1
        senders[k].append({'conn': ia, 'dstid': b['uid'], 'cmd': 10, 'count': args.messages,
                           'local': [ib], 'rate': rate / args.pairs if rate else None})
        expect[k][ib] = {a['uid']: args.messages}
    result = run_chat(server, w, client_cores, conns, senders, expect, args.window,
                      args.time_limit)
    result['offered'] = rate
    return result


def paced_scenario(server, args, client_cores):
    """The pairs load sent at a set rate (args.paced_rate messages/s in all), each
    message timed from when it fell due: the latency at that rate, not at saturation."""
    return pairs_scenario(server, args, client_cores, rate=args.paced_rate)


def paced_rate(args, results, labels, label):
    """The rate of the paced phase for `label`: --rate, else --rate-factor times the
    baseline's pairs messages/s in this run; None (skip it) for the baseline itself or
    when the baseline's pairs phase did not run."""
    if args.rate:
        return args.rate
    base = results[labels[0]].get('pairs')
    if label == labels[0] or base is None:
        return None
    return args.rate_factor * base['messages_s']


def group_scenario(server, args, client_cores):
    users = server.register(args.group, 2)
    group = server.call('/contact/createcommunity', users[0]['token'], name='bench')
    server.parallel([(('/contact/joincommunity', u['token']), {'dstid': group['id']})
                     for u in users[1:]])
    w = args.workers
    conns = split(users, w)
    sender_uids = {u['uid'] for u in users[:args.group_senders]}
    senders = [[] for _ in range(w)]
    expect = [{} for _ in range(w)]
    for k in range(w):
        for index, user in enumerate(conns[k]):
            expect[k][index] = {s: args.group_messages for s in sender_uids
                                if s != user['uid']}
            if user['uid'] in sender_uids:
                senders[k].append({'conn': index, 'dstid': group['id'], 'cmd': 11,
                                   'count': args.group_messages,
                                   'local': [j for j in range(len(conns[k])) if j != index]})
    return run_chat(server, w, client_cores, conns, senders, expect, args.window,
                    args.time_limit)


def idle_scenario(server, args, client_cores, concurrency=12):
    per_user = 10
    users = server.register(max(1, args.idle_conns // per_user), 3)
    conns = [users[i % len(users)] for i in range(args.idle_conns)]
    url = 'ws://127.0.0.1:{}/chat'.format(server.port)
    # One connection first, so the imports and pools a first connection makes are not
    # counted as the cost of a connection.
    warm = Workers([{'kind': 'idle', 'url': url, 'conns': conns[:1]}], client_cores)
    warm.expect('ready', 60)
    warm.say('close')
    warm.expect('result', 60)
    warm.close()
    time.sleep(1)
    before = server.rss_kb()
    t0 = time.monotonic()
    jobs = [{'kind': 'idle', 'url': url, 'conns': part,
             'concurrency': concurrency or max(1, len(part))}
            for part in split(conns, args.workers)]
    workers = Workers(jobs, client_cores)
    try:
        workers.expect('ready', args.time_limit)
        # The handshake answers before the server has registered the connection: wait
        # until every one is registered (or the count stops growing).
        open_now, last_change, deadline = -1, time.monotonic(), t0 + args.time_limit
        while time.monotonic() < deadline:
            count = server.metric('imchat_connections_open')
            if count != open_now:
                open_now, last_change = count, time.monotonic()
            if open_now >= args.idle_conns or time.monotonic() - last_change > 15:
                break
            time.sleep(0.5)
        connect_seconds = time.monotonic() - t0
        time.sleep(3)
        after = server.rss_kb()
        open_now = server.metric('imchat_connections_open')
        settled = None
        if not concurrency:
            time.sleep(args.settle)
            settled = server.rss_kb()
        workers.say('close')
        results = workers.expect('result', 60)
    finally:
        workers.close()
    return {'conns': args.idle_conns, 'open': open_now,
            'kb_per_conn': (after - before) / args.idle_conns,
            'kb_per_conn_settled': (None if settled is None
                                    else (settled - before) / args.idle_conns),
            'rss_before_mb': before / 1024, 'rss_after_mb': after / 1024,
            'connect_s': connect_seconds, 'log': server.log_tail(),
            'closed_by_server': sum(r['closed_by_server'] for r in results)}


def burst_scenario(server, args, client_cores):
    return idle_scenario(server, args, client_cores, concurrency=0)


SCENARIOS = {'pairs': pairs_scenario, 'paced': paced_scenario, 'group': group_scenario,
             'idle': idle_scenario, 'burst': burst_scenario}


def raise_file_limit(needed):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError) as error:
            # Root without CAP_SYS_RESOURCE (a container) cannot pass the hard limit.
            print('warning: could not raise the open-file limit to {} (hard limit {}: {}); '
                  'the server holds at most about {} connections'.format(
                      needed, hard, error, hard - 100))
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(needed, hard)), hard))


def fmt(value, digits=0):
    if value is None or value != value:
        return '-'
    return '{:,.{}f}'.format(value, digits)


def ratio(value, base):
    if not base or value is None or base != base or value != value:
        return '-'
    return '{:.2f}x'.format(value / base)


def report(results, labels):
    base = labels[0]
    print()
    for name in ('pairs', 'paced', 'group'):
        rows = [(label, results[label][name]) for label in labels if name in results[label]]
        if not rows:
            continue
        if name == 'paced':
            print('pairs, paced (each message timed from when it fell due):')
        else:
            print('{}:'.format(name))
        print('  {:<16} {:>10} {:>12} {:>8} {:>8} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6} '
              '{:>5} {:>6}'.format('commit', 'msgs/s', 'deliv/s', 'p50 ms', 'p99 ms', 'µs/msg',
                                   'srv cpu', 'cli cpu', 'db µs/msg', 'db cpu', 'machine',
                                   'lost', 'dup', 'order'))
        for label, r in rows:
            print('  {:<16} {:>10} {:>12} {:>8} {:>8} {:>9} {:>7}% {:>7}% {:>9} {:>7}% {:>7}% '
                  '{:>6} {:>5} {:>6}'
                  .format(label, fmt(r['messages_s']), fmt(r['deliveries_s']),
                          fmt(r['p50_ms'], 1), fmt(r['p99_ms'], 1), fmt(r['cpu_us_msg'], 1),
                          fmt(r['server_cpu_pct']), fmt(r['client_cpu_pct']),
                          fmt(r.get('db_us_msg'), 1), fmt(r.get('db_cpu_pct')),
                          fmt(r.get('machine_pct')), r['lost'], r['duplicates'],
                          r['out_of_order']))
        if name == 'paced':
            b = results[base].get('pairs')
            for label, r in rows:
                print('  {}: offered {} messages/s{}, carried {}, p99 {} ms'.format(
                    label, fmt(r['offered']),
                    ' ({}x {}\'s pairs)'.format(ratio(r['offered'], b['messages_s'])[:-1],
                                                 base) if b else '',
                    fmt(r['messages_s']), fmt(r['p99_ms'], 1)))
            print()
            continue
        b = results[base].get(name)
        for label, r in rows[1:]:
            if b:
                print('  {} vs {}: messages/s {}, deliveries/s {}, p99 {}, CPU per message {}'
                      .format(label, base, ratio(r['messages_s'], b['messages_s']),
                              ratio(r['deliveries_s'], b['deliveries_s']),
                              ratio(r['p99_ms'], b['p99_ms']),
                              ratio(r['cpu_us_msg'], b['cpu_us_msg'])))
        print()
    for name in ('idle', 'burst'):
        rows = [(label, results[label][name]) for label in labels if name in results[label]]
        if not rows:
            continue
        print('{}:'.format(name))
        print('  {:<16} {:>8} {:>8} {:>10} {:>12} {:>11} {:>14}'.format(
            'commit', 'conns', 'open', 'KB/conn', 'RSS MB', 'connect s', 'KB/conn later'))
        for label, r in rows:
            print('  {:<16} {:>8} {:>8} {:>10} {:>12} {:>11} {:>14}'.format(
                label, r['conns'], fmt(r['open']), fmt(r['kb_per_conn'], 1),
                '{}->{}'.format(fmt(r['rss_before_mb']), fmt(r['rss_after_mb'])),
                fmt(r['connect_s'], 1), fmt(r['kb_per_conn_settled'], 1)))
        b = results[base].get(name)
        for label, r in rows[1:]:
            if b:
                print('  {} vs {}: KB per connection {}'.format(
                    label, base, ratio(r['kb_per_conn'], b['kb_per_conn'])))
        steady = [results[label].get('idle') for label, _ in rows]
        for (label, r), idle in zip(rows, steady):
            if name == 'burst' and idle and idle['kb_per_conn']:
                print('  {}: a burst leaves {} the steady KB per connection ({} later)'
                      .format(label, ratio(r['kb_per_conn'], idle['kb_per_conn']),
                              ratio(r['kb_per_conn_settled'], idle['kb_per_conn'])))
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--commits', default=BASELINE + ',.',
                        help='comma-separated commits to compare, the first being the '
                             'baseline; "." is this work tree as it is (default: %(default)s)')
    parser.add_argument('--db', choices=('mysql', 'sqlite'), default='mysql')
    parser.add_argument('--mysql', default=os.environ.get('IMCHAT_TEST_MYSQL',
                                                          'mysql://root@127.0.0.1:3306'))
    parser.add_argument('--only', default='pairs,paced,group,idle',
                        help='scenarios to run (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=3, help='load generator processes')
    parser.add_argument('--load', choices=('auto', 'c', 'python'), default='auto',
                        help='the load generator: bench/loadgen.c (auto: when there is a '
                             'C compiler) or bench/loadgen.py')
    parser.add_argument('--pairs', type=int, default=50)
    parser.add_argument('--messages', type=int, default=10000, help='texts a pair sender sends')
    parser.add_argument('--group', type=int, default=200, help='members of the group')
    parser.add_argument('--group-senders', type=int, default=5)
    parser.add_argument('--group-messages', type=int, default=400,
                        help='texts a group sender sends')
    parser.add_argument('--window', type=int, default=10,
                        help='unacknowledged or undelivered messages a sender may have')
    parser.add_argument('--rate-factor', type=float, default=6,
                        help='the paced phase sends at this times the baseline\'s pairs '
                             'messages/s (default: %(default)s)')
    parser.add_argument('--rate', type=float,
                        help='the paced phase\'s messages/s in all, for every commit')
    parser.add_argument('--idle-conns', type=int, default=5000)
    parser.add_argument('--settle', type=float, default=60,
                        help='seconds after a burst before its RSS is taken again')
    parser.add_argument('--profile', metavar='DIR',
                        help='record the server with py-spy into DIR during each phase')
    parser.add_argument('--time-limit', type=float, default=600,
                        help='seconds a phase may take before the run fails')
    args = parser.parse_args()
    if not os.path.exists(PYTHON):
        sys.exit('no .venv: run `bash tests/run.sh --co -q` (or pip install -r '
                 'requirements-dev.txt into .venv) first')
    server_cores, client_cores = cores()
    Workers.command = build_loadgen(args.load)
    scenarios = [s.strip() for s in args.only.split(',') if s.strip()]
    if 'idle' in scenarios or 'burst' in scenarios:
        raise_file_limit(args.idle_conns + 200)
    print('server on core(s) {}, load generators ({} processes of {}) on core(s) {}; '
          'database {}'.format(server_cores, args.workers,
                               os.path.basename(LOADGEN if Workers.command[0] == PYTHON
                                                else LOADGEN_C),
                               client_cores, args.db))
    results, labels, failed = {}, [], False
    for ref in [c.strip() for c in args.commits.split(',') if c.strip()]:
        tree = Tree(ref)
        label = tree.label
        labels.append(label)
        results[label] = {}
        try:
            for name in scenarios:
                if name == 'paced':
                    args.paced_rate = paced_rate(args, results, labels, label)
                    if args.paced_rate is None:
                        print('{} paced: skipped (it runs at --rate-factor times the '
                              'baseline\'s pairs rate, for the other commits)'.format(label))
                        continue
                server = Server(tree, args, server_cores)
                server.label, server.scenario = label, name
                try:
                    r = SCENARIOS[name](server, args, client_cores)
                except RuntimeError as error:
                    print('{} {}: FAILED: {}'.format(label, name, error), flush=True)
                    failed = True
                    continue
                finally:
                    server.stop()
                results[label][name] = r
                if name in ('idle', 'burst'):
                    print('{} {}: {} connections, {} KB each (RSS {} -> {} MB), opened '
                          'in {} s{}'.format(
                              label, name, r['conns'], fmt(r['kb_per_conn'], 1),
                              fmt(r['rss_before_mb']), fmt(r['rss_after_mb']),
                              fmt(r['connect_s'], 1),
                              '' if r['kb_per_conn_settled'] is None else
                              '; {} KB each {} s later'.format(
                                  fmt(r['kb_per_conn_settled'], 1), fmt(args.settle))),
                          flush=True)
                    if r['open'] is not None and r['open'] < r['conns']:
                        print('  only {} of them were open ({} closed by the server); the '
                              'server log ends:\n{}'.format(fmt(r['open']),
                                                          r['closed_by_server'], r['log']))
                        failed = True
                    continue
                print('{} {}: {} messages/s, {} deliveries/s, p50 {} ms, p99 {} ms, '
                      'server CPU {}% ({} µs a message), load CPU {}% of {} core(s) '
                      '(busiest process {}%), database CPU {}% ({} µs a message), all '
                      'cores {}% busy ({}% stolen by the host), lost {}, duplicated {}, '
                      'out of order {}, '
                      'refused {}, unacknowledged {}, {} s, {} messages a batch'.format(
                          label, name, fmt(r['messages_s']), fmt(r['deliveries_s']),
                          fmt(r['p50_ms'], 1), fmt(r['p99_ms'], 1), fmt(r['server_cpu_pct']),
                          fmt(r['cpu_us_msg'], 1), fmt(r['client_cpu_pct']),
                          len(client_cores), fmt(r['client_cpu_max_pct']),
                          fmt(r.get('db_cpu_pct')), fmt(r.get('db_us_msg'), 1),
                          fmt(r.get('machine_pct')), fmt(r.get('steal_pct'), 1), r['lost'],
                          r['duplicates'], r['out_of_order'], r['refused'], r['unacked'],
                          fmt(r['seconds'], 1), fmt(r['batch'], 1)), flush=True)
                if name == 'paced':
                    print('  (paced: offered {} messages/s)'.format(fmt(r['offered'])),
                          flush=True)
                if r['lost'] or r['duplicates'] or r['out_of_order'] or r['unacked']:
                    failed = True
        finally:
            tree.remove()
    report(results, labels)
    if failed:
        print('FAILED: messages were lost, duplicated, out of order or unacknowledged, '
              'or connections were not held')
        sys.exit(1)


if __name__ == '__main__':
    main()
