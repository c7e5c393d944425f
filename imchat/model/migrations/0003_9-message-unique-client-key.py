"""A sender's client ids become a unique key of the message table, compared byte for byte.

The message writer used to look every batch's idempotency keys up before writing it: a
query on the committing path for a question nearly always answered "none". With
(userid, clientid) unique, the database answers it while inserting, and the writer looks
keys up only for a batch that a stored key refused (service/message.py).

The keys must be compared as Python compares them: on MySQL the column had the table's
collation, under which 'abc', 'ABC' and 'abc ' are one value, so it gets its character
set's binary collation that does not pad (MariaDB's `<charset>_nopad_bin`, MySQL 8's
`utf8mb4_0900_bin`, else `<charset>_bin`). SQLite compares bytes already.

Rows stored twice under one key before (a resend racing its first copy on another node)
keep their messages: the later copies lose their key, the first keeps it.

Each step finds out whether it is done, so a migration cut short by a failed statement
(MySQL commits every DDL statement at once) completes on the next start.
"""
from yoyo import step

from imchat.model.migrate import dialect

OLD_INDEX = 'idx_message__userid_clientid'
NEW_INDEX = 'unq_message__userid_clientid'


def unique_client_key(conn):
    cursor = conn.cursor()
    try:
        if dialect(conn) == 'sqlite':
            _sqlite(cursor)
        else:
            _mysql(cursor)
    finally:
        cursor.close()


def _sqlite(cursor):
    cursor.execute('UPDATE message SET clientid = NULL WHERE clientid IS NOT NULL AND id > '
                   '(SELECT MIN(first.id) FROM message AS first WHERE first.userid = '
                   'message.userid AND first.clientid = message.clientid)')
    cursor.execute('CREATE UNIQUE INDEX IF NOT EXISTS "{}" ON "message" ("userid", "clientid")'
                   .format(NEW_INDEX))
    cursor.execute('DROP INDEX IF EXISTS "{}"'.format(OLD_INDEX))


def _mysql(cursor):
    cursor.execute('SELECT character_set_name, collation_name FROM information_schema.columns '
                   'WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s',
                   ('message', 'clientid'))
    charset, collation = cursor.fetchone()
    binary = _binary_collation(cursor, charset)
    if collation != binary:
        cursor.execute('ALTER TABLE `message` MODIFY `clientid` VARCHAR(64) CHARACTER SET {} '
                       'COLLATE {} NULL'.format(charset, binary))
    cursor.execute('UPDATE `message` AS m JOIN (SELECT `userid`, `clientid`, MIN(`id`) AS '
                   '`first` FROM `message` WHERE `clientid` IS NOT NULL GROUP BY `userid`, '
                   '`clientid` HAVING COUNT(*) > 1) AS twice ON m.`userid` = twice.`userid` '
                   'AND m.`clientid` = twice.`clientid` AND m.`id` > twice.`first` '
                   'SET m.`clientid` = NULL')
    cursor.execute('SELECT index_name FROM information_schema.statistics WHERE table_schema = '
                   'DATABASE() AND table_name = %s AND index_name IN (%s, %s)',
                   ('message', OLD_INDEX, NEW_INDEX))
    present = {name for (name,) in cursor.fetchall()}
    changes = []
    if NEW_INDEX not in present:
        changes.append('ADD UNIQUE INDEX `{}` (`userid`, `clientid`)'.format(NEW_INDEX))
    if OLD_INDEX in present:
        changes.append('DROP INDEX `{}`'.format(OLD_INDEX))
    if changes:
        cursor.execute('ALTER TABLE `message` ' + ', '.join(changes))


def _binary_collation(cursor, charset):
    cursor.execute('SELECT collation_name FROM information_schema.collations '
                   'WHERE character_set_name = %s', (charset,))
    available = {name for (name,) in cursor.fetchall()}
    for name in ('{}_nopad_bin'.format(charset), '{}_0900_bin'.format(charset),
                 '{}_bin'.format(charset)):
        if name in available:
            return name
    raise RuntimeError('no binary collation for the character set {}'.format(charset))


steps = [step(unique_client_key)]
