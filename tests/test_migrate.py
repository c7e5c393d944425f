"""Schema migrations: a database made by the previous release (e50eb6f, run from its own
code as a real server process) upgrades by itself when today's server starts on it, and
every user, friendship, community and message is intact and working; migrations run
once, by the server at start and by `flask --app wsgi migrate`."""
import contextlib
import os
import re
import subprocess
import sys
import tarfile
import io

import pytest
from pony.orm import db_session

from imchat import create_app
from imchat.model.migrate import MIGRATIONS_DIR, applied
from tests.harness import ServerProcess, http, pid_alive
from tests.harness.live import LiveServer
from tests.wsclient import ChatClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The last release before migrations: databases it made must upgrade by themselves.
PREVIOUS_RELEASE = 'e50eb6f'
MIGRATION_NAME = re.compile(r'^\d{4}_\d+-[a-z0-9]+(-[a-z0-9]+)*\.(sql|py)$')



@contextlib.contextmanager
def migrated_before(database_url, migration_id):
    """A database as a release before `migration_id` left it: the migrations before it
    applied. Yields (cursor, the driver's parameter mark) to write rows in that schema,
    then commits and closes."""
    from yoyo import read_migrations

    from imchat.model.engine import ensure_mysql_database, parse_database_url
    from imchat.model.migrate import _backend

    kind, params = parse_database_url(database_url)
    if kind == 'mysql':
        ensure_mysql_database(params)
    backend = _backend(database_url)
    try:
        with backend.lock(timeout=60):
            migrations = read_migrations(MIGRATIONS_DIR)
            backend.apply_migrations(backend.to_apply(migrations.filter(
                lambda m: m.id < migration_id)))
        yield backend.connection.cursor(), '?' if database_url.startswith('sqlite') else '%s'
        backend.connection.commit()
    finally:
        backend.connection.close()

def migration_ids():
    return sorted(os.path.splitext(name)[0] for name in os.listdir(MIGRATIONS_DIR)
                  if name.endswith(('.sql', '.py')) and not name.endswith('.rollback.sql'))


def export_release(commit, dest):
    """The server's files at `commit` (from this clone's history) in `dest`."""
    try:
        archive = subprocess.run(['git', '-C', ROOT, 'archive', '--format=tar', commit,
                                  'wsgi.py', 'imchat'], capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip('git is not installed')
    if archive.returncode != 0:
        message = 'commit {} is not in this clone: {}'.format(commit, archive.stderr.decode())
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter='data')


def post(base, path, token=None, **fields):
    url = base + path
    if token:
        fields['token'] = token
    return http(url, fields)


class OldServer(ServerProcess):
    """The previous release's own code, served as a real process."""

    def __init__(self, code_dir, database_url, tmp_path):
        super().__init__(tmp_path, database_url, name='old-server',
                         command=[sys.executable, os.path.join(code_dir, 'wsgi.py')],
                         cwd=code_dir, IMCHAT_LOG_LEVEL='WARNING')
        self.base = self.url
        self.start()

    def stop(self):
        assert super().stop() == 0
        assert not pid_alive(self.process.pid)
        text = self.log()
        assert 'Traceback' not in text, text


def ws_url(base_port, user, **params):
    query = {'id': user['id'], 'token': user['token']}
    query.update(params)
    return 'ws://127.0.0.1:{}/chat?{}'.format(
        base_port, '&'.join('{}={}'.format(k, v) for k, v in query.items()))


def fill_with_the_old_release(server):
    """Users, friendships, a community and messages of every kind, made through the
    previous release's own API; returns what a reader should find afterwards."""
    users = []
    for n in range(3):
        status, answer = post(server.base, '/user/register', mobile='1390000000{}'.format(n),
                              passwd='old-pass-{}'.format(n), nickname='old {}'.format(n),
                              memo='made by {} ✓'.format(PREVIOUS_RELEASE))
        assert status == 200, answer
        users.append(dict(answer['data'], passwd='old-pass-{}'.format(n)))
    a, b, c = users
    for one, other in ((a, b), (a, c)):
        status, answer = post(server.base, '/contact/addfriend', one['token'], dstid=other['id'])
        assert status == 200, answer
    status, answer = post(server.base, '/contact/createcommunity', a['token'], name='old hikers',
                          memo='since ' + PREVIOUS_RELEASE)
    assert status == 200, answer
    community = answer['data']
    for member in (b, c):
        status, answer = post(server.base, '/contact/joincommunity', member['token'],
                              dstid=community['id'])
        assert status == 200, answer

    sent = []  # (sender, frame, msgid)
    sender = ChatClient(ws_url(server.port, a))
    member = ChatClient(ws_url(server.port, b))
    try:
        frames = [
            dict(id='c-old-0000-1', cmd=10, dstid=b['id'], media=1, content='hello 👋 from the past'),
            dict(id=2, cmd=10, dstid=c['id'], media=4, url='/mnt/' + 'a' * 32 + '.png'),
            dict(id='c-old-0000-3', cmd=11, dstid=community['id'], media=1, content='group hello'),
            dict(id=4, cmd=10, dstid=b['id'], media=3, url='/mnt/' + 'b' * 32 + '.mp3',
                 amount=7),
        ]
        for frame in frames:
            sender.send(**frame)
            ack = sender.recv_ack(timeout=20)
            assert ack['code'] == 0, ack
            sent.append((a, frame, ack['msgid']))
        member.send(id='c-old-0000-5', cmd=11, dstid=community['id'], media=1, content='reply')
        ack = member.recv(timeout=20)
        while ack.get('cmd') != 1:  # the messages a sent come first
            ack = member.recv(timeout=20)
        assert ack['code'] == 0, ack
        sent.append((b, dict(cmd=11, dstid=community['id'], media=1, content='reply',
                             id='c-old-0000-5'), ack['msgid']))
    finally:
        sender.close()
        member.close()
    return users, community, sent


def start_today(database_url, tmp_path):
    app = create_app({'DATABASE_URL': database_url, 'PASSWD_COST': 4, 'LOG_LEVEL': 'WARNING',
                      'UPLOAD_DIR': str(tmp_path / 'mnt')})
    return app, LiveServer(app)


def stop_today(app, server):
    server.close()
    app.extensions['imchat'].close()


def test_migration_files_follow_the_naming_convention():
    names = [n for n in os.listdir(MIGRATIONS_DIR) if n.endswith(('.sql', '.py'))]
    assert names, 'no migrations'
    for name in names:
        assert MIGRATION_NAME.match(name) or name.endswith('.rollback.sql'), name
    assert not os.path.exists(os.path.join(MIGRATIONS_DIR, '__init__.py'))


def test_a_new_database_gets_every_migration_once(app_config):
    app = create_app(app_config)
    try:
        assert app.extensions['imchat'].applied_migrations == migration_ids()
        assert applied(app_config['DATABASE_URL']) == migration_ids()
    finally:
        app.extensions['imchat'].close()
    again = create_app(app_config)
    try:
        assert again.extensions['imchat'].applied_migrations == []
    finally:
        again.extensions['imchat'].close()


def test_migrate_command_reports_the_schema(runner, app):
    result = runner.invoke(args=['migrate'])
    assert result.exit_code == 0, result.output
    assert 'schema up to date' in result.output
    for migration_id in migration_ids():
        assert migration_id in result.output


@pytest.mark.process
def test_a_database_made_by_the_previous_release_upgrades_intact(database_url, tmp_path):
    code_dir = tmp_path / 'previous'
    code_dir.mkdir()
    export_release(PREVIOUS_RELEASE, code_dir)
    old = OldServer(str(code_dir), database_url, tmp_path)
    try:
        users, community, sent = fill_with_the_old_release(old)
    finally:
        old.stop()
    a, b, c = users

    app, server = start_today(database_url, tmp_path)
    try:
        assert app.extensions['imchat'].applied_migrations == migration_ids()
        base, port = server.url, server.port
        # Every user: the old token still works, the old password logs in.
        for user in users:
            status, answer = post(base, '/user/find', user['token'])
            assert status == 200, answer
            assert answer['data']['nickname'] == user['nickname']
            assert answer['data']['memo'] == 'made by {} ✓'.format(PREVIOUS_RELEASE)
            status, answer = post(base, '/user/login', mobile=user['mobile'],
                                  passwd=user['passwd'])
            assert status == 200, answer
            user['token'] = answer['data']['token']
        # Friendships, both ways.
        status, answer = post(base, '/contact/loadfriend', a['token'])
        assert sorted(f['id'] for f in answer['rows']) == sorted([b['id'], c['id']])
        status, answer = post(base, '/contact/loadfriend', b['token'])
        assert [f['id'] for f in answer['rows']] == [a['id']]
        status, answer = post(base, '/contact/addfriend', b['token'], dstid=a['id'])
        assert status == 409, answer
        # The community and its members.
        status, answer = post(base, '/contact/loadcommunity', c['token'])
        # A community made before issue 22 keeps the `open` join rule it always had.
        assert answer['rows'] == [dict(community, joinmode='open', announce=0)], answer
        status, answer = post(base, '/contact/members', b['token'], dstid=community['id'])
        assert sorted(m['id'] for m in answer['rows']) == sorted(u['id'] for u in users)
        # Every message, in history and in the catch-up over `since`.
        status, answer = post(base, '/chat/history', b['token'], cmd=10, dstid=a['id'])
        direct_ab = [(s, f, m) for s, f, m in sent if f['cmd'] == 10 and f['dstid'] == b['id']]
        assert [row['msgid'] for row in answer['rows']] == [m for _, _, m in direct_ab]
        assert answer['rows'][0]['content'] == 'hello 👋 from the past'
        assert answer['rows'][1]['url'] == '/mnt/' + 'b' * 32 + '.mp3'
        assert answer['rows'][1]['amount'] == 7
        status, answer = post(base, '/chat/history', c['token'], cmd=11, dstid=community['id'])
        group = [m for _, f, m in sent if f['cmd'] == 11]
        assert [row['msgid'] for row in answer['rows']] == group

        reader = ChatClient(ws_url(port, b, since=0), timeout=20)
        try:
            expected = sorted(m for s, f, m in sent
                              if (f['cmd'] == 10 and f['dstid'] == b['id'])
                              or f['cmd'] == 11)
            got = [reader.recv(timeout=20)['msgid'] for _ in expected]
            assert got == expected
            reader.expect_nothing(0.5)
        finally:
            reader.close()

        # Working: the same string id stored by the old release is recognised (its
        # clientid column survived), and a new message gets a higher id.
        sender = ChatClient(ws_url(port, a), timeout=20)
        try:
            first_frame, first_msgid = sent[0][1], sent[0][2]
            sender.send(**first_frame)
            ack = sender.recv_ack(timeout=20)
            assert ack['code'] == 0 and ack['msgid'] == first_msgid, ack
            sender.text(c['id'], 'hello from today')
            ack = sender.recv_ack(timeout=20)
            assert ack['code'] == 0 and ack['msgid'] > max(m for _, _, m in sent), ack
        finally:
            sender.close()
        status, answer = post(base, '/user/register', mobile='13900000009', passwd='new-pass')
        assert status == 200 and answer['data']['id'] > c['id'], answer
        status, answer = post(base, '/contact/createcommunity', b['token'], name='new one')
        assert status == 200 and answer['data']['id'] > community['id'], answer
    finally:
        stop_today(app, server)

    # A second start finds nothing to do.
    app, server = start_today(database_url, tmp_path)
    try:
        assert app.extensions['imchat'].applied_migrations == []
    finally:
        stop_today(app, server)


# The release whose server made the conversation table (issue 13) with its index on
# (ownerid, last_msgid), which migration 0002 drops.
CONVERSATIONS_RELEASE = 'f55ff63'


def table_indexes(app, table):
    db = app.extensions['imchat'].db
    with db_session:
        if db.provider.dialect == 'SQLite':
            rows = db.select("SELECT name FROM sqlite_master WHERE type = 'index' "
                             "AND tbl_name = $table")
        else:
            rows = db.select('SELECT DISTINCT index_name FROM information_schema.statistics '
                             'WHERE table_schema = DATABASE() AND table_name = $table')
    return set(rows)


def conversations_of_a_release(release, database_url, tmp_path):
    """Fill a database with `release`'s own server (fill_with_the_old_release); returns
    its users and each one's conversation list as that server gave it."""
    code_dir = tmp_path / 'previous'
    code_dir.mkdir()
    export_release(release, code_dir)
    old = OldServer(str(code_dir), database_url, tmp_path)
    try:
        users, _, _ = fill_with_the_old_release(old)
        before = {user['id']: post(old.base, '/chat/conversations', user['token'])[1]['rows']
                  for user in users}
    finally:
        old.stop()
    return users, before


@pytest.mark.process
def test_conversations_made_before_migration_0002_upgrade_intact(database_url, tmp_path):
    users, before = conversations_of_a_release(CONVERSATIONS_RELEASE, database_url, tmp_path)
    a, b, c = users
    assert len(before[b['id']]) == 2, before  # a friend and the community

    app, server = start_today(database_url, tmp_path)
    try:
        assert '0002_9-conversation-no-recency-index' in (
            app.extensions['imchat'].applied_migrations)
        assert 'idx_conversation__ownerid_last_msgid' not in table_indexes(app, 'conversation')
        base, port = server.url, server.port
        for user in users:
            status, answer = post(base, '/chat/conversations', user['token'])
            # Rows gained `muteuntil` (issue 22): an old conversation is not muted.
            assert status == 200 and answer['rows'] == [
                dict(row, muteuntil=0) for row in before[user['id']]], answer
        # Still kept up to date: b's chat with a comes first again, one more unread.
        sender = ChatClient(ws_url(port, a), timeout=20)
        try:
            sender.text(b['id'], 'after the upgrade')
            ack = sender.recv_ack(timeout=20)
            assert ack['code'] == 0, ack
        finally:
            sender.close()
        status, answer = post(base, '/chat/conversations', b['token'])
        first = answer['rows'][0]
        assert (first['target'], first['dstid'], first['last']['msgid']) == (
            10, a['id'], ack['msgid'])
        earlier = [row for row in before[b['id']] if row['target'] == 10][0]
        assert first['unread'] == earlier['unread'] + 1
    finally:
        stop_today(app, server)


def test_client_keys_stored_before_migration_0003_become_a_unique_key(database_url, tmp_path):
    """Migration 0003 makes (userid, clientid) unique, compared byte for byte. Keys that
    differ in case or trailing space were one value to MySQL's collation and stay two;
    a key stored twice before (a resend racing across nodes) keeps it on its first copy
    only; no message is lost; a resend then gets the right copy's ack."""
    from imchat.service.frame import Frame

    with migrated_before(database_url, '0003') as (cursor, mark):
        keys = ['twice-key-1', 'twice-key-1', 'CaseKey-01', 'casekey-01', 'pad-key-01',
                'pad-key-01 ', 'twice-key-1', None, None]
        for msgid, key in enumerate(keys, 1):
            cursor.execute('INSERT INTO message (id, userid, cmd, dstid, media, content, pic, '
                           "url, memo, amount, createat, clientid) VALUES ({0}, 7, 10, 8, 1, "
                           "'old', '', '', '', 0, {0}, {0})".format(mark),
                           (msgid, msgid, key))

    app = create_app({'DATABASE_URL': database_url, 'PASSWD_COST': 4, 'LOG_LEVEL': 'WARNING',
                      'UPLOAD_DIR': str(tmp_path / 'mnt')})
    try:
        svc = app.extensions['imchat']
        assert svc.applied_migrations[0] == '0003_9-message-unique-client-key'
        indexes = table_indexes(app, 'message')
        assert 'unq_message__userid_clientid' in indexes
        assert 'idx_message__userid_clientid' not in indexes
        with db_session:
            stored = dict(svc.db.select('SELECT id, clientid FROM message'))
            svc.db.Contact(ownerid=7, dstid=8, cate=1, createat=1)
        assert stored == {1: 'twice-key-1', 2: None, 3: 'CaseKey-01', 4: 'casekey-01',
                          5: 'pad-key-01', 6: 'pad-key-01 ', 7: None, 8: None, 9: None}

        def send(key):
            return svc.writer.submit(7, Frame(key, 10, 8, 1, content='again')).get(
                timeout=10)
        assert send('twice-key-1').msgid == 1
        assert send('casekey-01').msgid == 4
        assert send('pad-key-01 ').msgid == 6
        fresh = send('CASEKEY-01')
        assert fresh.msgid > 9 and send('CASEKEY-01').msgid == fresh.msgid
        with db_session:
            assert svc.db.Message.select().count() == 10
    finally:
        app.extensions['imchat'].close()


# The last commit whose conversation table has an `id` (before migration 0004).
CONVERSATION_ID_RELEASE = 'd206bf3'


def primary_key(app, table):
    db = app.extensions['imchat'].db
    with db_session:
        if db.provider.dialect == 'SQLite':
            rows = db.select('SELECT name, pk FROM pragma_table_info($table)')
            return [name for name, pk in sorted(rows, key=lambda row: row[1]) if pk]
        return list(db.select('SELECT column_name FROM information_schema.key_column_usage '
                              "WHERE table_schema = DATABASE() AND table_name = $table AND "
                              "constraint_name = 'PRIMARY' ORDER BY ordinal_position"))


@pytest.mark.process
def test_conversations_keyed_by_id_before_migration_0004_upgrade_intact(database_url,
                                                                        tmp_path):
    """Migration 0004 keys the conversation table by (ownerid, target, dstid): every
    row keeps its last message, read position and unread count, and messages, reads and
    the list go on working on the upgraded rows."""
    users, before = conversations_of_a_release(CONVERSATION_ID_RELEASE, database_url, tmp_path)
    a, b, c = users
    assert any(row['unread'] for row in before[b['id']]), before

    app, server = start_today(database_url, tmp_path)
    try:
        # 0004 is the one this database needed; later ones apply after it.
        assert app.extensions['imchat'].applied_migrations[0] == (
            '0004_9-conversation-keyed-by-owner-and-peer')
        assert primary_key(app, 'conversation') == ['ownerid', 'target', 'dstid']
        assert 'idx_conversation__target_dstid' in table_indexes(app, 'conversation')
        assert 'unq_conversation__ownerid_target_dstid' not in table_indexes(app,
                                                                          'conversation')
        base, port = server.url, server.port
        for user in users:
            status, answer = post(base, '/chat/conversations', user['token'])
            # Rows gained `muteuntil` (issue 22): an old conversation is not muted.
            assert status == 200 and answer['rows'] == [
                dict(row, muteuntil=0) for row in before[user['id']]], answer
        sender, reader = (ChatClient(ws_url(port, a), timeout=20),
                          ChatClient(ws_url(port, b), timeout=20))
        try:
            sender.text(b['id'], 'after the upgrade')
            ack = sender.recv_ack(timeout=20)
            assert ack['code'] == 0, ack
            status, answer = post(base, '/chat/conversations', b['token'])
            first = answer['rows'][0]
            earlier = [row for row in before[b['id']] if row['target'] == 10][0]
            assert (first['target'], first['dstid'], first['last']['msgid'],
                    first['unread']) == (10, a['id'], ack['msgid'], earlier['unread'] + 1)
            # A read moves the upgraded row's position (the compare-and-set by key).
            reader.send(cmd=12, target=10, dstid=a['id'], msgid=ack['msgid'])
            answer = reader.recv(timeout=20)
            while answer.get('cmd') != 1:  # its backlog comes first
                answer = reader.recv(timeout=20)
            assert answer['code'] == 0, answer
            status, answer = post(base, '/chat/conversations', b['token'])
            first = answer['rows'][0]
            assert (first['dstid'], first['readmsgid'], first['unread']) == (
                a['id'], ack['msgid'], 0)
        finally:
            sender.close()
            reader.close()
    finally:
        stop_today(app, server)


def test_mobiles_stored_with_a_plus_lose_it_in_migration_0008(database_url, tmp_path):
    """`+139...` and `139...` are one number (service.user.canonical_mobile): stored
    ones lose the +, unless the same number is already taken without it."""
    with migrated_before(database_url, '0008') as (cursor, mark):
        for user_id, mobile in ((1, '+13900000001'), (2, '13900000002'), (3, '+13900000002')):
            cursor.execute('INSERT INTO user (id, mobile, passwd, nickname, avatar, sex, memo, '
                           "createat, synced_msgid) VALUES ({0}, {0}, 'x', 'n', '', 'U', '', 1, "
                           '0)'.format(mark), (user_id, mobile))

    app = create_app({'DATABASE_URL': database_url, 'PASSWD_COST': 4, 'LOG_LEVEL': 'WARNING',
                      'UPLOAD_DIR': str(tmp_path / 'mnt')})
    try:
        svc = app.extensions['imchat']
        assert '0008_25-mobile-without-plus' in svc.applied_migrations
        with db_session:
            stored = dict(svc.db.select('SELECT id, mobile FROM user'))
        assert stored == {1: '13900000001', 2: '13900000002', 3: '+13900000002'}
        assert svc.users.find_by_mobile('+13900000001') == 1
    finally:
        app.extensions['imchat'].close()
