"""The one launcher of a real server process: `python wsgi.py` (or a release's `run`,
or an older release's wsgi.py) with an environment of its own, its output in a log
file, started, stopped, killed and restarted on the same port and database."""
import os
import re
import signal
import subprocess
import sys
import urllib.parse

from tests.harness.http import Api, healthy, http, token_of
from tests.harness.wait import free_port, pid_alive, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WSGI = os.path.join(ROOT, 'wsgi.py')
# How long a process may take to answer /healthz: generous, since two cores are shared
# by several test runs, chromium and MariaDB.
START_SECONDS = 60
# How long a signalled process may take to exit before it is killed.
STOP_SECONDS = 30


# The suite before issue 22 tests the original's contacts: instant friends, open
# communities, no join limit. Every server it starts gets these (the app of the test's
# own process reads them from the environment, where conftest.py puts them);
# tests/test_safety*.py pass the defaults explicitly.
LEGACY_CONTACTS = {'FRIEND_REQUESTS': False, 'DEFAULT_JOINMODE': 'open', 'JOINS_PER_HOUR': 0}


def legacy_contacts_environ():
    return {'IMCHAT_' + name: str(int(value)) if isinstance(value, bool) else str(value)
            for name, value in LEGACY_CONTACTS.items()}


def clean_environ(**settings):
    """This process's environment without any IMCHAT_* setting (nor PYTHONPATH, which
    would let a release import this checkout) but the suite's contact settings
    (LEGACY_CONTACTS), plus `settings`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('IMCHAT_', '_IMCHAT_')) and k != 'PYTHONPATH'}
    env.update(legacy_contacts_environ())
    env.update({k: str(v) for k, v in settings.items()})
    return env


def _limit_open_files(count):
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))
    return limit


class ServerProcess:
    """A server in its own process. `settings` are environment variables by their full
    name (IMCHAT_WORKERS=2); the process gets the cleaned environment, a free port (or
    `port`), the database (SQLite in `folder` unless given), an upload folder in
    `folder`, a cheap password hash, and INFO logging. `command` replaces `python
    wsgi.py`; `files` caps its open files.

    Nothing runs until `spawn()` (start, do not wait) or `start()` (start and wait for a
    healthy answer)."""

    def __init__(self, folder, database_url=None, *, port=None, name='server', command=None,
                 cwd=None, files=None, **settings):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.url = 'http://127.0.0.1:{}'.format(self.port)
        self.database_url = database_url or 'sqlite:///{}'.format(
            os.path.join(self.folder, 'imchat.db'))
        self.command = command or [sys.executable, WSGI]
        self.cwd = cwd or self.folder
        self.files = files
        self.log_path = os.path.join(self.folder, name + '.log')
        self.env = clean_environ(**dict(dict(
            IMCHAT_PORT=self.port, IMCHAT_DATABASE_URL=self.database_url,
            IMCHAT_UPLOAD_DIR=os.path.join(self.folder, 'mnt'), IMCHAT_PASSWD_COST=4,
            IMCHAT_LOG_LEVEL='INFO'), **settings))
        self.api = Api(self.url)
        self.process = None

    # -- its life ---------------------------------------------------------------------

    def spawn(self):
        """Start the process; do not wait for it to answer."""
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_limit_open_files(self.files) if self.files else None)
        return self

    def start(self, seconds=START_SECONDS):
        return self.spawn().wait_healthy(seconds)

    def wait_healthy(self, seconds=START_SECONDS):
        """Wait until /healthz answers 200; fails at once, with the log, if it exits."""
        def answered():
            assert self.alive(), '{} exited ({}):\n{}'.format(
                self.name, self.process.returncode, self.log())
            return healthy(self.url) is not None
        wait_for(answered, seconds, 'a healthy answer from {} ({})'.format(self.name, self.url),
                 interval=0.1)
        return self

    def alive(self):
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self):
        return self.process.pid

    def stop(self, sig=signal.SIGTERM, seconds=STOP_SECONDS):
        """Signal the process and wait for it; return its exit status. One that does not
        exit in `seconds` is killed, and that fails the test."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError('{} still running {} s after {}'.format(self.name, seconds,
                                                                       sig))

    def kill(self):
        """SIGKILL: the process dies without any goodbye, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        return self

    def restart(self, seconds=START_SECONDS):
        """Stop, then start again on the same port, database and folder."""
        self.stop()
        return self.start(seconds)

    # -- what it says -----------------------------------------------------------------

    def log(self):
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def health(self):
        status, body = http(self.url + '/healthz')
        assert status == 200, body
        return body['data']

    def metric(self, name, **labels):
        """The value of the one sample of `name` in /metrics whose labels include
        `labels` (an integer)."""
        status, text = http(self.url + '/metrics')
        assert status == 200, text
        wanted = ['{}="{}"'.format(k, v) for k, v in labels.items()]
        values = [int(value) for found, value in re.findall(
            r'^{}(?:\{{([^}}]*)\}})? (\d+)$'.format(re.escape(name)), text, re.M)
            if all(label in found.split(',') for label in wanted)]
        assert len(values) == 1, 'not one sample {}{} in:\n{}'.format(name, labels, text)
        return values[0]

    def ws_url(self, account, **params):
        query = {'id': account['id'] if isinstance(account, dict) else account.id,
                 'token': token_of(account)}
        query.update(params)
        return 'ws://127.0.0.1:{}/chat?{}'.format(self.port, urllib.parse.urlencode(query))

    # -- a supervisor of workers (IMCHAT_WORKERS) --------------------------------------

    def worker_pids(self):
        """{worker index: pid} of the workers that said they listen, newest per index."""
        found = {}
        for index, pid in re.findall(r' worker (\d+): imchat listening on \S+ \(pid (\d+)\)',
                                     self.log()):
            found[int(index)] = int(pid)
        return found

    def wait_workers(self, count, seconds=START_SECONDS):
        def listening():
            assert self.alive(), 'the supervisor exited:\n' + self.log()
            pids = self.worker_pids()
            return pids if len(pids) == count and all(map(pid_alive, pids.values())) else None
        return wait_for(listening, seconds, '{} workers listening'.format(count), interval=0.1)


def server_pid_of(sock, pids):
    """Which of `pids` holds the server end of the connected client socket `sock`:
    the socket whose local port is the server's and whose peer port is the client's,
    found in /proc/net/tcp* and then among each process's descriptors."""
    client_port = sock.getsockname()[1]
    server_port = sock.getpeername()[1]
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (int(local.rsplit(':', 1)[1], 16) == server_port
                    and int(remote.rsplit(':', 1)[1], 16) == client_port and inode != '0'):
                inodes.add('socket:[{}]'.format(inode))
    for pid in pids:
        folder = '/proc/{}/fd'.format(pid)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            try:
                if os.readlink(os.path.join(folder, name)) in inodes:
                    return pid
            except OSError:
                continue
    return None
