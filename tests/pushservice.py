"""A push service for the tests, on 127.0.0.1: what a browser vendor's would do with
imchat's pushes, checked with parts that are not imchat's own. It makes subscriptions
(a P-256 key pair and an auth secret each, as a browser does), and for every POST to
one it checks the VAPID Authorization header (RFC 8292: the ES256 signature against
`k`, `aud`, `exp`, `sub`), the TTL, Urgency and Content-Encoding headers, and decrypts
the aes128gcm body with the subscription's private key using http_ece (the library
pywebpush encrypts with). Each subscription answers from a script: 201 by default,
or 404, 410, 429, 503, a redirect, or 'stall' (no answer until `release`).
"""
import base64
import json
import time
from urllib.parse import urlsplit

import gevent
import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gevent.event import Event
from gevent.pywsgi import WSGIServer


def b64d(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def b64e(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


class Received:
    def __init__(self, subscription, headers, payload):
        self.subscription = subscription
        self.headers = headers
        self.payload = payload

    def __repr__(self):
        return '<push to {} {}>'.format(self.subscription, self.payload)


class PushService:
    def __init__(self, subject, public_key=None):
        self.subject = subject
        self.public_key = public_key  # the server's VAPID key, when known
        self.keys = {}      # n -> (private key, auth secret)
        self.scripts = {}   # n -> list of answers still to give
        self.received = []  # Received, in arrival order (accepted pushes only)
        self.requests = []  # (n, status) of every request
        self.errors = []    # what failed a check
        self.changed = Event()
        self.stalled = Event()
        self._release = Event()
        self.server = WSGIServer(('127.0.0.1', 0), self._app, log=None, error_log=None)
        self.server.start()
        self.origin = 'http://127.0.0.1:{}'.format(self.server.server_port)

    def close(self):
        self._release.set()
        self.server.stop(timeout=1)

    def subscription(self, *script):
        """A browser's PushSubscription as JSON; `script`: the answers it gives first."""
        n = len(self.keys) + 1
        key = ec.generate_private_key(ec.SECP256R1())
        auth = bytes(range(n, n + 16))
        self.keys[n] = (key, auth)
        self.scripts[n] = list(script)
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {'endpoint': '{}/push/{}'.format(self.origin, n),
                'keys': {'p256dh': b64e(public), 'auth': b64e(auth)}}

    def release(self):
        self._release.set()

    def wait(self, count, seconds=20):
        """The first `count` accepted pushes, once they are in."""
        deadline = time.monotonic() + seconds
        while len(self.received) < count:
            assert not self.errors, self.errors
            left = deadline - time.monotonic()
            assert left > 0, 'only {} pushes arrived: {}'.format(len(self.received),
                                                                 self.received)
            self.changed.clear()
            self.changed.wait(min(left, 0.5))
        assert not self.errors, self.errors
        return self.received[:count]

    def to(self, subscription):
        n = int(subscription['endpoint'].rsplit('/', 1)[1])
        return [r.payload for r in self.received if r.subscription == n]

    # -- the server ----------------------------------------------------------------

    def _app(self, environ, start_response):
        try:
            n = int(environ['PATH_INFO'].rsplit('/', 1)[1])
            body = environ['wsgi.input'].read()
            script = self.scripts.get(n, [])
            answer = script.pop(0) if script else 201
            if answer == 'stall':
                self.stalled.set()
                self._release.wait()
                answer = 201
            self.requests.append((n, answer))
            if answer == 201:
                payload = self._check(n, environ, body)
                self.received.append(Received(n, dict(_headers(environ)), payload))
        except Exception as error:
            self.errors.append(repr(error))
            answer = 400
        self.changed.set()
        headers = [('Content-Length', '0')]
        if answer in (301, 302, 307):
            headers.append(('Location', self.origin + '/elsewhere'))
        if answer == 429:
            headers.append(('Retry-After', '0'))
        start_response('{} X'.format(answer), headers)
        return [b'']

    def _check(self, n, environ, body):
        headers = dict(_headers(environ))
        assert headers.get('content-encoding') == 'aes128gcm', headers
        assert int(headers['ttl']) > 0, headers
        assert headers.get('urgency') in ('very-low', 'low', 'normal', 'high'), headers
        scheme, _, params = headers['authorization'].partition(' ')
        assert scheme == 'vapid', headers['authorization'][:10]
        fields = dict(part.strip().split('=', 1) for part in params.split(','))
        token, k = fields['t'], fields['k']
        if self.public_key is not None:
            assert k == self.public_key, 'signed with another key'
        header, claims, signature = token.split('.')
        assert json.loads(b64d(header)) == {'typ': 'JWT', 'alg': 'ES256'}
        raw = b64d(signature)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(k))
        try:
            public.verify(encode_dss_signature(int.from_bytes(raw[:32], 'big'),
                                               int.from_bytes(raw[32:], 'big')),
                          (header + '.' + claims).encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AssertionError('the VAPID signature does not verify')
        claims = json.loads(b64d(claims))
        assert claims['aud'] == self.origin, claims
        assert claims['sub'] == self.subject, claims
        assert time.time() < claims['exp'] <= time.time() + 24 * 3600, claims
        key, auth = self.keys[n]
        plain = http_ece.decrypt(body, private_key=key, auth_secret=auth, version='aes128gcm')
        assert len(plain) < 3000, len(plain)
        return json.loads(plain)


def _headers(environ):
    for name, value in environ.items():
        if name.startswith('HTTP_'):
            yield name[5:].lower().replace('_', '-'), value
        elif name in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            yield name.lower().replace('_', '-'), value


def endpoint_origin(subscription):
    parts = urlsplit(subscription['endpoint'])
    return '{}://{}'.format(parts.scheme, parts.netloc)
