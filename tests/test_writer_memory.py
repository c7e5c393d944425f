"""Memory the writer's long-lived greenlet must not pile up: Pony's per-SQL query
statistics, one entry for every distinct statement text (the writer inlines each
batch's values into its SQL, so each batch is a new text)."""
import gevent
from pony.orm import db_session

from imchat.model.engine import bind_database
from imchat.model.entities import define_database
from imchat.model.sql import execute_sql


def test_distinct_statements_leave_the_local_stats_bounded(tmp_path):
    db = define_database()
    bind_database(db, 'sqlite:///{}'.format(tmp_path / 'imchat.db'))
    db.generate_mapping(create_tables=True)

    def writer_like():
        for n in range(1000):
            with db_session:
                execute_sql(db, 'SELECT {:d} FROM user LIMIT 1'.format(n)).fetchall()
        return len(db.local_stats), db.last_sql

    count, last_sql = gevent.spawn(writer_like).get()
    assert count <= 1, count
    assert last_sql == 'SELECT 999 FROM user LIMIT 1'
