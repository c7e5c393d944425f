"""HTTP for the tests: one request helper, and accounts made through the real API of
a server process (or of nginx in front of several)."""
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid


def fetch(url, data=None, headers=None, timeout=10):
    """(status, headers, raw body) of a GET, or of a form POST when `data` is given (a
    dict, or bytes sent as they are). Error statuses are answers too."""
    if isinstance(data, dict):
        data = urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, data, headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def token_of(account):
    """The token of an account: a token itself, an API answer (a dict) or an object."""
    if account is None or isinstance(account, str):
        return account
    return account['token'] if isinstance(account, dict) else account.token


def http(url, data=None, headers=None, timeout=10, token=None):
    """(status, parsed JSON or text): `fetch` for the JSON API. `token` (or an account
    holding it) is sent as the bearer token."""
    token = token_of(token)
    if token:
        headers = dict(headers or {}, Authorization='Bearer ' + token)
    status, _, raw = fetch(url, data, headers, timeout)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode('utf-8', 'replace')


def healthy(base, timeout=3):
    """The parsed /healthz data of `base` when it answers 200, else None."""
    try:
        status, body = http(base + '/healthz', timeout=timeout)
    except OSError:
        return None
    return body['data'] if status == 200 else None


class User(dict):
    """An account as the API returned it, plus its password: read as user.id or
    user['id'] alike."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def chat_url(self, base_ws, **params):
        query = {'id': self['id'], 'token': self['token']}
        query.update(params)
        return '{}/chat?{}'.format(base_ws, urllib.parse.urlencode(query))


class Api:
    """Accounts through the real HTTP API of one base URL."""

    def __init__(self, base):
        self.base = base

    def post(self, path, data=None, token=None, timeout=10):
        """(status, parsed body): for a call whose refusal is what is tested. `token` is
        a token or an account."""
        return http(self.base + path, data or {}, token=token, timeout=timeout)

    def call(self, path, data=None, token=None, timeout=10):
        """The `data` of a call that must succeed."""
        status, body = self.post(path, data, token, timeout)
        assert status == 200, (path, status, body)
        return body['data']

    def register(self, mobile, passwd='secret-pass', **profile):
        data = self.call('/user/register', dict(mobile=mobile, passwd=passwd, **profile))
        return User(data, mobile=mobile, passwd=passwd)

    def befriend(self, a, b):
        self.call('/contact/addfriend', {'dstid': b['id']}, a)

    def create_community(self, owner, name='group'):
        return self.call('/contact/createcommunity', {'name': name}, owner)['id']

    def join(self, user, community_id):
        self.call('/contact/joincommunity', {'dstid': community_id}, user)


def unique_mobiles(count):
    """Mobiles no other test run on this machine uses at the same time."""
    base = 13000000000 + int(uuid.uuid4().int % 900000000)
    return [str(base + i) for i in range(count)]
