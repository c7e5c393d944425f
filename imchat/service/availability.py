"""Whether the database answers, and what the server does while it does not.

A database that is down or stalled is one fault, not one per request: the first call
that finds it so (a refused or dropped connection) starts an outage, logged once with
its cause. A statement that runs out of time (IMCHAT_DB_TIMEOUT: a lock wait, a slow
query) is that statement failing: it starts an outage only when a probe finds the
database not answering either; otherwise it is counted and logged once a minute. During it the connection pool refuses at once (no
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
# Seconds between log lines about statements that ran out of time (with a count).
SLOW_LOG_EVERY = 60

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


def is_slow_statement(error):
    """Whether `error` is a statement running out of time (IMCHAT_DB_TIMEOUT on MySQL,
    the busy timeout on SQLite) rather than the database refusing or dropping the
    connection: the database may be answering everyone else."""
    import pymysql

    cause = unavailable_cause(error) or error
    if isinstance(cause, socket.timeout):
        return True
    if isinstance(cause, pymysql.err.OperationalError) and cause.args \
            and cause.args[0] == 2013 and 'timed out' in str(cause.args[-1]):
        return True
    return isinstance(cause, sqlite3.OperationalError) \
        and str(cause).lower().startswith(('database is locked', 'database table is locked'))


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
        # A probe deciding whether a statement that ran out of time means an outage.
        self._confirming = None
        self.slow_statements = 0
        self._unconfirmed = 0
        self._next_slow_log = 0.0

    @property
    def down(self):
        return self.down_since is not None

    def failed(self, error):
        """A call found the database not answering: start an outage unless one is on.
        A statement that ran out of time (a lock wait, a slow query) starts one only
        once a probe on a connection of its own finds the database not answering too:
        one slow statement is a failed statement, not an outage."""
        if self.down_since is not None:
            return
        if is_slow_statement(error):
            if self._confirming is None:
                self._confirming = gevent.spawn(self._confirm, error)
            return
        self._begin(error)

    def _confirm(self, error):
        try:
            try:
                self.probe()
            except Exception as probe_error:
                self._begin(probe_error)
                return
            self.slow_statements += 1
            self._unconfirmed = 0
            now = time.monotonic()
            if now >= self._next_slow_log:
                self._next_slow_log = now + SLOW_LOG_EVERY
                log.warning('a statement ran out of time (%s) while the database answers: '
                            'that statement failed, no outage (%d such so far)',
                            describe(error), self.slow_statements)
        finally:
            self._confirming = None

    def _begin(self, error):
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        # The refusals while a probe confirmed it count too.
        self.refused, self._unconfirmed = self._unconfirmed, 0
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
        if self.down_since is None:
            self._unconfirmed += 1
        else:
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
        for greenlet in (self._prober, self._confirming):
            if greenlet is not None:
                greenlet.kill(block=False)
