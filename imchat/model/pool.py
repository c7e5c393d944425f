"""Database connections shared by every greenlet: the pool and the Pony providers using it.

Pony keeps one connection per thread, and under gevent every greenlet is a thread; this
pool lends a bounded set of connections instead (BoundedPool says why). Two kinds of
connection go back to it: plain ones, one statement a query, and the message writer's,
which may stack several (enable_multi_statements), lent only to the greenlets that
send such queries.
"""
import collections
import contextlib
import struct
import threading

from gevent import getcurrent
from pony.orm.dbproviders.mysql import MySQLProvider
from pony.orm.dbproviders.sqlite import SQLitePool, SQLiteProvider
from pymysql.constants import COMMAND
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_IN_TRANS


class DatabaseUnavailable(Exception):
    """Raised by the connection pool during an outage, without trying the database."""


class PoolExhausted(Exception):
    """Mixed into the driver's OperationalError when every pooled connection stayed
    busy: the server is overloaded, the database may be fine."""


# COM_SET_OPTION's argument turning multiple statements a query on for the session.
_MYSQL_OPTION_MULTI_STATEMENTS_ON = 0


def enable_multi_statements(connection) -> None:
    """Let a MySQL connection run several statements in one query, from now on (the
    message writer's batches, model.stream.insert_messages). Pooled connections open
    without it, so that no other query could have a statement stacked on it; one that
    has it goes back to the pool among its kind (BoundedPool), for the writer's next
    batch."""
    if getattr(connection, 'imchat_multi_statements', False):
        return
    connection._execute_command(COMMAND.COM_SET_OPTION,
                                struct.pack('<H', _MYSQL_OPTION_MULTI_STATEMENTS_ON))
    connection._read_packet()  # EOF, or the server's error raised
    connection.imchat_multi_statements = True


@contextlib.contextmanager
def multi_statement_connections():
    """While this runs, the running greenlet borrows the pooled connections that run
    several statements a query, if any is free (the message writer's)."""
    current = getcurrent()
    before = getattr(current, 'imchat_multi_statements', False)
    current.imchat_multi_statements = True
    try:
        yield
    finally:
        current.imchat_multi_statements = before


class BoundedPool:
    """One pool of database connections shared by every greenlet, at most `size` open.

    Pony's own pool keeps one connection per thread; under gevent every greenlet is a
    thread, so each request would open its own connection, and each WebSocket greenlet
    would keep one for its whole life: a busy server would run past MariaDB's
    max_connections, or hold thousands of SQLite files open. Here a greenlet borrows a
    connection for its db_session and gives it back; when all are out, the next waits.
    """

    def __init__(self, dbapi_module, size, timeout, open_connection):
        self.dbapi_module = dbapi_module
        self.open_connection = open_connection
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle = collections.deque()
        # Connections that run several statements a query: lent only to the greenlets
        # that send such queries (multi_statement_connections).
        self._idle_multi = collections.deque()
        self.size = size
        # A DatabaseWatch (imchat.service.availability), once the app has one: during
        # an outage the pool refuses at once instead of trying the database.
        self.watch = None
        self.exhausted_error = type('PoolExhausted', (dbapi_module.OperationalError,
                                                      PoolExhausted), {})

    def connect(self):
        self._refuse_during_outage()
        if not self._slots.acquire(timeout=self.timeout):
            raise self.exhausted_error(
                2013, 'no database connection free after {}s'.format(self.timeout))
        try:
            self._refuse_during_outage()  # it may have begun while this one waited
            if self._idle_multi and getattr(getcurrent(), 'imchat_multi_statements', False):
                return self._idle_multi.pop(), False
            return self._idle.pop(), False
        except IndexError:
            pass
        except BaseException:
            self._slots.release()
            raise
        try:
            return self.open_connection(), True
        except BaseException as error:
            self._slots.release()
            if self.watch is not None and isinstance(error, Exception):
                self.watch.failed(error)
            raise

    def _refuse_during_outage(self):
        if self.watch is not None and self.watch.down:
            raise DatabaseUnavailable('the database is unavailable')

    def release(self, con):
        if getattr(con, 'imchat_committed', False) and not (
                con.server_status & SERVER_STATUS_IN_TRANS):
            # Its session ended in a COMMIT: nothing is open on it to roll back, and a
            # ROLLBACK would be one more round trip on every write (the message
            # writer's among them).
            con.imchat_committed = False
        else:
            try:
                con.rollback()
            except BaseException:
                self.drop(con)
                raise
        if getattr(con, 'imchat_multi_statements', False):
            self._idle_multi.append(con)
        else:
            self._idle.append(con)
        self._slots.release()

    def drop(self, con):
        try:
            con.close()
        except Exception:
            pass
        finally:
            self._slots.release()

    def disconnect(self):
        for idle in (self._idle, self._idle_multi):
            while idle:
                try:
                    idle.pop().close()
                except Exception:
                    pass


class PooledMySQLProvider(MySQLProvider):
    def get_pool(self, *args, pool_size=20, pool_timeout=30, **kwargs):
        pony_pool = super().get_pool(*args, **kwargs)
        module, connect_kwargs = pony_pool.dbapi_module, dict(pony_pool.kwargs)
        # One statement a query: only the message writer's connections are given more
        # (enable_multi_statements), for its batches, every value in them a literal.
        return BoundedPool(module, pool_size, pool_timeout,
                           lambda: module.connect(**connect_kwargs))

    def commit(self, connection, cache=None):
        sent, connection.imchat_commit_sent = (
            getattr(connection, 'imchat_commit_sent', False), False)
        if sent and not connection.server_status & SERVER_STATUS_IN_TRANS:
            # The session's last statements ended with their own COMMIT (the message
            # writer's batch, model.stream.insert_messages), and nothing wrote after it (an
            # UPDATE would have opened a transaction): there is nothing to commit.
            if cache is not None:
                cache.in_transaction = False
        else:
            super().commit(connection, cache)
        # Pony releases the connection next: the pool need not roll it back (a session
        # that only read still is, to end its snapshot).
        connection.imchat_committed = True


class PooledSQLiteProvider(SQLiteProvider):
    def get_pool(self, is_shared_memory_db, filename, create_db=False, pool_size=20,
                 pool_timeout=30, **kwargs):
        import sqlite3

        # Pony's per-thread pool knows how to open a connection (with its SQL functions);
        # borrow that, and share the connections. Greenlets all run on one OS thread.
        opener = SQLitePool(is_shared_memory_db, filename, create_db,
                            check_same_thread=False, **kwargs)

        def open_connection():
            opener.con = None
            opener._connect()
            return opener.con
        return BoundedPool(sqlite3, pool_size, pool_timeout, open_connection)
