"""Binding a Pony database to the URL in `IMCHAT_DATABASE_URL`.

    sqlite:///relative/path.db   sqlite:////absolute/path.db
    mysql://user:pass@host:port/dbname
"""
import collections
import contextlib
import os
import struct
import threading
from urllib.parse import quote, unquote, urlsplit

from gevent import getcurrent
from pony.orm.dbproviders.mysql import MySQLProvider
from pony.orm.dbproviders.sqlite import SQLitePool, SQLiteProvider
from pymysql.constants import COMMAND
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_IN_TRANS


# SQLite's busy timeout when none is wanted: a year.
SQLITE_FOREVER = 31536000


class DatabaseURLError(ValueError):
    pass


def parse_database_url(url):
    """Split a database URL into ('sqlite', {filename}) or ('mysql', {pymysql kwargs})."""
    parts = urlsplit(url)
    if parts.scheme == 'sqlite':
        # sqlite:///x.db is relative to the working directory, sqlite:////x.db absolute.
        path = unquote(url[len('sqlite:///'):]) if url.startswith('sqlite:///') else ''
        if not path:
            raise DatabaseURLError('an sqlite URL reads sqlite:///path/to/file.db')
        return 'sqlite', {'filename': os.path.abspath(path)}
    if parts.scheme in ('mysql', 'mysql+pymysql'):
        name = parts.path.lstrip('/')
        if not name or not parts.hostname:
            raise DatabaseURLError('a mysql URL reads mysql://user:pass@host:port/dbname')
        return 'mysql', {'host': parts.hostname, 'port': parts.port or 3306,
                         'user': unquote(parts.username or 'root'),
                         'password': unquote(parts.password or ''), 'database': name}
    raise DatabaseURLError('unsupported database URL scheme {!r}: use sqlite or mysql'
                           .format(parts.scheme))


def describe_database_url(url):
    """The URL with any password removed, for logs."""
    kind, params = parse_database_url(url)
    if kind == 'sqlite':
        return 'sqlite:///' + params['filename']
    return 'mysql://{}@{}:{}/{}'.format(params['user'], params['host'], params['port'],
                                        params['database'])


def bind_database(db, url, pool_size=20, pool_timeout=30, timeout=10):
    """Bind `db` to `url`; every database call then gives up after about `timeout`
    seconds (connect, read and write on MySQL; the busy timeout on SQLite), and a
    greenlet waits at most `pool_timeout` seconds for a pooled connection."""
    kind, params = parse_database_url(url)
    if kind == 'sqlite':
        timeout = timeout or SQLITE_FOREVER
        os.makedirs(os.path.dirname(params['filename']), exist_ok=True)
        use_wal(params['filename'], timeout)
        # timeout: wait for another process's write lock (init-db beside a server)
        # instead of failing at once, but not for ever.
        db.bind(provider=PooledSQLiteProvider, filename=params['filename'], create_db=True,
                timeout=timeout, pool_size=pool_size, pool_timeout=pool_timeout)
    else:
        ensure_mysql_database(params, timeout)
        db.bind(provider=PooledMySQLProvider, pool_size=pool_size, pool_timeout=pool_timeout,
                # PyMySQL builds an SSL context on every connect (~35 ms of CPU);
                # a local server needs none. utf8mb4 holds every emoji.
                charset='utf8mb4', ssl_disabled=True, **mysql_timeouts(timeout), **params)
    return kind


def mysql_timeouts(timeout):
    """PyMySQL's socket timeouts: without them a server that accepts but never answers
    holds a call for ever. A `timeout` of None waits for ever (connecting, a year)."""
    return {'connect_timeout': timeout or 31536000, 'read_timeout': timeout,
            'write_timeout': timeout}


def make_probe(url, timeout):
    """A function that raises unless the database at `url` answers within about
    `timeout` seconds, on a connection of its own (never a pooled one, which may be
    stuck in the very fault being probed)."""
    import sqlite3

    import pymysql

    kind, params = parse_database_url(url)
    if kind == 'sqlite':
        # mode=rw: a file that is gone is an error, not a new empty database.
        uri = 'file:{}?mode=rw'.format(quote(params['filename']))

        def probe_sqlite():
            con = sqlite3.connect(uri, uri=True, timeout=timeout)
            try:
                # The write lock too: a reader gets in while another process holds it.
                con.execute('BEGIN IMMEDIATE')
                con.execute('SELECT 1 FROM `user` LIMIT 1').fetchall()
                con.rollback()
            finally:
                con.close()
        return probe_sqlite

    def probe_mysql():
        con = pymysql.connect(charset='utf8mb4', ssl_disabled=True, **mysql_timeouts(timeout),
                              **params)
        try:
            with con.cursor() as cursor:
                # A real table: `SELECT 1` succeeds on a database that was dropped.
                cursor.execute('SELECT 1 FROM `user` LIMIT 1')
                cursor.fetchall()
        finally:
            con.close()
    return probe_mysql


def use_wal(filename, timeout=15):
    """Put an SQLite file in write-ahead-log mode (a lasting property of the file).

    A commit then costs one fsync of the log instead of several of the journal and the
    database, and readers no longer block the writer. `synchronous` stays FULL, so an
    acknowledged message survives a power cut too.
    """
    import sqlite3

    con = sqlite3.connect(filename, timeout=timeout)
    try:
        con.execute('PRAGMA journal_mode=WAL')
    finally:
        con.close()


def ensure_mysql_database(params, timeout=10):
    """Create the MySQL database if it is missing, in utf8mb4 so every emoji fits."""
    import pymysql

    server = {k: v for k, v in params.items() if k != 'database'}
    con = pymysql.connect(charset='utf8mb4', ssl_disabled=True, **mysql_timeouts(timeout),
                          **server)
    try:
        with con.cursor() as cursor:
            cursor.execute('CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 '
                           'COLLATE utf8mb4_unicode_ci'.format(params['database'].replace('`', '')))
    finally:
        con.close()


class DatabaseUnavailable(Exception):
    """Raised by the connection pool during an outage, without trying the database."""


class PoolExhausted(Exception):
    """Mixed into the driver's OperationalError when every pooled connection stayed
    busy: the server is overloaded, the database may be fine."""


# COM_SET_OPTION's argument turning multiple statements a query on for the session.
_MYSQL_OPTION_MULTI_STATEMENTS_ON = 0


def enable_multi_statements(connection):
    """Let a MySQL connection run several statements in one query, from now on (the
    message writer's batches, model.insert_messages). Pooled connections open without
    it, so that no other query could have a statement stacked on it; one that has it
    goes back to the pool among its kind (BoundedPool), for the writer's next batch."""
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
            # writer's batch, model.insert_messages), and nothing wrote after it (an
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


def multirow_insert_ids_are_consecutive(db):
    """Whether one INSERT of many rows gets consecutive auto-increment ids: always on
    SQLite; on MySQL unless innodb_autoinc_lock_mode is 2 (interleaved)."""
    if db.provider.dialect != 'MySQL':
        return True
    from pony.orm import db_session

    with db_session:
        try:
            mode = db.select('@@innodb_autoinc_lock_mode')[0]
        except Exception:
            return False  # not InnoDB-like: do not assume
    return int(mode) != 2
