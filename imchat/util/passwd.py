"""Password hashing with scrypt from the standard library.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` so the cost can be
raised later without invalidating old hashes: each hash carries its own parameters.
"""
import hashlib
import hmac
import secrets

# n=2**14, r=8, p=1 is the interactive-login setting recommended by the scrypt paper
# and OWASP: about 16 MiB and a few tens of milliseconds per hash.
DEFAULT_COST = 14
_R = 8
_P = 1
_DKLEN = 32
_SALT_BYTES = 16


def make_passwd(plain, cost=DEFAULT_COST):
    salt = secrets.token_bytes(_SALT_BYTES)
    n = 1 << cost
    digest = _scrypt(plain, salt, n, _R, _P)
    return 'scrypt${}${}${}${}${}'.format(n, _R, _P, salt.hex(), digest.hex())


def check_passwd(plain, stored):
    try:
        scheme, n, r, p, salt, digest = stored.split('$')
        if scheme != 'scrypt':
            return False
        expected = bytes.fromhex(digest)
        actual = _scrypt(plain, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(expected, actual)


def _scrypt(plain, salt, n, r, p):
    return hashlib.scrypt(plain.encode('utf-8'), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + (1 << 20), dklen=_DKLEN)
