"""Real nginx in front of server processes, in a temp prefix of its own, with the
shipped site (deploy/nginx-imchat.conf) changed only in its addresses."""
import os
import re
import shutil
import socket
import subprocess

import pytest

from tests.harness.server import ROOT, START_SECONDS
from tests.harness.wait import free_port, wait_for

NGINX_SITE = os.path.join(ROOT, 'deploy', 'nginx-imchat.conf')
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
        wait_for(answered, seconds, 'nginx listening')
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
