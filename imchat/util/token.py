"""Login tokens: long random strings, stored only as their SHA-256.

A copy of the database therefore holds no usable token.
"""
import hashlib
import secrets

TOKEN_BYTES = 32


def new_token():
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_key(token):
    return hashlib.sha256(token.encode('utf-8')).hexdigest()
