"""Whether the database answers, and what the server does while it does not.

A database that is down or stalled is one fault, not one per request: the first call
that finds it so (a refused or timed-out connection, a query that times out) starts an
outage, logged once with its cause. During it the connection pool refuses at once (no
request, message or WebSocket waits for a database that does not answer), HTTP calls
answer 503, new WebSockets close with 1013 (try again later), messages are refused with
a `code: -1` ack, and each refusal is counted. A probe, on a fresh connection with a
short timeout, runs every PROBE_INTERVAL seconds (and on each /healthz) until the
database answers; the end of the outage is logged once, with the count.
"""
import logging
import socket
import sqlite3
import time

import gevent

from imchat.model.pool import DatabaseUnavailable, PoolExhausted

log = logging.getLogger('imchat')

PROBE_INTERVAL = 1.0
# Seconds a probe (and so /healthz) waits for the database at most.
PROBE_TIMEOUT = 2

# MySQL client and server errors that mean "no usable database", not "this statement
# is wrong": cannot connect (2002, 2003), gone or lost (2006, 2013, 2055), too many
# connections (1040), shutting down (1053), access denied for the configured user
# (1045), connection killed (1927).
MYSQL_UNAVAILABLE = {1040, 1045, 1053, 1927, 2002, 2003, 2006, 2013, 2055}
# SQLite errors of the same kind: another process holds the lock past the busy
# timeout, the file is gone or unreadable, the disk is full.
SQLITE_UNAVAILABLE = ('database is locked', 'database table is locked', 'disk i/o error',
                      'unable to open database file', 'database or disk is full',
                      'attempt to write a readonly database')


def unavailable_cause(error):
    """The failure of the database to answer behind `error` (Pony wraps the driver's
    errors, sometimes in lists), or None when `error` is of another kind."""
    import pymysql

    seen, stack = set(), [error]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):  # Pony's CommitException keeps sys.exc_info() tuples
            item = item[1] if len(item) > 1 else None
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, PoolExhausted):
            return None  # overloaded, not down
        if isinstance(item, DatabaseUnavailable):
            return item
        if isinstance(item, pymysql.err.InterfaceError):
            return item
        if isinstance(item, pymysql.err.MySQLError) and item.args \
                and item.args[0] in MYSQL_UNAVAILABLE:
            return item
        if isinstance(item, sqlite3.OperationalError) \
                and str(item).lower().startswith(SQLITE_UNAVAILABLE):
            return item
        if isinstance(item, (socket.timeout, ConnectionError)):
            return item
        stack.append(getattr(item, 'original_exc', None))
        stack.extend(getattr(item, 'exceptions', None) or ())
        stack.append(item.__cause__)
        stack.append(item.__context__)
    return None


def pool_exhausted(error):
    """Whether `error` (or what Pony wrapped in it) is the pool's wait running out."""
    return isinstance(getattr(error, 'original_exc', error), PoolExhausted)


def describe(error):
    return '{}: {}'.format(type(error).__name__, error)


class DatabaseWatch:
    """The state of the database as the server last found it (see the module doc)."""

    def __init__(self, probe, on_outage=None, probe_interval=PROBE_INTERVAL):
        self.probe = probe
        self.on_outage = on_outage or (lambda: None)
        self.probe_interval = probe_interval
        self.down_since = None
        self.refused = 0
        self._prober = None

    @property
    def down(self):
        return self.down_since is not None

    def failed(self, error):
        """A call found the database not answering: start an outage unless one is on."""
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self.refused = 0
        log.error('database unavailable (%s): refusing what needs it until it answers',
                  describe(error))
        # Idle pooled connections went through the same fault: do not hand them out.
        self.on_outage()
        if self._prober is None:
            self._prober = gevent.spawn(self._probe_until_back)

    def refuse(self, error):
        """Count one request, message or connection refused for the outage behind
        `error` (starting it, if this is the first sign)."""
        self.failed(error)
        self.refused += 1

    def check(self):
        """Probe the database now; raises what the probe raises (and starts an outage)."""
        try:
            self.probe()
        except Exception as error:
            self.failed(error)
            raise
        self._answered()

    def _probe_until_back(self):
        try:
            while self.down_since is not None:
                gevent.sleep(self.probe_interval)
                try:
                    self.probe()
                except Exception:
                    continue
                self._answered()
        finally:
            self._prober = None

    def _answered(self):
        if self.down_since is None:
            return
        seconds = time.monotonic() - self.down_since
        self.down_since = None
        self.on_outage()  # connections opened before it ended may be broken
        log.warning('database answering again after %.1f s of outage; %d requests, '
                    'messages and connections were refused meanwhile', seconds, self.refused)

    def stop(self):
        if self._prober is not None:
            self._prober.kill(block=False)
