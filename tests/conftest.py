"""Fixtures shared by the whole suite.

Every test that touches storage runs twice, on SQLite (a file in a temp folder) and
on MySQL (a throw-away database on IMCHAT_TEST_MYSQL, MariaDB on 127.0.0.1 here).
IMCHAT_TEST_BACKENDS=sqlite (or mysql) narrows the run to one. When MySQL does not
answer, its tests are skipped, except under CI=true, where they fail.

Markers (registered in pytest.ini):
`process` for a test that starts a process (a server, nginx, redis-server, a build, a
compiler), `browser` for one driving chromium (it starts processes too), `slow` for
one that takes many seconds even alone. `-m "not process and not slow"` is the fast
part. A test is marked `browser` and `process` by the fixtures it uses; one that
starts a process any other way must say `process` itself, and the guard below fails
it, naming the marker, when it does not.
"""
from gevent import monkey

monkey.patch_all()

import itertools  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import pymysql  # noqa: E402
import pytest  # noqa: E402

from imchat import create_app  # noqa: E402
from tests.harness.databases import Templates  # noqa: E402
from tests.harness.live import LiveServer  # noqa: E402
from tests.harness.server import legacy_contacts_environ  # noqa: E402

# The original's contacts for the suite before issue 22 (tests/harness/server.py says
# why), here for the apps of this process; the defaults for tests/test_safety*.
SAFETY_DEFAULTS = {'FRIEND_REQUESTS': True, 'DEFAULT_JOINMODE': 'approval', 'JOINS_PER_HOUR': 20}
for _name, _value in legacy_contacts_environ().items():
    os.environ.setdefault(_name, _value)

MYSQL_SERVER = os.environ.get('IMCHAT_TEST_MYSQL', 'mysql://root@127.0.0.1:3306')
BACKENDS = [b.strip() for b in os.environ.get('IMCHAT_TEST_BACKENDS', 'sqlite,mysql').split(',')
            if b.strip()]
# A low scrypt cost keeps the suite fast; test_passwd.py checks the real default.
FAST_PASSWD_COST = 4

_mobiles = itertools.count(13800000000)

# Fixtures that start a process: a test using one (directly or through another fixture)
# is marked `process`; `browser` marks `browser` too.
PROCESS_FIXTURES = {'browser', 'server', 'release', 'oss_process', 'server_process',
                    'small_server', 'start_node', 'start_nodes', 'start_nginx', 'cluster',
                    'dev_server', 'tiny_disk', 'load'}
BROWSER_FIXTURES = {'browser'}


# Modules whose every test starts a process, and that are slow to import (Playwright,
# a picture drawn at import): not even imported when the -m expression leaves out every
# test that starts a process, so the fast part collects fast.
PROCESS_ONLY_MODULES = ('test_browser.py', 'test_browser_events.py')


def pytest_ignore_collect(collection_path, config):
    if collection_path.name not in PROCESS_ONLY_MODULES:
        return None
    markexpr = config.getoption('markexpr')
    if not markexpr:
        return None
    from _pytest.mark.expression import Expression
    expression = Expression.compile(markexpr)
    kinds = [{'process'}, {'process', 'browser'}, {'process', 'slow'},
             {'process', 'browser', 'slow'}]
    if any(expression.evaluate(lambda name, marks=marks: name in marks) for marks in kinds):
        return None
    return True


def pytest_addoption(parser):
    parser.addoption('--shard', default=None, metavar='K/N',
                     help='run only the K-th of N equal shares of the selected tests '
                          '(tests/fast.py runs N of them at once)')


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, 'fixturenames', ()))
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if used & PROCESS_FIXTURES or item.get_closest_marker('browser'):
            item.add_marker(pytest.mark.process)
    shard = config.getoption('shard')
    if shard:
        index, count = (int(part) for part in shard.split('/'))
        if not 1 <= index <= count:
            raise pytest.UsageError('--shard K/N needs 1 <= K <= N, not {}'.format(shard))
        # Every N-th test, so each share gets its part of every module's slow tests.
        kept = [item for n, item in enumerate(items) if n % count == index - 1]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def _processes_only_when_marked(request, monkeypatch):
    """A test not marked `process` may not start one, so `-m "not process"` stays fast
    and needs nothing but Python (and the databases)."""
    if request.node.get_closest_marker('process'):
        return
    def refuse(self, args, *rest, **named):
        raise AssertionError('{} starts a process ({!r}): mark it @pytest.mark.process, or '
                             'use a fixture that does'.format(request.node.nodeid, args))
    monkeypatch.setattr(subprocess.Popen, '_execute_child', refuse)


def _mysql_params():
    parts = urlsplit(MYSQL_SERVER)
    return {'host': parts.hostname or '127.0.0.1', 'port': parts.port or 3306,
            'user': parts.username or 'root', 'password': parts.password or ''}


def _mysql_admin():
    return pymysql.connect(charset='utf8mb4', ssl_disabled=True, connect_timeout=3,
                           **_mysql_params())


@pytest.fixture(scope='session')
def mysql_reachable():
    try:
        _mysql_admin().close()
        return True
    except pymysql.err.OperationalError as error:
        return error


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path, mysql_reachable):
    """A fresh, empty database for one test."""
    if request.param == 'sqlite':
        yield 'sqlite:///{}'.format(tmp_path / 'imchat.db')
        return
    if mysql_reachable is not True:
        message = 'MySQL at {} is not reachable: {}'.format(MYSQL_SERVER, mysql_reachable)
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    name = 'imchat_test_' + uuid.uuid4().hex[:12]
    params = _mysql_params()
    yield 'mysql://{}:{}@{}:{}/{}'.format(params['user'], params['password'], params['host'],
                                          params['port'], name)
    con = _mysql_admin()
    try:
        con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(name))
    finally:
        con.close()


@pytest.fixture
def app_config(database_url, tmp_path, request):
    """The config a test's app is built with; a test may change it before `app`, or
    give its own settings: @pytest.mark.parametrize('app_config', [{...}], indirect=True)."""
    config = {'DATABASE_URL': database_url, 'PASSWD_COST': FAST_PASSWD_COST,
              'UPLOAD_DIR': str(tmp_path / 'mnt'), 'LOG_LEVEL': 'WARNING'}
    config.update(getattr(request, 'param', {}))
    return config


@pytest.fixture(scope='session')
def templates(tmp_path_factory):
    """Schema-ready databases copied for each test's app (tests/harness/databases.py)."""
    made = Templates(str(tmp_path_factory.mktemp('templates')), _mysql_admin)
    yield made
    made.close()


@pytest.fixture
def app(app_config, templates):
    templates.prepare(app_config['DATABASE_URL'])
    app = create_app(app_config)
    app.config['TESTING'] = True
    yield app
    app.extensions['imchat'].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Account:
    def __init__(self, data, passwd):
        self.data = data
        self.id = data['id']
        self.token = data['token']
        self.mobile = data['mobile']
        self.passwd = passwd

    @property
    def headers(self):
        return {'Authorization': 'Bearer ' + self.token}


class Auth:
    """Registers and logs in users through the real HTTP API."""

    def __init__(self, client):
        self.client = client

    def register(self, mobile=None, passwd='secret-pass', **profile):
        mobile = mobile or str(next(_mobiles))
        response = self.client.post('/user/register',
                                    data=dict(mobile=mobile, passwd=passwd, **profile))
        assert response.status_code == 200, response.json
        self._forget_cookie()
        return Account(response.json['data'], passwd)

    def login(self, account):
        response = self.client.post('/user/login',
                                    data={'mobile': account.mobile, 'passwd': account.passwd})
        assert response.status_code == 200, response.json
        self._forget_cookie()
        return Account(response.json['data'], account.passwd)

    def _forget_cookie(self):
        # Tests act as a client that sends its token (each Account its own); the login
        # cookie, for clients that send none, is tested on its own (test_user.py).
        self.client.delete_cookie('imchat_token', domain='localhost', path='/')

    def befriend(self, a, b):
        response = self.client.post('/contact/addfriend', data={'dstid': b.id}, headers=a.headers)
        assert response.status_code == 200, response.json

    def create_community(self, owner, name='group'):
        response = self.client.post('/contact/createcommunity', data={'name': name},
                                    headers=owner.headers)
        assert response.status_code == 200, response.json
        return response.json['data']

    def join(self, account, community_id):
        response = self.client.post('/contact/joincommunity', data={'dstid': community_id},
                                    headers=account.headers)
        assert response.status_code == 200, response.json


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    yield server
    server.close()
