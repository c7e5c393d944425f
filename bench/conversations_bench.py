"""/chat/conversations on a big database: one user with C conversations among M stored
messages (default 500 and 1,000,000).

Starts imchat (`python wsgi.py`, the production server) on a fresh database, registers
the user over HTTP, fills the database directly (most messages between other people,
the rest in the user's 1:1 and group conversations), builds the conversation rows the
way a database from before conversations gets them at start, then times GET
/chat/conversations?limit=C over HTTP, and the service call alone in this process.
Run from the repository root:

    .venv/bin/python bench/conversations_bench.py                 # SQLite
    .venv/bin/python bench/conversations_bench.py --mysql mysql://root@127.0.0.1:3306/conv_bench
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chat_bench import Server  # noqa: E402  (patches gevent first)

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from pony.orm import db_session  # noqa: E402

from imchat import create_app  # noqa: E402
from imchat.model.entities import CONTACT_COMMUNITY  # noqa: E402
from imchat.model.stream import insert_messages  # noqa: E402
from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG
from imchat.service.conversation import ConversationService  # noqa: E402

CHUNK = 1000
FRIEND_BASE = 1000000
GROUP_BASE = 1000000
OTHER_USERS = 20000


def http(base, path, token=None, **fields):
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(base + path, data=data)
    if token:
        request.add_header('Authorization', 'Bearer ' + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def fill(db, user_id, conversations, messages, mine_share):
    """Store `messages` messages, `mine_share` of them in the user's conversations."""
    rng = random.Random(1)
    groups = conversations // 5
    friends = conversations - groups
    with db_session:
        for n in range(groups):
            db.Contact(ownerid=user_id, dstid=GROUP_BASE + n, cate=CONTACT_COMMUNITY,
                       createat=0, joined_msgid=0)
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
                    sender, cmd, dstid = (rng.choice((user_id, FRIEND_BASE + rng.randrange(
                        friends))), CMD_ROOM_MSG, GROUP_BASE + n - friends)
            elif rng.random() < 0.8:
                sender, cmd, dstid = (2 * FRIEND_BASE + rng.randrange(OTHER_USERS), CMD_SINGLE_MSG,
                                      2 * FRIEND_BASE + rng.randrange(OTHER_USERS))
            else:
                sender, cmd, dstid = (2 * FRIEND_BASE + rng.randrange(OTHER_USERS), CMD_ROOM_MSG,
                                      2 * GROUP_BASE + rng.randrange(2000))
            rows.append((sender, cmd, dstid, 1, 'message {}'.format(stored), '', '', '', 0,
                         createat + stored, None))
        with db_session:
            insert_messages(db, rows, True)
        if stored % 100000 < CHUNK:
            print('  {:,} messages stored'.format(stored), flush=True)


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000  # noqa: E731
    return 'p50 {:.1f} ms, p90 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms'.format(
        pick(0.5), pick(0.9), pick(0.99), samples[-1] * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mysql', help='mysql://user@host:port/db (dropped and made anew)')
    parser.add_argument('--conversations', type=int, default=500)
    parser.add_argument('--messages', type=int, default=1000000)
    parser.add_argument('--mine', type=float, default=0.3,
                        help="share of the messages in the user's conversations")
    parser.add_argument('--requests', type=int, default=200)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix='imchat-conv-bench-')
    if args.mysql:
        import pymysql
        parts = urllib.parse.urlsplit(args.mysql)
        con = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                              user=parts.username or 'root', password=parts.password or '')
        con.cursor().execute('DROP DATABASE IF EXISTS `{}`'.format(parts.path.lstrip('/')))
        con.close()
        url = args.mysql
    else:
        url = 'sqlite:///' + os.path.join(folder, 'imchat.db')
    server = Server(url)
    app = None
    try:
        me = http(server.base, '/user/register', mobile='13900000000', passwd='bench-pass')['data']
        app = create_app({'DATABASE_URL': url, 'LOG_LEVEL': 'WARNING'})
        db = app.extensions['imchat'].db
        started = time.monotonic()
        fill(db, me['id'], args.conversations, args.messages, args.mine)
        print('stored {:,} messages in {:.0f} s'.format(args.messages, time.monotonic() - started))
        started = time.monotonic()
        ConversationService(db).rebuild_if_missing()
        print('built the conversation rows in {:.1f} s'.format(time.monotonic() - started))
        service = app.extensions['imchat'].conversations
        rows = service.conversations(me['id'], args.conversations)
        assert len(rows) == args.conversations, len(rows)
        samples = []
        for _ in range(args.requests):
            started = time.perf_counter()
            service.conversations(me['id'], args.conversations)
            samples.append(time.perf_counter() - started)
        print('service call, {} rows: {}'.format(len(rows), percentiles(samples)))
        samples = []
        for _ in range(args.requests):
            started = time.perf_counter()
            reply = http(server.base, '/chat/conversations', me['token'],
                         limit=args.conversations)
            samples.append(time.perf_counter() - started)
        assert len(reply['rows']) == args.conversations
        print('HTTP /chat/conversations, {} rows: {}'.format(len(reply['rows']),
                                                            percentiles(samples)))
    finally:
        if app is not None:
            app.extensions['imchat'].close()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
