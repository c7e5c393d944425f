"""Real processes for the scale-out tests: imchat nodes started as `python wsgi.py`
(alone or with IMCHAT_WORKERS), real nginx in a temp prefix in front of them, an HTTP
client that registers and befriends through the real API, and a way to tell which
process holds the server end of a client's connection (Linux /proc)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSGI = os.path.join(ROOT, 'wsgi.py')
NGINX_SITE = os.path.join(ROOT, 'deploy', 'nginx-imchat.conf')
REDIS_URL = os.environ.get('IMCHAT_TEST_REDIS', 'redis://127.0.0.1:6379/0')
# Generous: two cores shared by several test runs.
START_SECONDS = 60


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def free_udp_ports(count):
    """The first of `count` consecutive UDP ports on 127.0.0.1 free right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(('127.0.0.1', 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        held = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(('127.0.0.1', port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise AssertionError('no {} consecutive free UDP ports'.format(count))


def wait_for(condition, seconds=30, interval=0.05, what='the condition'):
    """Poll `condition()` until it returns something true; return that."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('{} did not hold within {} s'.format(what, seconds))
        time.sleep(interval)


def http(url, data=None, headers=None, timeout=10):
    """(status, parsed JSON or text) of a GET, or a form POST when `data` is given."""
    body = None if data is None else urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, body, headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers
    if (kind.get('Content-Type') or '').startswith('application/json'):
        return status, json.loads(raw)
    return status, raw.decode('utf-8', 'replace')


def healthy(base):
    try:
        return http(base + '/healthz', timeout=3)[0] == 200
    except OSError:
        return False


def clean_environ(**settings):
    """This environment without any IMCHAT_* setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('IMCHAT_', '_IMCHAT_'))}
    env.update({k: str(v) for k, v in settings.items()})
    return env


class Node:
    """`python wsgi.py` in its own process (a single server or a supervisor of
    workers), logging to a file."""

    def __init__(self, workdir, port, database_url, script=WSGI, command=None, **settings):
        self.port = port
        self.url = 'http://127.0.0.1:{}'.format(port)
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.log_path = os.path.join(workdir, 'log.log')
        # A small pool: several nodes of several test runs share one MariaDB.
        env = clean_environ(IMCHAT_PORT=port, IMCHAT_DATABASE_URL=database_url,
                            IMCHAT_LOG_LEVEL='INFO', IMCHAT_PASSWD_COST=4,
                            IMCHAT_DB_POOL_SIZE=5,
                            IMCHAT_UPLOAD_DIR=os.path.join(workdir, 'mnt'), **settings)
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(command or [sys.executable, script or WSGI],
                                            cwd=workdir, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        with open(self.log_path, encoding='utf-8', errors='replace') as f:
            return f.read()

    def alive(self):
        return self.process.poll() is None

    def wait_healthy(self, seconds=START_SECONDS):
        def answered():
            assert self.alive(), 'node exited ({}):\n{}'.format(self.process.returncode,
                                                                self.log())
            return healthy(self.url)
        wait_for(answered, seconds, 0.1, 'a healthy answer from ' + self.url)
        return self

    def worker_pids(self):
        """{worker index: pid} of the workers that said they listen, newest per index."""
        found = {}
        for index, pid in re.findall(r' worker (\d+): imchat listening on \S+ \(pid (\d+)\)',
                                     self.log()):
            found[int(index)] = int(pid)
        return found

    def wait_workers(self, count, seconds=START_SECONDS):
        def listening():
            assert self.alive(), 'supervisor exited:\n' + self.log()
            pids = self.worker_pids()
            return pids if len(pids) == count and all(map(pid_alive, pids.values())) else None
        return wait_for(listening, seconds, 0.1, '{} workers listening'.format(count))

    def stop(self, sig=signal.SIGTERM, seconds=30):
        """Signal the node and wait for it; return its exit status."""
        if self.alive():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError('{} still running {} s after {}'.format(self.url, seconds,
                                                                       sig))

    def kill(self):
        """SIGKILL: the node dies without any goodbye, as in a crash."""
        self.process.kill()
        self.process.wait()


def pid_alive(pid):
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


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


class Api:
    """Accounts through the real HTTP API of one base URL (a node or nginx)."""

    def __init__(self, base):
        self.base = base

    def call(self, path, data=None, token=None):
        headers = {'Authorization': 'Bearer ' + token} if token else {}
        status, body = http(self.base + path, data, headers)
        assert status == 200, (path, status, body)
        return body['data']

    def register(self, mobile):
        data = self.call('/user/register', {'mobile': mobile, 'passwd': 'secret-pass'})
        return User(data['id'], data['token'], mobile)

    def befriend(self, a, b):
        self.call('/contact/addfriend', {'dstid': b.id}, a.token)

    def create_community(self, owner, name='group'):
        return self.call('/contact/createcommunity', {'name': name}, owner.token)['id']

    def join(self, user, community_id):
        self.call('/contact/joincommunity', {'dstid': community_id}, user.token)


class User:
    def __init__(self, user_id, token, mobile):
        self.id = user_id
        self.token = token
        self.mobile = mobile

    def chat_url(self, base_ws, **params):
        query = {'id': self.id, 'token': self.token}
        query.update(params)
        return '{}/chat?{}'.format(base_ws, urllib.parse.urlencode(query))


def unique_mobiles(count):
    """Mobiles no other test run on this machine uses at the same time."""
    base = 13000000000 + int(uuid.uuid4().int % 900000000)
    return [str(base + i) for i in range(count)]


def redis_bus_url():
    """IMCHAT_BUS for a Redis bus of this test alone (pub/sub ignores the db number, so
    each deployment gets its own channel prefix); skips when Redis does not answer,
    except under CI=true."""
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or '127.0.0.1', parts.port or 6379),
                                 timeout=2).close()
    except OSError as error:
        message = 'Redis at {} is not reachable: {}'.format(REDIS_URL, error)
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    return '{}?prefix=ops-test-{}'.format(REDIS_URL, uuid.uuid4().hex[:12])


# -- nginx --

NGINX_BINARY = shutil.which('nginx') or ('/usr/sbin/nginx' if os.path.exists('/usr/sbin/nginx')
                                         else None)


def require_nginx():
    """The nginx binary; skips without one, except under CI=true, where it fails
    (tests/run.sh installs Debian's nginx when it runs as root)."""
    if NGINX_BINARY is None:
        message = 'nginx is not installed (tests/run.sh installs it when run as root)'
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    return NGINX_BINARY


def site_for_test(site_text, listen_port, backends, logs, root=ROOT):
    """The shipped site with only its addresses changed: nginx listens on 127.0.0.1
    `listen_port`, the upstream lists `backends` (host:port) with the shipped server
    parameters, static files come from `root` (this checkout or a release), logs go to
    `logs`. Each changed part must be there, so a changed sample fails here instead of
    going untested."""
    upstream = re.search(r'^upstream imchat \{\n(.*?)^\}', site_text, re.M | re.S)
    assert upstream, 'deploy/nginx-imchat.conf has no upstream imchat block'
    servers = re.findall(r'^( +)server \S+(.*);$', upstream.group(1), re.M)
    assert len(servers) >= 3, 'the sample should list several backends'
    indent, parameters = servers[0]
    listed = ''.join('{}server {}{};\n'.format(indent, address, parameters)
                     for address in backends)
    body = re.sub(r'^ +server \S+.*;\n', '', upstream.group(1), flags=re.M)
    text = site_text.replace(upstream.group(0),
                             'upstream imchat {\n' + listed + body + '}')
    text, listens = re.subn(r'^( +)listen 80;$', r'\g<1>listen 127.0.0.1:{};'.format(
        listen_port), text, flags=re.M)
    assert listens == 1, 'the sample should listen on port 80 once'
    assert '/opt/imchat/' in text and '/var/log/nginx/' in text
    text = text.replace('/opt/imchat/', str(root) + '/').replace('/var/log/nginx/',
                                                                 str(logs) + '/')
    return text


class Nginx:
    """Real nginx on 127.0.0.1 with everything (config, pid, logs, temp files) in its
    own folder: it never reads /etc/nginx's site config nor touches the system's nginx."""

    def __init__(self, folder, backends):
        self.binary = require_nginx()
        self.folder = str(folder)
        self.port = free_port()
        self.url = 'http://127.0.0.1:{}'.format(self.port)
        self.ws = 'ws://127.0.0.1:{}'.format(self.port)
        self.logs = os.path.join(self.folder, 'logs')
        os.makedirs(self.logs, exist_ok=True)
        for temp in ('client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'):
            os.makedirs(os.path.join(self.folder, 'temp', temp), exist_ok=True)
        with open(NGINX_SITE) as f:
            site = site_for_test(f.read(), self.port, backends, self.logs)
        self.site_path = os.path.join(self.folder, 'imchat.conf')
        with open(self.site_path, 'w') as f:
            f.write(site)
        self.conf_path = os.path.join(self.folder, 'nginx.conf')
        with open(self.conf_path, 'w') as f:
            f.write(self._main_conf())
        self.error_log = os.path.join(self.logs, 'error.log')
        check = subprocess.run(self._command('-t'), capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def _command(self, *extra):
        return [self.binary, '-p', self.folder + '/', '-c', self.conf_path,
                '-e', self.error_log] + list(extra)

    def _main_conf(self):
        temp = os.path.join(self.folder, 'temp')
        # As root, nginx's workers would otherwise run as nobody, who cannot read the
        # test's private temp folder.
        user = 'user root;\n' if os.geteuid() == 0 else ''
        return (
            '{user}daemon off;\nmaster_process on;\nworker_processes 1;\n'
            'pid {folder}/nginx.pid;\nerror_log {logs}/error.log info;\n'
            'events {{ worker_connections 1024; }}\n'
            'http {{\n'
            # The types the site serves itself (not /etc/nginx/mime.types: nothing of
            # the system's nginx is read).
            '    types {{ text/css css; text/javascript js; image/svg+xml svg;'
            ' image/png png; text/markdown md; }}\n'
            '    default_type application/octet-stream;\n'
            '    client_body_temp_path {temp}/client_body;\n'
            '    proxy_temp_path {temp}/proxy;\n'
            '    fastcgi_temp_path {temp}/fastcgi;\n'
            '    uwsgi_temp_path {temp}/uwsgi;\n'
            '    scgi_temp_path {temp}/scgi;\n'
            '    access_log {logs}/access.log;\n'
            '    include {site};\n'
            '}}\n').format(user=user, folder=self.folder, logs=self.logs, temp=temp,
                           site=self.site_path)

    def wait_ready(self, seconds=START_SECONDS):
        def answered():
            assert self.process.poll() is None, 'nginx exited:\n' + self.read_log('error.log')
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(answered, seconds, 0.05, 'nginx listening')
        return self

    def read_log(self, name):
        try:
            with open(os.path.join(self.logs, name), encoding='utf-8',
                      errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def access_logs(self):
        """Every access log nginx wrote (the site's and any other), error log aside."""
        return ''.join(self.read_log(name) for name in sorted(os.listdir(self.logs))
                       if name != 'error.log')

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
