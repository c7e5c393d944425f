"""Versioned schema migrations with yoyo-migrations, for SQLite and MySQL alike.

Pony creates a missing table but never changes one that exists, so every change to an
existing table is a migration in `imchat/model/migrations/`. They run at every start,
before Pony maps the entities (`create_app` calls `migrate`), and by
`flask --app wsgi migrate`, which prints what it applied. yoyo records each applied
migration in `_yoyo_migration` (and a log in `_yoyo_log`) and holds `yoyo_lock` while it
works, so two processes starting at once apply each migration once.

How the schema comes to be, on any database:

1. `0001_12-baseline` creates each table of the schema as released at e50eb6f (the
   first release with migrations) that is missing, with the DDL Pony made for it then.
   On a database made by that release it finds every table and changes nothing; on a
   new one it creates them all. Every later migration can so rely on those tables.
2. The later migrations, in order, change them.
3. Pony's `generate_mapping(create_tables=True)` creates the tables that no migration
   knows (an entity added since, whose table is new), and checks that every column the
   entities declare exists: a model change without its migration fails at start.

Adding a migration (for a new column or index on an existing table):

- One file in `imchat/model/migrations/`, named `NNNN_<issue>-<what>.sql`: the next
  free four-digit sequence number, the issue number, and a few words,
  e.g. `0002_13-message-editedat.sql`. Branches that pick the same number do not
  collide, since the issue differs; yoyo applies them in name order.
- Raw SQL that both SQLite and MySQL accept, statements ending in `;`. Quote names
  with backticks (both accept them; double quotes are not names on MySQL). A new
  `NOT NULL` column needs a `DEFAULT` for the rows already there, since Pony's DDL
  declares none: `ALTER TABLE message ADD COLUMN editedat BIGINT NOT NULL DEFAULT 0;`
  `CREATE INDEX idx_message__editedat ON message (editedat);` is portable too.
- Keep one change per file: MySQL commits each DDL statement at once, so a file that
  fails half way cannot be rolled back there.
- Where the dialects differ (dropping an index, changing a column's type), write a
  `.py` migration instead: `step(apply)` with `def apply(conn)`, branching on
  `dialect(conn)` from this module.
- Change the Pony entity in `imchat/model/__init__.py` in the same commit. Never edit a
  migration once it is on main: databases have applied it; add another.
- A migration may only alter a table that the baseline or an earlier migration
  created; to alter a table that Pony created by itself, let the migration first
  `CREATE TABLE IF NOT EXISTS` it (per dialect, in a `.py` migration) as released.
- tests/test_migrate.py upgrades a database made by e50eb6f's own code and checks that
  a new database and an upgraded one end with the same columns.
"""
import logging
import os
import sqlite3

from yoyo import read_migrations
from yoyo.backends.core.mysql import MySQLBackend
from yoyo.backends.core.sqlite3 import SQLiteBackend
from yoyo.connections import DatabaseURI

from imchat.model.engine import parse_database_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'migrations')
MIGRATION_TABLE = '_yoyo_migration'
# How long a start waits for another process that is migrating the same database.
LOCK_TIMEOUT = 60


def dialect(conn):
    """'sqlite' or 'mysql': which database a migration's connection talks to."""
    return 'sqlite' if isinstance(conn, sqlite3.Connection) else 'mysql'


def table_exists(conn, table):
    """Whether `table` exists in the connection's database."""
    cursor = conn.cursor()
    try:
        if dialect(conn) == 'sqlite':
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                           (table,))
        else:
            cursor.execute('SELECT table_name FROM information_schema.tables '
                           'WHERE table_schema = DATABASE() AND table_name = %s', (table,))
        return cursor.fetchone() is not None
    finally:
        cursor.close()


class _SQLite(SQLiteBackend):
    def connect(self, dburi):
        # yoyo's own connection uses SQLite's shared cache; a plain one that waits for a
        # running server's write lock (like init-db beside a server) suits a live file.
        conn = sqlite3.connect(dburi.database, timeout=15,
                               detect_types=sqlite3.PARSE_DECLTYPES)
        conn.isolation_level = None
        return conn


class _MySQL(MySQLBackend):
    connect_args = {}

    def connect(self, dburi):
        return self.driver.connect(**self.connect_args)


def _backend(url, connect_args=None):
    kind, params = parse_database_url(url)
    if kind == 'sqlite':
        uri = DatabaseURI('sqlite', None, None, None, None, params['filename'], {})
        backend_class = _SQLite
    else:
        uri = DatabaseURI('mysql', params['user'], None, params['host'], params['port'],
                          params['database'], {})
        args = dict(charset='utf8mb4', ssl_disabled=True, connect_timeout=10, **params)
        args.update(connect_args or {})
        backend_class = type('_MySQLFor', (_MySQL,), {'connect_args': args})
    backend = backend_class(uri, MIGRATION_TABLE)
    backend.init_database()
    return backend


def migrate(url, connect_args=None):
    """Apply every pending migration to the database at `url` (which must exist) and
    return the ids applied, in order; raises what the database raises on a failure."""
    backend = _backend(url, connect_args)
    try:
        migrations = read_migrations(MIGRATIONS_DIR)
        with backend.lock(timeout=LOCK_TIMEOUT):
            pending = backend.to_apply(migrations)
            for migration in pending:
                log.info('applying schema migration %s', migration.id)
            backend.apply_migrations(pending)
        return [migration.id for migration in pending]
    finally:
        backend.connection.close()


def applied(url, connect_args=None):
    """The ids of the migrations applied to the database at `url`, in name order."""
    backend = _backend(url, connect_args)
    try:
        migrations = read_migrations(MIGRATIONS_DIR)
        return sorted(m.id for m in migrations if backend.is_applied(m))
    finally:
        backend.connection.close()
