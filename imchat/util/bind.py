"""Request binding: turn the fields of a request into checked Python values.

Each field is declared once (name, type, limits); `bind` returns the clean values or
raises `BindError` naming the field and the reason, which the caller turns into a
400 reply. Works on any mapping, so it serves HTTP forms, JSON bodies and
WebSocket frames alike.
"""
import re

from imchat.util.jsonsafe import has_surrogate

# Every id and number the database stores is a signed 64-bit integer: a larger one
# would fail there (OverflowError on SQLite, out of range on MySQL), so it fails here.
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

class BindError(ValueError):
    """A request field that is missing or malformed; replies 400 with reason `invalid`
    and the field named."""
    reason = 'invalid'

    def __init__(self, field, problem):
        super().__init__('{}: {}'.format(field, problem))
        self.field = field
        self.problem = problem


_MISSING = object()


class Field:
    def __init__(self, name, kind=str, required=False, default=None, min_len=None,
                 max_len=None, pattern=None, pattern_hint=None, choices=None,
                 minimum=None, maximum=None, strip=True):
        self.name = name
        # False keeps leading and trailing spaces (passwords mean what the client sent).
        self.strip = strip
        self.kind = kind
        self.required = required
        self.default = default
        self.min_len = min_len
        self.max_len = max_len
        self.pattern = re.compile(pattern) if pattern else None
        self.pattern_hint = pattern_hint
        self.choices = choices
        self.minimum = minimum
        self.maximum = maximum

    def clean(self, raw):
        if raw is _MISSING or raw is None or (isinstance(raw, str) and raw.strip() == ''):
            if self.required:
                raise BindError(self.name, 'is required')
            return self.default
        if self.kind is int:
            return self._clean_int(raw)
        return self._clean_str(raw)

    def _clean_int(self, raw):
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise BindError(self.name, 'must be a whole number')
        if isinstance(raw, str):
            text = raw.strip()
            if not re.fullmatch(r'[+-]?[0-9]{1,19}', text):
                raise BindError(self.name, 'must be a whole number')
            raw = int(text)
        if not INT64_MIN <= raw <= INT64_MAX:
            raise BindError(self.name, 'must be between {} and {}'.format(
                INT64_MIN if self.minimum is None else self.minimum,
                INT64_MAX if self.maximum is None else self.maximum))
        if self.minimum is not None and raw < self.minimum:
            raise BindError(self.name, 'must be at least {}'.format(self.minimum))
        if self.maximum is not None and raw > self.maximum:
            raise BindError(self.name, 'must be at most {}'.format(self.maximum))
        return raw

    def _clean_str(self, raw):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            raise BindError(self.name, 'must be text')
        value = raw.strip() if self.strip else raw
        if '\x00' in value:
            raise BindError(self.name, 'must not contain NUL characters')
        if has_surrogate(value):
            raise BindError(self.name, 'must be valid Unicode text (a lone surrogate is not)')
        if self.min_len is not None and len(value) < self.min_len:
            raise BindError(self.name, 'must be at least {} characters'.format(self.min_len))
        if self.max_len is not None and len(value) > self.max_len:
            raise BindError(self.name, 'must be at most {} characters'.format(self.max_len))
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise BindError(self.name, self.pattern_hint or 'has an invalid format')
        if self.choices is not None and value not in self.choices:
            raise BindError(self.name, 'must be one of {}'.format(', '.join(self.choices)))
        return value


def bind(fields, source):
    """Return {field name: clean value} for `fields` read from the mapping `source`."""
    return {field.name: field.clean(source.get(field.name, _MISSING)) for field in fields}
