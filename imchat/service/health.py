"""Whether this process can do its work: today, whether its database answers."""
import logging
import os

from pony.orm import db_session
from pony.orm.dbapiprovider import DBException

from imchat.service.errors import Unavailable

log = logging.getLogger('imchat')


def check_database(db, watch=None):
    """Read one row of a real table; raises Unavailable when the database cannot answer.

    With the app's DatabaseWatch, the read goes through its probe: a connection of its
    own with a short timeout, so a stalled database is reported in seconds."""
    if watch is not None:
        try:
            watch.check()
        except Exception as error:
            raise Unavailable('database is unreachable ({})'.format(type(error).__name__))
        return
    # A bare `SELECT 1` succeeds on a MySQL connection whose database was dropped and on
    # an SQLite file that was deleted under an open connection; reading a table does not
    # on MySQL. A pooled SQLite connection still reads a deleted file, so its path is
    # checked too: writes to it would be lost at the next start.
    try:
        with db_session:
            db.User.select().exists()
            sqlite_file = _sqlite_main_file(db)
    except DBException as error:
        log.warning('health check: database unreachable: %s: %s',
                    type(error).__name__, error)
        raise Unavailable('database is unreachable ({})'.format(type(error).__name__))
    if sqlite_file and not os.path.exists(sqlite_file):
        log.warning('health check: the SQLite file %s is gone', sqlite_file)
        raise Unavailable('database is unreachable (its file is gone)')


def _sqlite_main_file(db):
    if db.provider.dialect != 'SQLite':
        return None
    for _, name, filename in db.execute('PRAGMA database_list').fetchall():
        if name == 'main':
            return filename or None
    return None
