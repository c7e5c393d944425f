"""Domain errors. Each carries the HTTP status that fits it and a stable machine
`reason` (docs/protocol.md, "Error reasons"); one handler in `ctrl` turns any of them
into the JSON envelope.

`msg` is for people and may change; `reason` is for programs (a client shows its own
text for it, in the person's language) and never changes once shipped. A raise names
the specific reason (`NotFound('no user ...', reason='not_found.user')`); without one,
the class's general reason goes out, so every error reply carries one.
"""


class Refusal(str):
    """Why a frame is refused (its text, for people), with a machine `reason` for the
    acknowledgement (protocol.ack_refused)."""

    def __new__(cls, msg, reason):
        refusal = super().__new__(cls, msg)
        refusal.reason = reason
        return refusal


class ServiceError(Exception):
    status = 400
    reason = 'bad_request'

    def __init__(self, msg, field=None, reason=None):
        super().__init__(msg)
        self.msg = msg
        self.field = field
        if reason is not None:
            self.reason = reason


class BadRequest(ServiceError):
    status = 400
    reason = 'bad_request'


class Unauthorized(ServiceError):
    status = 401
    reason = 'unauthorized'


class Forbidden(ServiceError):
    status = 403
    reason = 'forbidden'


class NotFound(ServiceError):
    status = 404
    reason = 'not_found'


class Conflict(ServiceError):
    status = 409
    reason = 'conflict'


class TooLarge(ServiceError):
    status = 413
    reason = 'too_large'


class UnsupportedMediaType(ServiceError):
    status = 415
    reason = 'unsupported_media_type'


class TooManyRequests(ServiceError):
    status = 429
    reason = 'rate_limited'


class BadGateway(ServiceError):
    """A service we depend on answered but refused (OSS: wrong credentials, no bucket)."""
    status = 502
    reason = 'unavailable.upstream'


class Unavailable(ServiceError):
    """A service we depend on could not be reached or written (OSS down, disk full)."""
    status = 503
    reason = 'unavailable'
