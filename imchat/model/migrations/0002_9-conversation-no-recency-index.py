"""The conversation table loses its (ownerid, last_msgid) index.

Every stored message moves `last_msgid` of two or more conversation rows, and with that
index each move is also a delete and an insert in it: it doubled what MariaDB spent on
the conversation rows of a batch, inside the transaction that holds the message stream's
lock. The chat list reads one user's rows through the (ownerid, target, dstid) key and
sorts those few in memory instead.

The table came with issue 13 and Pony created it: a database made since has it with the
index, one made before has no such table yet (Pony creates it, without the index).
"""
from yoyo import step

from imchat.model.migrate import dialect, table_exists

INDEX = 'idx_conversation__ownerid_last_msgid'


def drop_recency_index(conn):
    if not table_exists(conn, 'conversation'):
        return
    cursor = conn.cursor()
    try:
        if dialect(conn) == 'sqlite':
            cursor.execute('DROP INDEX IF EXISTS "{}"'.format(INDEX))
            return
        cursor.execute('SELECT 1 FROM information_schema.statistics WHERE table_schema = '
                       'DATABASE() AND table_name = %s AND index_name = %s',
                       ('conversation', INDEX))
        if cursor.fetchone() is not None:
            cursor.execute('DROP INDEX `{}` ON `conversation`'.format(INDEX))
    finally:
        cursor.close()


steps = [step(drop_recency_index)]
