"""Migrations 0009-0012 (issue 23): a database from before richer messages upgrades by
itself, its messages intact and editable, reactable and quotable; SQLite and MySQL."""
from pony.orm import db_session

from imchat import create_app
from tests.test_migrate import migrated_before

RICH_MIGRATIONS = ('0009_23-message-editedat', '0010_23-message-replyto',
                   '0011_23-message-forwarded', '0012_23-message-mentions')


def test_messages_stored_before_richer_messages_upgrade_intact(database_url, tmp_path):
    with migrated_before(database_url, '0009') as (cursor, mark):
        cursor.execute('INSERT INTO message (id, userid, cmd, dstid, media, content, pic, url, '
                       "memo, amount, createat, clientid) VALUES (7, 1, 10, 2, 1, {0}, '', '', "
                       "'', 0, {0}, NULL)".format(mark), ('from before', 10 ** 12 * 2))

    app = create_app({'DATABASE_URL': database_url, 'PASSWD_COST': 4, 'LOG_LEVEL': 'WARNING',
                      'UPLOAD_DIR': str(tmp_path / 'mnt'), 'EDIT_SECONDS': 0})
    try:
        svc = app.extensions['imchat']
        assert set(RICH_MIGRATIONS) <= set(svc.applied_migrations)
        with db_session:
            row = svc.db.Message[7]
            assert (row.content, row.editedat, row.replyto, row.forwarded, row.mentions) == (
                'from before', 0, 0, 0, '')
            # The wire of an old message is what it was: no new field.
            assert row.to_wire() == {'msgid': 7, 'userid': 1, 'cmd': 10, 'dstid': 2,
                                     'media': 1, 'createat': 10 ** 12 * 2,
                                     'content': 'from before'}
            assert svc.db.Reaction.select().count() == 0
    finally:
        app.extensions['imchat'].close()
