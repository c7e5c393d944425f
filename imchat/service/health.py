"""Whether this process can do its work: today, whether its database answers."""
import logging

from pony.orm import db_session
from pony.orm.dbapiprovider import DBException

from imchat.service.errors import Unavailable

log = logging.getLogger('imchat')


def check_database(db):
    """Read one row of a real table; raises Unavailable when the database cannot answer."""
    # A bare `SELECT 1` succeeds on a MySQL connection whose database was dropped and on
    # an SQLite file that was deleted under an open connection; reading a table does not.
    try:
        with db_session:
            db.User.select().exists()
    except DBException as error:
        log.warning('health check: database unreachable: %s: %s',
                    type(error).__name__, error)
        raise Unavailable('database is unreachable ({})'.format(type(error).__name__))
