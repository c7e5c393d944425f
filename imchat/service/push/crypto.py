"""Message encryption for Web Push (RFC 8291) in the aes128gcm content coding
(RFC 8188), with `cryptography` directly: one record, no padding beyond the delimiter.

CPU-bound (an ECDH key pair and exchange per push): the sender calls it in gevent's
thread pool.
"""
import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# One record holds the whole payload (payloads stay under 3,000 bytes).
RECORD_SIZE = 4096
# What an aes128gcm body adds to the payload: salt 16, rs 4, idlen 1, key 65, the
# padding delimiter 1 and the GCM tag 16.
OVERHEAD = 103


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    # HKDF (RFC 5869) with SHA-256; every output here fits one HMAC block.
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b'\x01', hashlib.sha256).digest()[:length]


def public_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def load_point(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its uncompressed point; ValueError when it is none."""
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError('not an uncompressed P-256 point')
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def encrypt(payload: bytes, p256dh: str, auth: str, server_key=None, salt=None) -> bytes:
    """The aes128gcm body carrying `payload` to the subscription whose keys are
    `p256dh` and `auth` (base64url). `server_key` and `salt` are fresh unless given
    (RFC 8291's example fixes them)."""
    ua_raw = b64url_decode(p256dh)
    ua_public = load_point(ua_raw)
    auth_secret = b64url_decode(auth)
    server_key = server_key or ec.generate_private_key(ec.SECP256R1())
    salt = salt or os.urandom(16)
    as_raw = public_point(server_key.public_key())
    shared = server_key.exchange(ec.ECDH(), ua_public)
    ikm = _hkdf(auth_secret, shared, b'WebPush: info\x00' + ua_raw + as_raw, 32)
    cek = _hkdf(salt, ikm, b'Content-Encoding: aes128gcm\x00', 16)
    nonce = _hkdf(salt, ikm, b'Content-Encoding: nonce\x00', 12)
    sealed = AESGCM(cek).encrypt(nonce, payload + b'\x02', None)
    header = salt + RECORD_SIZE.to_bytes(4, 'big') + bytes([len(as_raw)]) + as_raw
    return header + sealed
