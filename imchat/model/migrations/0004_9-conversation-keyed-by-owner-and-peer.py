"""The conversation table's primary key becomes (ownerid, target, dstid); its `id` goes.

The message writer moves each batch's conversation rows with one multi-row upsert
(INSERT ... ON DUPLICATE KEY UPDATE). With an AUTO_INCREMENT `id` as the primary key and
(ownerid, target, dstid) a unique key beside it, InnoDB inserted every row into the
clustered index, met the duplicate in the unique key, took the insert back and then
updated the row: for rows that nearly always exist, far more work (MariaDB 10.11, an
upsert of 100 existing rows: 1.65 to 2.27 ms of the database server's CPU, against 1.05
to 1.35 ms keyed by owner and peer), and an id used up for each. Keyed by (ownerid, target, dstid), the
upsert finds the row where it would insert it. Nothing read `id` but the read
position's compare-and-set, which now names the row by its key.

Pony made the table (issue 13): a database made since has it with `id`; one made before
has no such table, and Pony creates it as it is now. The rows keep their values.
"""
from yoyo import step

from imchat.model.migrate import dialect, table_exists

COLUMNS = '"ownerid", "target", "dstid", "last_msgid", "readmsgid", "unread"'
OLD_KEY = 'unq_conversation__ownerid_target_dstid'


def key_by_owner_and_peer(conn):
    if not table_exists(conn, 'conversation'):
        return
    cursor = conn.cursor()
    try:
        if dialect(conn) == 'sqlite':
            _sqlite(cursor)
        else:
            _mysql(cursor)
    finally:
        cursor.close()


def _sqlite(cursor):
    cursor.execute('SELECT name FROM pragma_table_info(?)', ('conversation',))
    if 'id' not in {name for (name,) in cursor.fetchall()}:
        return
    # SQLite cannot change a primary key in place: the table is made again, as Pony makes
    # it, and takes the rows over.
    cursor.execute('CREATE TABLE "conversation_0004" ("ownerid" BIGINT NOT NULL, '
                   '"target" INTEGER NOT NULL, "dstid" BIGINT NOT NULL, '
                   '"last_msgid" BIGINT NOT NULL, "readmsgid" BIGINT NOT NULL, '
                   '"unread" BIGINT NOT NULL, PRIMARY KEY ("ownerid", "target", "dstid"))')
    cursor.execute('INSERT INTO "conversation_0004" ({0}) SELECT {0} FROM "conversation"'
                   .format(COLUMNS))
    cursor.execute('DROP TABLE "conversation"')
    cursor.execute('ALTER TABLE "conversation_0004" RENAME TO "conversation"')
    cursor.execute('CREATE INDEX "idx_conversation__target_dstid" ON "conversation" '
                   '("target", "dstid")')


def _mysql(cursor):
    cursor.execute('SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() '
                   'AND table_name = %s AND column_name = %s', ('conversation', 'id'))
    if cursor.fetchone() is None:
        return
    cursor.execute('SELECT 1 FROM information_schema.statistics WHERE table_schema = '
                   'DATABASE() AND table_name = %s AND index_name = %s',
                   ('conversation', OLD_KEY))
    changes = ['DROP COLUMN `id`', 'ADD PRIMARY KEY (`ownerid`, `target`, `dstid`)']
    if cursor.fetchone() is not None:
        changes.append('DROP INDEX `{}`'.format(OLD_KEY))
    # One statement: it is done whole or not at all.
    cursor.execute('ALTER TABLE `conversation` ' + ', '.join(changes))


steps = [step(key_by_owner_and_peer)]
