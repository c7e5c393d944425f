"""The server's VAPID identity (RFC 8292): one P-256 key pair for the deployment, made
at first start and kept in the database so every node signs with it (or given by
IMCHAT_VAPID_PRIVATE_KEY), and the signed JWT a push service checks.

A JWT is signed once per push service origin and reused for half its life: signing
on every push would cost an ECDSA signature each.
"""
import json
import logging
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pony.orm import db_session

from imchat.service.push.crypto import b64url_decode, b64url_encode, public_point
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)

# RFC 8292: `exp` at most 24 hours ahead; ours 12, renewed after 6.
JWT_LIFE = 12 * 3600
JWT_RENEW = 6 * 3600
KEY_NAME = 'vapid'


def private_key_from_text(text: str) -> ec.EllipticCurvePrivateKey:
    """The key from its base64url raw 32-byte scalar (what web-push tools print) or a
    PEM. Raises ValueError."""
    text = text.strip()
    if text.startswith('-----BEGIN'):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(text.encode('ascii'), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError('the VAPID key must be an EC P-256 key')
        return key
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError('a VAPID private key is 32 bytes, base64url')
    return ec.derive_private_key(int.from_bytes(raw, 'big'), ec.SECP256R1())


def private_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url_encode(key.private_numbers().private_value.to_bytes(32, 'big'))


def load_or_create(db, configured: str = '') -> ec.EllipticCurvePrivateKey:
    """The deployment's key: `configured`, else the stored one, else a new one stored
    (several nodes starting at once: the first insert wins, the others read it)."""
    if configured:
        return private_key_from_text(configured)
    for _ in range(3):
        try:
            with db_session:
                row = db.PushKey.get(name=KEY_NAME)
                if row is not None:
                    return private_key_from_text(row.private)
                key = ec.generate_private_key(ec.SECP256R1())
                db.PushKey(name=KEY_NAME, private=private_key_text(key), createat=now_ms())
            log.info('push: made a new VAPID key pair (kept in the database)')
            return key
        except Exception as error:
            log.debug('push: storing the VAPID key raced another node: %s', error)
    raise RuntimeError('could not read or store the VAPID key')


class Vapid:
    """Signs the Authorization header for a push service origin."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, subject: str):
        self.key = key
        self.subject = subject
        self.public = b64url_encode(public_point(key.public_key()))
        self._signed = {}  # audience -> (renew at, header)

    def header(self, audience: str) -> str:
        """`vapid t=<JWT>, k=<public key>` for a push service at `audience`
        (scheme://host[:port]). CPU-bound on a miss: call it in the thread pool."""
        now = time.time()
        cached = self._signed.get(audience)
        if cached is not None and now < cached[0]:
            return cached[1]
        claims = {'aud': audience, 'exp': int(now) + JWT_LIFE, 'sub': self.subject}
        signing_input = (_segment({'typ': 'JWT', 'alg': 'ES256'}) + '.'
                         + _segment(claims)).encode('ascii')
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, 'big') + s.to_bytes(32, 'big')
        value = 'vapid t={}.{}, k={}'.format(signing_input.decode('ascii'),
                                             b64url_encode(signature), self.public)
        if len(self._signed) > 1000:
            self._signed.clear()
        self._signed[audience] = (now + JWT_RENEW, value)
        return value


def _segment(obj) -> str:
    return b64url_encode(json.dumps(obj, separators=(',', ':')).encode('utf-8'))
