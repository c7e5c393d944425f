"""The release: build.sh makes it, `run` starts it from anywhere (under nohup too), it
logs time/level/message lines without secrets, answers /healthz and the login page, and
stops cleanly on SIGTERM. build.bat cannot run here, so it is compared with build.sh."""
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

import pytest

from tests.harness import clean_environ, free_port, pid_alive, wait_for
from tests.harness import fetch as http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_SH = os.path.join(ROOT, 'build.sh')
BUILD_BAT = os.path.join(ROOT, 'build.bat')
LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S')
SECRET_MARKERS = {'IMCHAT_SECRET_KEY': 'flask-key-marker-5c1f',
                  'IMCHAT_OSS_ACCESS_KEY_SECRET': 'oss-secret-marker-9a7e'}
# What the release holds at its top level (deploy/ carries the nginx and systemd samples).
RELEASE_ENTRIES = {'wsgi.py', 'requirements.txt', 'imchat', 'view', 'asset', 'run', 'run.bat',
                   'env.sample', 'deploy'}

pytestmark = [pytest.mark.skipif(sys.platform == 'win32', reason='build.sh and run need bash'),
              pytest.mark.process]


def build(dest, root=ROOT):
    return subprocess.run(['bash', os.path.join(root, 'build.sh'), str(dest)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    dest = tmp_path_factory.mktemp('build') / 'release'
    result = build(dest)
    assert result.returncode == 0, result.stderr
    return dest


def release_env(port, database_url, **extra):
    """The environment `run` gets: this suite's virtual environment (so nothing is
    installed), a free port, the test's database, and secrets that must not be logged."""
    env = clean_environ(IMCHAT_VENV=sys.prefix, IMCHAT_PORT=port,
                        IMCHAT_DATABASE_URL=database_url, IMCHAT_LOG_LEVEL='INFO',
                        **SECRET_MARKERS, **extra)
    env.pop('VIRTUAL_ENV', None)
    return env


def wait_healthy(base, alive, seconds=30):
    """The parsed /healthz answer of `base`, once it gives one; fails if `alive()` turns
    false first."""
    def answered():
        assert alive(), 'the server exited before it answered'
        try:
            status, _, body = http(base + '/healthz', timeout=2)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None
    return wait_for(answered, seconds, 'a healthy answer from ' + base, interval=0.1)


def process_gone(pid):
    """True once `pid` has exited (a zombie nobody reaps counts as exited)."""
    return not pid_alive(pid)


def check_log(text, database_url, port):
    lines = text.splitlines()
    assert lines, 'the log is empty'
    for line in lines:
        assert LOG_LINE.match(line), 'not a time/level/message line: {!r}'.format(line)
    assert 'listening on http://127.0.0.1:{}'.format(port) in text
    assert re.search(r' INFO open-file limit: \d+', text)
    # The cyclic collector does not walk what starting made, and runs less often.
    assert re.search(r' INFO garbage collector: \d{4,} objects made while starting set aside, '
                     r'a collection every 20000 allocations', text)
    from imchat.model.engine import describe_database_url
    assert 'database: ' + describe_database_url(database_url) in text
    assert 'storage: local directory ' in text
    for marker in SECRET_MARKERS.values():
        assert marker not in text


def test_build_holds_what_the_server_needs(release):
    assert set(os.listdir(release)) == RELEASE_ENTRIES
    assert sorted(os.listdir(release / 'deploy')) == ['imchat.service', 'nginx-imchat.conf']
    assert os.access(release / 'run', os.X_OK)
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        pinned = f.read()
    assert (release / 'requirements.txt').read_text() == pinned
    for line in pinned.splitlines():
        if line.strip() and not line.startswith('#'):
            assert re.match(r'^[A-Za-z0-9_.\-\[\]]+==[^=\s]+$', line), 'not pinned: ' + line
    for package in ('ctrl', 'service', 'model', 'util'):
        assert (release / 'imchat' / package / '__init__.py').is_file()
    assert not list(release.rglob('__pycache__'))
    assert not list(release.rglob('*.pyc'))


def test_build_replaces_an_old_release(tmp_path):
    dest = tmp_path / 'release'
    dest.mkdir()
    (dest / 'stale.txt').write_text('from an older build')
    result = build(dest)
    assert result.returncode == 0, result.stderr
    assert not (dest / 'stale.txt').exists()
    assert set(os.listdir(dest)) == RELEASE_ENTRIES


def _copy_of_sources(tmp_path, leave_out=()):
    copy = tmp_path / 'src'
    copy.mkdir()
    for name in ['build.sh', 'wsgi.py', 'requirements.txt', 'imchat', 'view', 'asset', 'deploy']:
        if name in leave_out:
            continue
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, copy / name)
        else:
            shutil.copy2(source, copy / name)
    return copy


def test_build_fails_loudly_on_a_missing_source(tmp_path):
    sources = _copy_of_sources(tmp_path, leave_out={'view'})
    dest = tmp_path / 'release'
    dest.mkdir()
    (dest / 'keep.txt').write_text('an old release stays until a build can succeed')
    result = build(dest, root=sources)
    assert result.returncode != 0
    assert 'missing' in result.stderr and 'view' in result.stderr
    assert (dest / 'keep.txt').exists()


def test_build_fails_loudly_when_a_copy_fails(tmp_path):
    sources = _copy_of_sources(tmp_path)
    # A file where the release's parent folder must be: mkdir fails.
    (tmp_path / 'file').write_text('not a folder')
    result = build(tmp_path / 'file' / 'release', root=sources)
    assert result.returncode != 0
    assert 'build.sh: failed' in result.stderr


@pytest.mark.parametrize('dest', ['.', '..', '/'])
def test_build_refuses_to_delete_its_sources(tmp_path, dest):
    sources = _copy_of_sources(tmp_path)
    result = subprocess.run(['bash', str(sources / 'build.sh'), dest], cwd=sources,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'refusing to build into' in result.stderr
    assert (sources / 'build.sh').exists() and (sources / 'imchat').is_dir()


# -- build.bat, which cannot run here: it must copy what build.sh copies. --

def build_sh_copies():
    """(source, destination) pairs of build.sh's copy commands, paths with '/'."""
    with open(BUILD_SH) as f:
        text = f.read()
    pairs = re.findall(r'^cp (?:-R )?-- (\S+) "\$dest/(\S+)"$', text, re.M)
    checked = re.search(r'^for source in (.*?); do$', text.replace('\\\n', ' '), re.M | re.S)
    return set(pairs), set(checked.group(1).split())


def build_bat_copies():
    with open(BUILD_BAT) as f:
        text = f.read()
    pairs = re.findall(r'^(?:copy /y|call :tree) (\S+) "%DEST%\\(\S+)"', text, re.M)
    checked = re.search(r'^for %%s in \((.*?)\) do', text, re.M)

    def unix(path):
        return path.replace('\\', '/')
    return ({(unix(s), unix(d)) for s, d in pairs},
            {unix(path) for path in checked.group(1).split()})


def test_build_bat_copies_the_same_files_as_build_sh():
    sh_pairs, sh_checked = build_sh_copies()
    bat_pairs, bat_checked = build_bat_copies()
    assert sh_pairs and sh_checked
    assert bat_pairs == sh_pairs
    assert bat_checked == sh_checked
    # Every source is checked before the old release is removed.
    assert {source for source, _ in sh_pairs} == sh_checked


def test_the_parsed_copy_list_is_what_build_sh_builds(release):
    sh_pairs, _ = build_sh_copies()
    assert {dest.split('/')[0] for _, dest in sh_pairs} | {'deploy'} == RELEASE_ENTRIES
    for source, dest in sh_pairs:
        assert (release / dest).exists(), dest
        if os.path.isfile(os.path.join(ROOT, source)):
            with open(os.path.join(ROOT, source), 'rb') as f:
                assert (release / dest).read_bytes() == f.read(), dest


def test_windows_scripts_have_crlf_line_ends():
    # cmd.exe mis-reads labels in files with bare LF line ends.
    for path in (BUILD_BAT, os.path.join(ROOT, 'deploy', 'run.bat')):
        with open(path, 'rb') as f:
            data = f.read()
        assert data.count(b'\n') == data.count(b'\r\n') > 0, path


def test_env_sample_lists_every_setting():
    from imchat.config import SETTINGS
    with open(os.path.join(ROOT, 'deploy', 'env.sample')) as f:
        listed = set(re.findall(r'^# (IMCHAT_[A-Z0-9_]+)=', f.read(), re.M))
    missing = {'IMCHAT_' + name for name in SETTINGS} - listed
    assert not missing, 'add these to deploy/env.sample: {}'.format(sorted(missing))
    assert listed <= {'IMCHAT_' + name for name in SETTINGS}


# -- running the release --

def test_release_runs_from_any_directory_and_stops_cleanly_on_sigterm(release, tmp_path,
                                                                       database_url):
    port = free_port()
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    log_path = tmp_path / 'log.log'
    with open(log_path, 'ab') as log:
        server = subprocess.Popen([str(release / 'run')], cwd=elsewhere, stdout=log,
                                  stderr=subprocess.STDOUT, env=release_env(port, database_url))
    base = 'http://127.0.0.1:{}'.format(port)
    try:
        assert wait_healthy(base, lambda: server.poll() is None) == \
            {'code': 0, 'msg': '', 'data': {'database': 'ok'}}
        status, headers, body = http(base + '/user/login.shtml')
        assert status == 200 and headers['Content-Type'].startswith('text/html')
        assert b'<form' in body or b'login' in body.lower()
        status, _, body = http(base + '/user/register', {'mobile': '13900000001',
                                                          'passwd': 'secret-pass'})
        assert status == 200, body
        status, _, body = http(base + '/metrics')
        assert status == 200 and re.search(
            rb'imchat_http_requests_total\{(node="[^"]*",)?status="200"\}', body)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise AssertionError('still running 10 s after SIGTERM')
    assert code == 0
    text = log_path.read_text()
    check_log(text, database_url, port)
    assert 'SIGTERM received' in text and 'imchat stopped' in text
    # The relative default paths resolve inside the release, not the caller's directory.
    assert os.listdir(elsewhere) == []


def test_release_under_nohup_outlives_its_shell(release, tmp_path):
    """The README's command, through a symlink and from another directory: the shell
    that started it exits, a hangup does not stop it, SIGTERM does."""
    port = free_port()
    database_url = 'sqlite:///{}'.format(tmp_path / 'db' / 'imchat.db')
    launcher = tmp_path / 'bin'
    launcher.mkdir()
    os.symlink(release / 'run', launcher / 'imchat-run')
    shell = subprocess.run(['bash', '-c', 'nohup ./bin/imchat-run >>./log.log 2>&1 & echo $!'],
                           cwd=tmp_path, capture_output=True, text=True, timeout=10,
                           env=release_env(port, database_url))
    pid = int(shell.stdout.strip())
    base = 'http://127.0.0.1:{}'.format(port)
    try:
        wait_healthy(base, lambda: not process_gone(pid))
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.3)
        assert not process_gone(pid), 'a hangup stopped the server'
        assert http(base + '/healthz')[0] == 200
    finally:
        if not process_gone(pid):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not process_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)
            raise AssertionError('still running 10 s after SIGTERM')
    text = (tmp_path / 'log.log').read_text()
    check_log(text, database_url, port)
    assert 'imchat stopped' in text
    assert (tmp_path / 'db' / 'imchat.db').exists()


def test_release_stops_cleanly_on_sigint(release, tmp_path):
    port = free_port()
    database_url = 'sqlite:///{}'.format(tmp_path / 'imchat.db')
    server = subprocess.Popen([str(release / 'run')], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=release_env(port, database_url))
    try:
        wait_healthy('http://127.0.0.1:{}'.format(port), lambda: server.poll() is None)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0
    assert 'SIGINT received' in server.stdout.read().decode()


def _idle_keep_alive_connection(port):
    idle = socket.create_connection(('127.0.0.1', port))
    idle.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    assert idle.recv(4096).startswith(b'HTTP/1.1 200')
    return idle


def _wait_for_log(path, text, seconds=10):
    wait_for(lambda: text in path.read_text(), seconds, '{!r} logged'.format(text))


def test_release_stops_accepting_at_once_and_is_bounded_by_an_idle_connection(release,
                                                                              tmp_path):
    """After SIGTERM no new connection is accepted; a browser's idle keep-alive
    connection holds the exit up at most IMCHAT_SHUTDOWN_TIMEOUT."""
    port = free_port()
    database_url = 'sqlite:///{}'.format(tmp_path / 'imchat.db')
    log_path = tmp_path / 'log.log'
    with open(log_path, 'ab') as log:
        server = subprocess.Popen([str(release / 'run')], cwd=tmp_path, stdout=log,
                                  stderr=subprocess.STDOUT,
                                  env=release_env(port, database_url,
                                                  IMCHAT_SHUTDOWN_TIMEOUT='3'))
    idle = None
    try:
        wait_healthy('http://127.0.0.1:{}'.format(port), lambda: server.poll() is None)
        idle = _idle_keep_alive_connection(port)
    finally:
        server.send_signal(signal.SIGTERM)
    try:
        _wait_for_log(log_path, 'stopped accepting connections')
        assert server.poll() is None, 'the idle connection should hold the exit up a little'
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(('127.0.0.1', port), timeout=2).close()
        # Exits by itself, the idle connection still open on this side: held up for
        # IMCHAT_SHUTDOWN_TIMEOUT (3 s), not for as long as the connection lasts.
        code = server.wait(timeout=3 + 3)
    finally:
        if server.poll() is None:
            server.kill()
        if idle is not None:
            idle.close()
    assert code == 0
    check_log(log_path.read_text(), database_url, port)


def test_a_second_signal_exits_at_once(release, tmp_path):
    port = free_port()
    log_path = tmp_path / 'log.log'
    with open(log_path, 'ab') as log:
        server = subprocess.Popen([str(release / 'run')], cwd=tmp_path, stdout=log,
                                  stderr=subprocess.STDOUT,
                                  env=release_env(port, 'sqlite:///{}'.format(
                                      tmp_path / 'imchat.db'), IMCHAT_SHUTDOWN_TIMEOUT='60'))
    idle = None
    try:
        wait_healthy('http://127.0.0.1:{}'.format(port), lambda: server.poll() is None)
        idle = _idle_keep_alive_connection(port)
        server.send_signal(signal.SIGTERM)
        _wait_for_log(log_path, 'stopped accepting connections')
        assert server.poll() is None
        server.send_signal(signal.SIGINT)
        # At once: the idle connection would hold it up for IMCHAT_SHUTDOWN_TIMEOUT (60 s).
        assert server.wait(timeout=5) == 1
    finally:
        if server.poll() is None:
            server.kill()
        if idle is not None:
            idle.close()
    assert 'SIGINT received during shutdown: exiting now' in log_path.read_text()


def test_run_reads_env_file_and_the_environment_wins(release, tmp_path):
    copy = tmp_path / 'release'
    shutil.copytree(release, copy, symlinks=True)
    port, other_port = free_port(), free_port()
    (copy / 'env').write_text(
        '# a comment\n\nIMCHAT_PORT={}\r\nIMCHAT_LOG_LEVEL=WARNING\n'
        'IMCHAT_DATABASE_URL=sqlite:///from-env-file.db\n'.format(port))
    env = release_env(other_port, 'unused')
    del env['IMCHAT_PORT'], env['IMCHAT_DATABASE_URL']
    env['IMCHAT_LOG_LEVEL'] = 'INFO'
    server = subprocess.Popen([str(copy / 'run')], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env)
    try:
        wait_healthy('http://127.0.0.1:{}'.format(port), lambda: server.poll() is None)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=10)
    assert code == 0
    out = server.stdout.read().decode()
    # INFO from the environment beat WARNING from the file; the file gave port and db.
    assert 'listening on http://127.0.0.1:{}'.format(port) in out
    assert (copy / 'from-env-file.db').exists()


def test_run_refuses_a_malformed_env_file(release, tmp_path):
    copy = tmp_path / 'release'
    shutil.copytree(release, copy, symlinks=True)
    (copy / 'env').write_text('IMCHAT_PORT=8080\nthis is not a setting\n')
    result = subprocess.run([str(copy / 'run')], capture_output=True, text=True, timeout=30,
                            env=release_env(free_port(), 'sqlite:///x.db'))
    assert result.returncode == 1
    assert 'env line 2' in result.stderr


def test_run_makes_its_venv_once_and_reinstalls_when_requirements_change(release, tmp_path):
    """The first-start path without the network: a release whose requirements.txt is
    empty makes .venv, installs nothing, and notes what it installed."""
    copy = tmp_path / 'release'
    shutil.copytree(release, copy, symlinks=True)
    (copy / 'requirements.txt').write_text('# nothing to install\n')
    env = release_env(free_port(), 'sqlite:///x.db', PYTHON=sys.executable,
                      PIP_NO_INDEX='1')
    del env['IMCHAT_VENV']

    def install():
        result = subprocess.run([str(copy / 'run'), '--install-only'], capture_output=True,
                                text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = install()
    assert 'creating the virtual environment' in first and 'installing' in first
    assert os.access(copy / '.venv' / 'bin' / 'python', os.X_OK)
    for line in first.splitlines():
        assert LOG_LINE.match(line), line
    assert 'installing' not in install()
    (copy / 'requirements.txt').write_text('# nothing to install, changed\n')
    again = install()
    assert 'installing' in again and 'creating' not in again


def _start_release(release, tmp_path, port, database_url, log_name='log.log'):
    log = open(tmp_path / log_name, 'ab')
    server = subprocess.Popen([str(release / 'run')], cwd=tmp_path, stdout=log,
                              stderr=subprocess.STDOUT, env=release_env(port, database_url))
    log.close()
    wait_healthy('http://127.0.0.1:{}'.format(port), lambda: server.poll() is None)
    return server


def _stop(server, sig=signal.SIGTERM, within=10):
    server.send_signal(sig)
    try:
        return server.wait(timeout=within)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError('still running {} s after {}'.format(within, sig))


def test_sigterm_closes_websockets_going_away_and_keeps_every_acknowledged_message(
        release, tmp_path):
    """SIGTERM while a client is sending: it gets close code 1001, and each message it
    had an acknowledgement for is in the history after a restart."""
    from tests.wsclient import ChatClient, ConnectionClosed

    port = free_port()
    database_url = 'sqlite:///{}'.format(tmp_path / 'imchat.db')
    base = 'http://127.0.0.1:{}'.format(port)
    server = _start_release(release, tmp_path, port, database_url)
    try:
        users = []
        for mobile in ('13900000011', '13900000012'):
            status, _, body = http(base + '/user/register',
                                   {'mobile': mobile, 'passwd': 'secret-pass'})
            assert status == 200, body
            users.append(json.loads(body)['data'])
        sender, receiver = users
        request = urllib.request.Request(
            base + '/contact/addfriend', urllib.parse.urlencode({'dstid': receiver['id']}).encode(),
            headers={'Authorization': 'Bearer ' + sender['token']})
        assert urllib.request.urlopen(request, timeout=5).status == 200
        client = ChatClient('ws://127.0.0.1:{}/chat?id={}&token={}'.format(
            port, sender['id'], sender['token']))
        for n in range(50):
            client.text(receiver['id'], 'message {}'.format(n))
        # The first acknowledgement, then the signal while the rest are in flight.
        first = client.recv_ack()
        assert first['code'] == 0, first
        acknowledged = [first['msgid']]
        metrics = http(base + '/metrics')[2].decode()
        assert re.search(r'^imchat_connections_open(\{node="[^"]*"\})? 1$', metrics, re.M)
        assert int(re.search(r'^imchat_messages_stored_total(\{node="[^"]*"\})? (\d+)$', metrics,
                             re.M).group(2)) >= 1
        server.send_signal(signal.SIGTERM)
        close_code = None
        while close_code is None:
            try:
                frame = client.recv(timeout=10)
            except ConnectionClosed as closed:
                close_code = int.from_bytes(closed.args[0][:2], 'big')
                break
            if frame.get('cmd') == 1 and frame.get('code') == 0:
                acknowledged.append(frame['msgid'])
        assert close_code == 1001
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            _stop(server)

    server = _start_release(release, tmp_path, port, database_url, 'log2.log')
    try:
        status, _, body = http(base + '/chat/history?' + urllib.parse.urlencode(
            {'cmd': 10, 'dstid': sender['id'], 'limit': 100, 'token': receiver['token']}))
        assert status == 200, body
        stored = {row['msgid'] for row in json.loads(body)['rows']}
    finally:
        assert _stop(server) == 0
    assert set(acknowledged) <= stored
    text = (tmp_path / 'log.log').read_text()
    check_log(text, database_url, port)


NGINX = shutil.which('nginx') or ('/usr/sbin/nginx' if os.access('/usr/sbin/nginx', os.X_OK)
                                  else None)


def _site_for_test(release, listen_port, app_port, log_folder):
    """deploy/nginx-imchat.conf pointed at this test's ports, release folder and logs."""
    from tests.harness.nginx import site_for_test

    with open(os.path.join(ROOT, 'deploy', 'nginx-imchat.conf')) as f:
        return site_for_test(f.read(), listen_port, ['127.0.0.1:{}'.format(app_port)],
                             log_folder, root=release)


@pytest.mark.skipif(NGINX is None, reason='nginx is not installed (apt-get install nginx-core)')
def test_nginx_sample_proxies_pages_static_files_and_the_websocket(release, tmp_path):
    from tests.wsclient import ChatClient

    app_port, nginx_port = free_port(), free_port()
    (tmp_path / 'site.conf').write_text(_site_for_test(release, nginx_port, app_port, tmp_path))
    mime = '/etc/nginx/mime.types'
    (tmp_path / 'nginx.conf').write_text('\n'.join([
        'user root;', 'pid {0}/nginx.pid;', 'error_log {0}/error.log;', 'events {{}}',
        'http {{', '    access_log off;',
        '    include {};'.format(mime) if os.path.exists(mime) else '',
        '    client_body_temp_path {0}/body;', '    proxy_temp_path {0}/proxy;',
        '    fastcgi_temp_path {0}/fastcgi;', '    uwsgi_temp_path {0}/uwsgi;',
        '    scgi_temp_path {0}/scgi;', '    include {0}/site.conf;', '}}', '']).format(tmp_path))
    checked = subprocess.run([NGINX, '-t', '-c', str(tmp_path / 'nginx.conf'), '-p',
                              str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr

    server = _start_release(release, tmp_path, app_port, 'sqlite:///{}'.format(
        tmp_path / 'imchat.db'))
    nginx = subprocess.Popen([NGINX, '-c', str(tmp_path / 'nginx.conf'), '-p', str(tmp_path),
                              '-g', 'daemon off;'], stderr=subprocess.PIPE)
    base = 'http://127.0.0.1:{}'.format(nginx_port)
    try:
        wait_healthy(base, lambda: nginx.poll() is None)
        status, headers, _ = http(base + '/user/login.shtml')
        assert status == 200 and headers['Content-Type'].startswith('text/html')

        # A static file comes from the release folder through nginx's own `expires`.
        asset = sorted(p for p in (release / 'asset').rglob('*') if p.is_file())[0]
        status, headers, body = http(base + '/asset/' + str(asset.relative_to(
            release / 'asset')))
        assert status == 200 and body == asset.read_bytes()
        assert headers['Cache-Control'] == 'max-age=604800'

        status, _, body = http(base + '/user/register', {'mobile': '13900000021',
                                                          'passwd': 'secret-pass'})
        assert status == 200, body
        user = json.loads(body)['data']
        client = ChatClient('ws://127.0.0.1:{}/chat?id={}&token={}'.format(
            nginx_port, user['id'], user['token']))
        # Through the upgrade and back: a frame to a stranger is refused with an ack.
        frame_id = client.text(999999, 'hello through nginx')
        ack = client.recv_ack()
        assert ack['id'] == frame_id and ack['code'] == -1
        client.ws.close()
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        assert _stop(server) == 0
    # nginx logged the WebSocket without its query, so without the token.
    logged = (tmp_path / 'imchat.access.log').read_text()
    assert '"GET /chat HTTP/1.1" 101' in logged and user['token'] not in logged


SYSTEMD_ANALYZE = shutil.which('systemd-analyze')


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason='systemd-analyze is not installed')
def test_systemd_unit_is_valid(release, tmp_path):
    with open(os.path.join(ROOT, 'deploy', 'imchat.service')) as f:
        unit = f.read()
    assert 'ExecStart=/opt/imchat/run\n' in unit and 'KillSignal=SIGTERM\n' in unit
    # Verified against a real release, since systemd checks that ExecStart exists.
    (tmp_path / 'imchat.service').write_text(unit.replace('/opt/imchat', str(release)))
    result = subprocess.run([SYSTEMD_ANALYZE, 'verify', str(tmp_path / 'imchat.service')],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == '', result.stderr


@pytest.mark.parametrize('setting, value, says', [
    ('IMCHAT_PORT', 'eighty', "IMCHAT_PORT='eighty' is not valid"),
    ('IMCHAT_LOG_LEVEL', 'LOUD', "Unknown level: 'LOUD'"),
    ('IMCHAT_DATABASE_URL', 'postgres://db/imchat', "unsupported database URL scheme"),
])
def test_a_start_that_fails_logs_why_and_exits_1(release, tmp_path, setting, value, says):
    env = release_env(free_port(), 'sqlite:///{}'.format(tmp_path / 'imchat.db'))
    env[setting] = value
    result = subprocess.run([str(release / 'run')], capture_output=True, text=True,
                            timeout=30, env=env)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    assert any(' CRITICAL cannot start: ' in line and says in line for line in lines), lines


def test_a_port_in_use_is_a_failed_start(release, tmp_path):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(release / 'run')], capture_output=True, text=True,
                                timeout=30, env=release_env(port, 'sqlite:///{}'.format(
                                    tmp_path / 'imchat.db')))
    assert result.returncode == 1
    assert 'CRITICAL cannot start: OSError' in result.stdout + result.stderr
    assert 'Address already in use' in result.stdout + result.stderr


def _operator(copy, *args):
    """`flask --app wsgi admin ...` as docs/contacts.md says to run it: in the release
    folder, with its `env` (and the virtual environment `run` uses)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('IMCHAT_') and k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env['VENV'] = sys.prefix
    script = 'set -a; . ./env; set +a; exec "$VENV/bin/flask" --app wsgi admin "$@"'
    return subprocess.run(['bash', '-c', script, 'operator', *args], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_operators_admin_commands_act_on_the_running_release(release, tmp_path):
    """A release started with its `env`; `admin find` and `admin ban` run beside it find
    the user in the same database, and the ban closes their open socket (4401) and
    refuses their login."""
    from tests.wsclient import ChatClient

    copy = tmp_path / 'release'
    shutil.copytree(release, copy, symlinks=True)
    port = free_port()
    (copy / 'env').write_text('IMCHAT_PORT={}\nIMCHAT_DATABASE_URL=sqlite:///data/imchat.db\n'
                              'IMCHAT_PASSWD_COST=4\nIMCHAT_LOG_LEVEL=INFO\n'.format(port))
    (copy / 'data').mkdir()
    env = release_env(port, 'unused')
    del env['IMCHAT_PORT'], env['IMCHAT_DATABASE_URL']
    base = 'http://127.0.0.1:{}'.format(port)
    with open(tmp_path / 'log.log', 'wb') as log:
        server = subprocess.Popen([str(copy / 'run')], cwd=tmp_path, stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
    client = None
    try:
        wait_healthy(base, lambda: server.poll() is None)
        status, _, body = http(base + '/user/register',
                               {'mobile': '13900000031', 'passwd': 'secret-pass'})
        assert status == 200, body
        user = json.loads(body)['data']
        client = ChatClient('ws://127.0.0.1:{}/chat?id={}&token={}'.format(
            port, user['id'], user['token']), timeout=10)
        # Answered only once the server has registered the connection.
        client.send(cmd=12, target=10, dstid=user['id'], msgid=0)
        client.recv_ack(10)

        found = _operator(copy, 'find', '13900000031')
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)['id'] == user['id']
        banned = _operator(copy, 'ban', str(user['id']), '--reason', 'spam', '--by', 'ops')
        assert banned.returncode == 0, banned.stderr
        assert 'banned user {} (1 logins ended)'.format(user['id']) in banned.stdout
        assert 'admin ops: ban user {}'.format(user['id']) in banned.stderr
        client.ignore.add(17)
        assert client.close_code(30)[0] == 4401
        status, _, body = http(base + '/user/login',
                               {'mobile': '13900000031', 'passwd': 'secret-pass'})
        assert status == 403 and json.loads(body)['reason'] == 'auth.banned'
        missing = _operator(copy, 'find', '19999999999')
        assert missing.returncode == 1 and 'no user' in missing.stderr
    finally:
        if client is not None:
            client.close()
        if server.poll() is None:
            _stop(server)
