"""`flask --app wsgi backup DEST`: a consistent copy of a running SQLite database,
taken while messages are being stored, that a server can start on."""
import os
import sqlite3
import subprocess
import sys

import gevent
import pytest

from imchat import create_app
from tests.test_chat import connect, pair  # noqa: F401  (fixtures)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def app_config(app_config):
    app_config['WS_RATE'] = 0  # the sender below goes as fast as the server lets it
    return app_config


def flask_cli(database_url, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith('IMCHAT_')}
    env.update(IMCHAT_DATABASE_URL=database_url, IMCHAT_LOG_LEVEL='WARNING')
    return subprocess.run([sys.executable, '-m', 'flask', '--app', 'wsgi'] + list(args),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.process
def test_backup_of_a_running_sqlite_database(app_config, app, live_server, pair, connect,  # noqa: F811
                                             tmp_path):
    url = app_config['DATABASE_URL']
    if not url.startswith('sqlite:'):
        pytest.skip('the backup command copies SQLite databases')
    alice, bob = pair
    sender = connect(alice)
    before = sender.send_texts(bob.id, ['before {}'.format(n) for n in range(20)])
    acked = []
    sending = True

    def keep_sending():
        n = 0
        while sending:
            acked.extend(sender.send_texts(bob.id, ['during {}'.format(n)]))
            n += 1
    writer = gevent.spawn(keep_sending)
    try:
        dest = tmp_path / 'copy' / 'imchat-backup.db'
        dest.parent.mkdir()
        result = flask_cli(url, 'backup', str(dest))
        assert result.returncode == 0, result.stderr
        assert 'backed up' in result.stdout
    finally:
        sending = False
        writer.join(timeout=30)
    assert acked, 'no message was stored during the backup'

    copy = sqlite3.connect(str(dest))
    try:
        assert copy.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
        ids = [row[0] for row in copy.execute('SELECT id FROM message ORDER BY id')]
    finally:
        copy.close()
    # Everything acknowledged before it began, and a prefix of what came during it.
    assert ids[:len(before)] == before
    assert ids == sorted(before + acked)[:len(ids)]

    # A server starts on the copy and finds the people and their messages.
    restored = create_app(dict(app_config, DATABASE_URL='sqlite:///{}'.format(dest)))
    try:
        rows = restored.extensions['imchat'].reader.history(bob.id, 10, alice.id,
                                                               before=before[-1] + 1, limit=100)
        assert [row['msgid'] for row in rows] == before
    finally:
        restored.extensions['imchat'].close()

    again = flask_cli(url, 'backup', str(dest))
    assert again.returncode != 0 and 'exists' in again.stderr


@pytest.mark.process
def test_backup_refuses_mysql_and_names_the_way(app_config, app):
    url = app_config['DATABASE_URL']
    if not url.startswith('mysql:'):
        pytest.skip('this is about MySQL')
    result = flask_cli(url, 'backup', '/tmp/never-written.db')
    assert result.returncode != 0 and 'mysqldump' in result.stderr
    assert not os.path.exists('/tmp/never-written.db')
