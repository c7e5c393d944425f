"""Checks that make untrusted JSON safe to decode, and its text safe to store and send.

Two things in valid-looking JSON break a server that trusts its decoder: nesting deep
enough to exhaust a recursive decoder's stack (`'[' * 100000` makes the standard
library's decoder raise RecursionError, others crash or allocate without end), and
`\\ud800`-style escapes that decode to lone surrogates, which no UTF-8 encoder (nor
database, nor WebSocket) accepts. Both are checked here without decoding, or on the
decoded strings, so they hold whichever JSON library the caller uses.
"""
import re

# Deeper than anything imchat's frames or bodies need (they are flat objects), far
# shallower than any decoder's own limit.
MAX_DEPTH = 32

# A JSON string literal, written so the regex engine never backtracks inside one.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r'[\[\]{}]')
_SURROGATE = re.compile('[\ud800-\udfff]')


def nesting_exceeds(text, limit=MAX_DEPTH):
    """Whether the JSON `text` (valid or not) nests arrays and objects deeper than `limit`."""
    if text.count('[') + text.count('{') <= limit:
        return False  # cannot be deeper: the usual case costs two counts
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub('', text)):
        if bracket in '[{':
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False


def has_surrogate(text):
    """Whether the str `text` holds a lone surrogate (U+D800 to U+DFFF), which cannot be
    encoded as UTF-8."""
    return not text.isascii() and _SURROGATE.search(text) is not None
