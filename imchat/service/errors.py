"""Domain errors. Each carries the HTTP status that fits it; one handler in `ctrl`
turns any of them into the JSON envelope."""


class ServiceError(Exception):
    status = 400

    def __init__(self, msg, field=None):
        super().__init__(msg)
        self.msg = msg
        self.field = field


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


class TooManyRequests(ServiceError):
    status = 429


class Unavailable(ServiceError):
    status = 503
