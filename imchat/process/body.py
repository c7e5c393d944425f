"""A request body's deadline (the door's, `imchat.process.door`).

pywsgi waits for a body as long as its client likes: one byte every 15 s held a
connection (and with an upgrade header, a handshake slot) for ever, and 200 of them
filled a server of 300 files. Here a body must arrive within `IMCHAT_BODY_TIMEOUT`
seconds of its headers, and one more second per BODY_MIN_RATE bytes: a large upload on
a slow line still arrives; a trickle is cut off with 408.
"""
import time

import gevent
from werkzeug.exceptions import RequestTimeout

# A body is given IMCHAT_BODY_TIMEOUT seconds, and one more for each of this many bytes:
# a 10 MB upload on a slow line still arrives, one byte every few seconds does not.
BODY_MIN_RATE = 16 * 1024


class BodyTooSlow(RequestTimeout, OSError):
    """A request body past its deadline. The app sees a 408 (werkzeug turns it into a
    reply nobody reads: the client has had the door's 408 and the connection is shut);
    pywsgi, discarding the rest of the body, sees an OSError and lets the connection go."""


class BodyReader:
    """The connection's buffered reader while a request body is read: each read must end
    by the body's deadline, which starts `timeout` seconds after the headers and moves
    on one second per BODY_MIN_RATE bytes read. Past it the client gets 408, the
    connection is shut, and every later read finds its end."""

    __slots__ = ('rfile', 'handler', 'started', 'timeout', 'received', 'expired')

    def __init__(self, rfile, handler, timeout):
        self.rfile = rfile
        self.handler = handler
        self.started = time.monotonic()
        self.timeout = timeout
        self.received = 0
        self.expired = False

    def read(self, size=-1):
        return self._within_deadline(self.rfile.read, size)

    def readline(self, size=-1):
        return self._within_deadline(self.rfile.readline, size)

    def read1(self, size=-1):
        return self._within_deadline(self.rfile.read1, size)

    def _within_deadline(self, read, size):
        if self.expired:
            return b''
        left = self.started + self.timeout + self.received / BODY_MIN_RATE - time.monotonic()
        if left > 0:
            try:
                with gevent.Timeout(left):
                    data = read(size)
            except gevent.Timeout:
                pass
            else:
                self.received += len(data)
                return data
        self.expired = True
        self.handler.body_too_slow()
        raise BodyTooSlow()
