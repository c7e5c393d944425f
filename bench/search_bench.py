"""/chat/search on a big database: one user in C conversations (default 300) among M
stored messages (default 1,000,000), mixed Chinese and English.

Builds a fresh database (SQLite in a temp folder, or --mysql), stores the messages
directly (half of them in the user's conversations, the rest between other people),
has the follower's own code index them all in large transactions (timed;
SearchIndexer.catch_up), then times POST /chat/search through the whole Flask request
(the test client: no socket) for common and rare words, Chinese and English, in all the
user's conversations and in one, a page of 30: end to end, and the database's share
(the time inside the search's SQL calls, driver round trips included), which a machine
shared with other work inflates less. Run from the repository root:

    .venv/bin/python bench/search_bench.py                  # SQLite
    .venv/bin/python bench/search_bench.py --mysql mysql://root@127.0.0.1:3306/search_bench
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pony.orm import db_session  # noqa: E402

from imchat import create_app  # noqa: E402
from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND  # noqa: E402
from imchat.model.stream import insert_messages  # noqa: E402
from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG  # noqa: E402
from imchat.service import search as search_module  # noqa: E402

CHUNK = 5000
# Messages indexed a transaction: the bulk path (the follower takes 200 at a time).
INDEX_BATCH = 5000
FRIEND_BASE = 1000000
GROUP_BASE = 1000000
OTHER_USERS = 20000
OTHER_GROUPS = 2000
EN = ('meeting project report lunch tomorrow today please check update deadline client '
      'design review budget team the and to is we').split()
ZH = '天气 上海 北京 会议 项目 报告 午饭 明天 今天 客户 设计 预算 团队 我们 你好 谢谢 没问题 的 了 吗'.split()
# One message in this many holds each rare word.
RARE_EVERY = 10000

QUERIES = (('common English', 'meeting'), ('common Chinese', '天气'),
           ('common Chinese, 1 character', '的'), ('rare English', 'zebra'),
           ('rare Chinese', '麒麟'), ('two terms', 'meeting 上海'),
           ('English prefix', 'dead'))


def text(rng):
    if rng.random() < 0.5:
        body = ''.join(rng.choices(ZH, k=rng.randrange(4, 9)))
        if rng.random() < 0.3:
            body += ' ' + rng.choice(EN)
    else:
        body = ' '.join(rng.choices(EN, k=rng.randrange(5, 11)))
        if rng.random() < 0.3:
            body += ' ' + rng.choice(ZH)
    if rng.randrange(RARE_EVERY) == 0:
        body += ' zebra'
    if rng.randrange(RARE_EVERY) == 0:
        body += ' 麒麟'
    return body


def fill(db, user_id, conversations, messages, mine_share):
    rng = random.Random(1)
    groups = conversations // 5
    friends = conversations - groups
    with db_session:
        for n in range(groups):
            db.Contact(ownerid=user_id, dstid=GROUP_BASE + n, cate=CONTACT_COMMUNITY,
                       createat=0, joined_msgid=0)
        for n in range(friends):
            db.Contact(ownerid=user_id, dstid=FRIEND_BASE + n, cate=CONTACT_FRIEND, createat=0)
        db.User(id=FRIEND_BASE, mobile='13900000001', passwd='-', nickname='friend', createat=0)
    createat = int(time.time() * 1000) - messages
    stored = 0
    while stored < messages:
        rows = []
        for _ in range(min(CHUNK, messages - stored)):
            stored += 1
            if rng.random() < mine_share:
                n = rng.randrange(conversations)
                if n < friends:
                    peer = FRIEND_BASE + n
                    sender, cmd, dstid = ((user_id, CMD_SINGLE_MSG, peer) if rng.random() < 0.5
                                          else (peer, CMD_SINGLE_MSG, user_id))
                else:
                    sender, cmd, dstid = (FRIEND_BASE + rng.randrange(friends), CMD_ROOM_MSG,
                                          GROUP_BASE + n - friends)
            elif rng.random() < 0.8:
                sender, cmd, dstid = (2 * FRIEND_BASE + rng.randrange(OTHER_USERS),
                                      CMD_SINGLE_MSG, 2 * FRIEND_BASE + rng.randrange(OTHER_USERS))
            else:
                sender, cmd, dstid = (2 * FRIEND_BASE + rng.randrange(OTHER_USERS), CMD_ROOM_MSG,
                                      2 * GROUP_BASE + rng.randrange(OTHER_GROUPS))
            rows.append((sender, cmd, dstid, 1, text(rng), '', '', '', 0, createat + stored, None))
        retrying(lambda: _insert(db, rows))
        if stored % 200000 < CHUNK:
            print('  {:,} messages stored'.format(stored), flush=True)


def _insert(db, rows):
    with db_session:
        insert_messages(db, rows, True)


def retrying(work, attempts=60):
    """Run `work`, again after a pause when the database refuses (a shared server's
    connections all taken by others, as on a busy CI machine: 'Too many connections',
    then the app's pool refusing until its probe gets an answer)."""
    for attempt in range(attempts):
        try:
            return work()
        except Exception as error:
            if attempt == attempts - 1 or not any(
                    word in str(error).lower() for word in ('connections', 'unavailable')):
                raise
            time.sleep(1)


def bulk_index(svc):
    """The follower's code in large transactions, with the (term, conv, msgid) key made
    afterwards in one sorted pass: inserted row by row, a message's ~18 rows land in as
    many random places of it, which on this machine (a 128 MB buffer pool, SQLite's
    default 2 MB cache) slowed the backfill below 300 messages/s past 300,000."""
    db = svc.db
    sqlite = db.provider.dialect == 'SQLite'
    with db_session:
        if sqlite:
            db.execute('DROP INDEX IF EXISTS search_term_conv')
        else:
            found = db.select("SELECT COUNT(*) FROM information_schema.statistics WHERE "
                              "table_schema = DATABASE() AND table_name = 'search_term' "
                              "AND index_name = 'search_term_conv'")[0]
            if found:
                db.execute('ALTER TABLE search_term DROP INDEX search_term_conv')
    if sqlite:
        with db_session:
            db.execute('PRAGMA cache_size = -400000')
    retrying(lambda: svc.search_index.catch_up(INDEX_BATCH))
    started = time.monotonic()
    with db_session:
        if sqlite:
            db.execute('CREATE INDEX search_term_conv ON search_term (term, conv, msgid)')
        else:
            db.execute('ALTER TABLE search_term ADD INDEX search_term_conv (term, conv, msgid)')
    print('the (term, conv, msgid) key made in {:.0f} s'.format(time.monotonic() - started))


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000  # noqa: E731
    return 'p50 {:6.1f} p99 {:6.1f} max {:6.1f} ms'.format(
        pick(0.5), pick(0.99), samples[-1] * 1000)


class SqlClock:
    """Time spent in the search service's SQL calls (imchat.service.search's
    execute_sql, wrapped for the bench only)."""

    def __init__(self):
        self.spent = 0.0
        self._execute = search_module.execute_sql
        search_module.execute_sql = self._timed

    def _timed(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._execute(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - started


def time_search(client, headers, clock, requests, **fields):
    samples, in_sql, rows = [], [], 0
    for _ in range(requests):
        clock.spent = 0.0
        started = time.perf_counter()
        response = client.post('/chat/search', data=fields, headers=headers)
        samples.append(time.perf_counter() - started)
        in_sql.append(clock.spent)
        assert response.status_code == 200, response.json
        rows = len(response.json['rows'])
    return samples, in_sql, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mysql', help='mysql://user@host:port/db (dropped and made anew)')
    parser.add_argument('--conversations', type=int, default=300)
    parser.add_argument('--messages', type=int, default=1000000)
    parser.add_argument('--mine', type=float, default=0.5,
                        help="share of the messages in the user's conversations")
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--reuse', metavar='URL',
                        help='a database an earlier run filled (and maybe partly indexed): '
                             'index the rest and search it')
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix='imchat-search-bench-')
    if args.reuse:
        url = args.reuse
    elif args.mysql:
        import pymysql
        parts = urllib.parse.urlsplit(args.mysql)
        con = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                              user=parts.username or 'root', password=parts.password or '')
        con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(parts.path.lstrip('/')))
        con.close()
        url = args.mysql
    else:
        url = 'sqlite:///' + os.path.join(folder, 'imchat.db')
    # SEARCH_POLL_MS 0: this process indexes when told to (below), timed.
    # DB_TIMEOUT 0: no limit, for the bulk statements (and a reused database's start,
    # which builds the conversation list over every message stored).
    app = create_app({'DATABASE_URL': url, 'LOG_LEVEL': 'WARNING', 'PASSWD_COST': 4,
                      'DB_TIMEOUT': 0, 'SEARCH_POLL_MS': 0,
                      'UPLOAD_DIR': os.path.join(folder, 'mnt')})
    try:
        svc = app.extensions['imchat']
        client = app.test_client()
        account = {'mobile': '13900000000', 'passwd': 'bench-pass'}
        me = client.post('/user/login' if args.reuse else '/user/register',
                         data=account).json['data']
        headers = {'Authorization': 'Bearer ' + me['token']}
        print('{}: {:,} messages, one user in {} conversations ({:.0%} of the messages)'
              .format(svc.db.provider.dialect, args.messages, args.conversations, args.mine))
        if not args.reuse:
            started = time.monotonic()
            fill(svc.db, me['id'], args.conversations, args.messages, args.mine)
            print('stored in {:.0f} s'.format(time.monotonic() - started))
        started = time.monotonic()
        before = svc.search_index.position()
        bulk_index(svc)
        seconds = time.monotonic() - started
        print('{:,} messages indexed by the follower\'s code in {:.0f} s ({:,.0f} messages/s)'
              .format(args.messages - before, seconds, (args.messages - before) / seconds))
        scopes = (('all conversations', {}),
                  ('one 1:1 conversation', {'target': 10, 'dstid': FRIEND_BASE}),
                  ('one community', {'target': 11, 'dstid': GROUP_BASE}))
        print('POST /chat/search, a page of 30, {} requests each; end to end, then the '
              "database's share:".format(args.requests))
        clock = SqlClock()
        for scope, fields in scopes:
            for kind, q in QUERIES:
                samples, in_sql, rows = time_search(client, headers, clock, args.requests,
                                                    q=q, **fields)
                print('  {:22} {:30} {:2} rows  {}  | SQL {}'.format(
                    scope, '{} ({})'.format(kind, q), rows, percentiles(samples),
                    percentiles(in_sql)), flush=True)
    finally:
        app.extensions['imchat'].close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
