"""Fixtures shared by the whole suite.

Every test that touches storage runs twice, on SQLite (a file in a temp folder) and
on MySQL (a throw-away database on IMCHAT_TEST_MYSQL, MariaDB on 127.0.0.1 here).
IMCHAT_TEST_BACKENDS=sqlite (or mysql) narrows the run to one. When MySQL does not
answer, its tests are skipped, except under CI=true, where they fail.
"""
from gevent import monkey

monkey.patch_all()

import itertools  # noqa: E402
import os  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import pymysql  # noqa: E402
import pytest  # noqa: E402

from imchat import create_app  # noqa: E402

# The suite before issue 22 tests the original's contacts: instant friends, open
# communities, no join limit. These compatibility settings keep it doing so (servers it
# starts as processes inherit them); tests/test_safety*.py pass the defaults explicitly.
LEGACY_CONTACTS = {'FRIEND_REQUESTS': False, 'DEFAULT_JOINMODE': 'open', 'JOINS_PER_HOUR': 0}
SAFETY_DEFAULTS = {'FRIEND_REQUESTS': True, 'DEFAULT_JOINMODE': 'approval', 'JOINS_PER_HOUR': 20}
for _name, _value in LEGACY_CONTACTS.items():
    os.environ.setdefault('IMCHAT_' + _name, str(int(_value)) if isinstance(_value, bool)
                          else str(_value))

MYSQL_SERVER = os.environ.get('IMCHAT_TEST_MYSQL', 'mysql://root@127.0.0.1:3306')
BACKENDS = [b.strip() for b in os.environ.get('IMCHAT_TEST_BACKENDS', 'sqlite,mysql').split(',')
            if b.strip()]
# A low scrypt cost keeps the suite fast; test_passwd.py checks the real default.
FAST_PASSWD_COST = 4

_mobiles = itertools.count(13800000000)


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
def app_config(database_url, tmp_path):
    """The config a test's app is built with; a test may change it before `app`."""
    return {'DATABASE_URL': database_url, 'PASSWD_COST': FAST_PASSWD_COST,
            'UPLOAD_DIR': str(tmp_path / 'mnt'), 'LOG_LEVEL': 'WARNING'}


@pytest.fixture
def app(app_config):
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


class LiveServer:
    """The app served by the production server (gevent pywsgi + gevent-websocket)."""

    def __init__(self, app, server):
        self.app = app
        self.server = server
        self.port = server.server_port
        self.url = 'http://127.0.0.1:{}'.format(self.port)

    def ws_url(self, account, **params):
        query = {'id': account.id, 'token': account.token}
        query.update(params)
        return 'ws://127.0.0.1:{}/chat?{}'.format(
            self.port, '&'.join('{}={}'.format(k, v) for k, v in query.items()))

    @property
    def hub(self):
        return self.app.extensions['imchat'].hub


@pytest.fixture
def live_server(app):
    from imchat.process.server import make_server

    server = make_server(app, '127.0.0.1', 0)
    server.start()
    yield LiveServer(app, server)
    app.extensions['imchat'].hub.close_all(timeout=1)
    server.stop(timeout=1)
