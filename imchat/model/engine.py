"""The database a URL names (`IMCHAT_DATABASE_URL`): reading the URL, creating the
database, binding Pony to it through the shared pool (model.pool), and probing it.

    sqlite:///relative/path.db   sqlite:////absolute/path.db
    mysql://user:pass@host:port/dbname
"""
import os
from typing import Optional, Tuple
from urllib.parse import quote, unquote, urlsplit

from imchat.model.pool import PooledMySQLProvider, PooledSQLiteProvider


# SQLite's busy timeout when none is wanted: a year.
SQLITE_FOREVER = 31536000


class DatabaseURLError(ValueError):
    pass


def parse_database_url(url: str) -> Tuple[str, dict]:
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


def describe_database_url(url: str) -> str:
    """The URL with any password removed, for logs."""
    kind, params = parse_database_url(url)
    if kind == 'sqlite':
        return 'sqlite:///' + params['filename']
    return 'mysql://{}@{}:{}/{}'.format(params['user'], params['host'], params['port'],
                                        params['database'])


def bind_database(db, url: str, pool_size: int = 20, pool_timeout: float = 30,
                  timeout: Optional[float] = 10) -> str:
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
