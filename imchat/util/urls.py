"""The one rule for every URL a client may store (message `url`/`pic`, `avatar`, `icon`).

Allowed: `http://` or `https://` URLs, and paths on this server that start with exactly
one `/` (`/mnt/x.png`). Refused: every other scheme (`javascript:`, `data:`), and
`//host` or `/\\host`, which browsers read as another host. No spaces, control characters
(browsers drop tabs and newlines inside URLs, which would turn `/<tab>/host` into
`//host`), quotes, angle brackets or backslashes.
"""
import re

from imchat.util.bind import Field

_SAFE_CHARS = r'[^\x00-\x20\x7f<>"\\]'
URL_PATTERN = r'(?i:https?)://{0}+|/(?:(?![/\\]){0}{0}*)?'.format(_SAFE_CHARS)
_URL = re.compile(URL_PATTERN)
URL_HINT = 'must be an http(s) URL or a path on this server starting with one /'


def is_safe_url(value):
    """Whether `value` is an http(s) URL or a same-origin path (see the module)."""
    return bool(_URL.fullmatch(value))


def url_field(name, max_len):
    """A request field holding an optional URL under the same rule."""
    return Field(name, max_len=max_len, pattern=URL_PATTERN, pattern_hint=URL_HINT)
