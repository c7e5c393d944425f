"""Domain errors. Each carries the HTTP status that fits it; one handler in `ctrl`
turns any of them into the JSON envelope."""


class ServiceError(Exception):
    status = 400

    def __init__(self, msg, field=None, reason=None):
        super().__init__(msg)
        self.msg = msg
        self.field = field
        # A stable machine word for the reply (e.g. push.disabled), beside `msg`.
        self.reason = reason


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class TooManyRequests(ServiceError):
    status = 429


class BadGateway(ServiceError):
    """A service we depend on answered but refused (OSS: wrong credentials, no bucket)."""
    status = 502


class Unavailable(ServiceError):
    """A service we depend on could not be reached or written (OSS down, disk full)."""
    status = 503
