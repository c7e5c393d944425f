"""A consistent copy of a live SQLite database, with SQLite's online backup API.

Copying the file (and its -wal) while the server writes can catch a half-written
page; the backup API copies from one read transaction, so the copy is the database as
it was at one instant, and in WAL mode the server goes on writing meanwhile.
"""
import os
import sqlite3
from urllib.parse import quote

from imchat.model.engine import parse_database_url


class BackupError(ValueError):
    pass


def backup_sqlite(url, dest, timeout=30):
    """Copy the SQLite database at `url` to the new file `dest`; returns the number of
    pages copied. Raises BackupError for a MySQL URL or an existing `dest`."""
    kind, params = parse_database_url(url)
    if kind != 'sqlite':
        raise BackupError('only an SQLite database is backed up this way: back up MySQL '
                          'with mysqldump --single-transaction (see the README)')
    dest = os.path.abspath(dest)
    if os.path.exists(dest):
        raise BackupError('{} exists: name a new file'.format(dest))
    if not os.path.exists(params['filename']):
        raise BackupError('no database at {}'.format(params['filename']))
    partial = dest + '.partial'
    source = sqlite3.connect('file:{}?mode=ro'.format(quote(params['filename'])), uri=True,
                             timeout=timeout)
    try:
        target = sqlite3.connect(partial)
        try:
            # All pages in one step: one read transaction, so one instant's database.
            source.backup(target, pages=-1)
            pages = target.execute('PRAGMA page_count').fetchone()[0]
            check = target.execute('PRAGMA integrity_check').fetchone()[0]
        finally:
            target.close()
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    finally:
        source.close()
    if check != 'ok':
        os.remove(partial)
        raise BackupError('the copy failed its integrity check: {}'.format(check))
    os.replace(partial, dest)
    return pages
