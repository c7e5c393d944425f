"""/chat/search (issue 20): Chinese and English, what is searched, only what the searcher
may read, recall, bad input, and /chat/history's `after` and `around`."""
import pytest

from imchat.service.event_frame import EventFrame
from imchat.service.frame import Frame
from imchat.service.outcomes import Stored


@pytest.fixture
def svc(app):
    return app.extensions['imchat']


@pytest.fixture
def send(svc):
    """Store a message as the writer does and wait for its commit; returns its msgid."""
    def send(sender, cmd, dstid, content='', media=1, **fields):
        outcome = svc.writer.submit(sender.id, Frame(None, cmd, dstid, media, content=content,
                                                       **fields)).get(timeout=10)
        assert isinstance(outcome, Stored), outcome.msg
        return outcome.msgid
    return send


@pytest.fixture
def search(client, svc):
    """Search as `account` once the follower has indexed everything stored."""
    def search(account, q, status=200, **fields):
        svc.search_index.catch_up()
        if q is not None:
            fields['q'] = q
        response = client.post('/chat/search', data=fields, headers=account.headers)
        assert response.status_code == status, response.json
        return response.json
    return search


def found(reply):
    return [row['content'] for row in reply['rows']]


@pytest.fixture
def pair(auth):
    alice, bob = auth.register(nickname='alice'), auth.register(nickname='bob')
    auth.befriend(alice, bob)
    return alice, bob


def test_two_character_chinese_words_and_single_characters(pair, send, search):
    alice, bob = pair
    send(alice, 10, bob.id, '今天天气很好，我们去上海吧')
    send(bob, 10, alice.id, '明天北京下雨')
    assert found(search(alice, '天气')) == ['今天天气很好，我们去上海吧']
    assert found(search(bob, '上海')) == ['今天天气很好，我们去上海吧']
    assert found(search(alice, '雨')) == ['明天北京下雨']
    assert found(search(alice, '天')) == ['明天北京下雨', '今天天气很好，我们去上海吧']
    assert found(search(alice, '天气很好')) == ['今天天气很好，我们去上海吧']
    assert found(search(alice, '天气下雨')) == []


def test_english_is_case_insensitive_and_matches_words_and_prefixes(pair, send, search):
    alice, bob = pair
    send(alice, 10, bob.id, 'Meeting moved to Friday')
    send(alice, 10, bob.id, 'Go home')
    send(alice, 10, bob.id, 'ok, lunch?')
    assert found(search(bob, 'meet')) == ['Meeting moved to Friday']
    assert found(search(bob, 'MEETING')) == ['Meeting moved to Friday']
    assert found(search(bob, 'fri')) == ['Meeting moved to Friday']
    assert found(search(bob, 'go')) == ['Go home']
    assert found(search(bob, 'ok')) == ['ok, lunch?']
    # A prefix, not any substring: "eting" is inside "Meeting" but starts no word.
    assert found(search(bob, 'eting')) == []
    assert found(search(bob, 'extraordinarily')) == []


def test_every_term_must_match(pair, send, search):
    alice, bob = pair
    send(alice, 10, bob.id, 'meeting in 上海 on Friday')
    send(alice, 10, bob.id, 'meeting in 北京')
    assert found(search(bob, 'meeting 上海')) == ['meeting in 上海 on Friday']
    assert found(search(bob, 'meet fri')) == ['meeting in 上海 on Friday']
    assert found(search(bob, 'meeting tokyo')) == []


def test_punctuation_and_emoji_neither_crash_nor_match_everything(pair, send, search):
    alice, bob = pair
    send(alice, 10, bob.id, 'party tonight 🎉!!!')
    send(alice, 10, bob.id, 'nothing here')
    assert found(search(bob, '🎉 party!')) == ['party tonight 🎉!!!']
    assert found(search(bob, '"party" * (')) == ['party tonight 🎉!!!']
    for q in ('!!!', '🎉', '，。', '*'):
        reply = search(bob, q, status=400)
        assert reply['field'] == 'q' and reply['reason'] == 'invalid'


def test_readable_fields_are_searched_and_urls_are_not(pair, send, search):
    alice, bob = pair
    send(alice, 10, bob.id, '季度报告', media=2, memo='销售数字 summary',
         url='http://example.com/secretpath', pic='http://example.com/pic.png')
    send(alice, 10, bob.id, 'Design review', media=7, memo='slides', url='http://x.test/y')
    send(alice, 10, bob.id, '42', media=9, memo='张伟')
    send(alice, 10, bob.id, 'budget.xlsx', media=10, url='/mnt/abc.xlsx', amount=100)
    send(alice, 10, bob.id, '', media=4, url='http://example.com/holiday.png')
    assert found(search(bob, '报告')) == ['季度报告']
    assert found(search(bob, 'summary')) == ['季度报告']
    assert found(search(bob, 'slides')) == ['Design review']
    assert found(search(bob, '张伟')) == ['42']
    assert found(search(bob, 'budget')) == ['budget.xlsx']
    assert found(search(bob, 'secretpath')) == []
    assert found(search(bob, 'holiday')) == []
    assert found(search(bob, 'example')) == []


def test_rows_are_history_rows_with_their_conversation(pair, auth, send, search, client):
    alice, bob = pair
    group = auth.create_community(alice)
    auth.join(bob, group['id'])
    first = send(alice, 10, bob.id, 'apple one')
    second = send(bob, 11, group['id'], 'apple two')
    rows = search(alice, 'apple')['rows']
    assert [(r['msgid'], r['target'], r['peer'], r['userid']) for r in rows] == [
        (second, 11, group['id'], bob.id), (first, 10, bob.id, alice.id)]
    history = client.post('/chat/history', data={'cmd': 10, 'dstid': bob.id},
                          headers=alice.headers).json['rows']
    assert {k: v for k, v in rows[1].items() if k not in ('target', 'peer')} == history[0]
    assert [r['peer'] for r in search(bob, 'apple')['rows']] == [group['id'], alice.id]


def test_one_conversation_and_paging_with_before(pair, auth, send, search):
    alice, bob = pair
    carol = auth.register()
    auth.befriend(alice, carol)
    ids = [send(alice, 10, bob.id, 'report %d' % i) for i in range(7)]
    send(alice, 10, carol.id, 'report for carol')
    page = search(alice, 'report', target=10, dstid=bob.id, limit=3)['rows']
    assert [r['msgid'] for r in page] == ids[:-4:-1]
    page = search(alice, 'report', target=10, dstid=bob.id, limit=3,
                  before=page[-1]['msgid'])['rows']
    assert [r['msgid'] for r in page] == ids[3:0:-1]
    assert len(search(alice, 'report')['rows']) == 8


def test_strangers_see_nothing_of_others_conversations(pair, auth, send, search):
    alice, bob = pair
    eve = auth.register()
    group = auth.create_community(alice)
    send(alice, 10, bob.id, 'secret plan')
    send(alice, 11, group['id'], 'secret group plan')
    assert found(search(eve, 'secret')) == []
    assert found(search(eve, 'secret', target=10, dstid=bob.id)) == []


def test_members_find_community_messages_only_from_when_they_joined(auth, send, search):
    owner, late = auth.register(), auth.register()
    group = auth.create_community(owner)
    send(owner, 11, group['id'], 'early news')
    auth.join(late, group['id'])
    send(owner, 11, group['id'], 'later news')
    assert found(search(late, 'news')) == ['later news']
    assert found(search(late, 'news', target=11, dstid=group['id'])) == ['later news']
    assert found(search(owner, 'news')) == ['later news', 'early news']


def test_who_left_or_was_kicked_stops_finding_the_community(auth, client, send, search):
    owner, leaver, kicked = auth.register(), auth.register(), auth.register()
    group = auth.create_community(owner)
    auth.join(leaver, group['id'])
    auth.join(kicked, group['id'])
    send(owner, 11, group['id'], 'before they went')
    assert found(search(leaver, 'went')) == ['before they went']
    assert client.post('/contact/quitcommunity', data={'dstid': group['id']},
                       headers=leaver.headers).status_code == 200
    assert client.post('/contact/kick', data={'dstid': group['id'], 'memberid': kicked.id},
                       headers=owner.headers).status_code == 200
    send(owner, 11, group['id'], 'after they went')
    for person in (leaver, kicked):
        assert found(search(person, 'went')) == []
        reply = search(person, 'went', status=403, target=11, dstid=group['id'])
        assert reply['field'] == 'dstid' and reply['reason'] == 'community.not_member'
    assert found(search(owner, 'went')) == ['after they went', 'before they went']


def test_unfriended_history_stays_searchable(pair, client, send, search):
    alice, bob = pair
    send(alice, 10, bob.id, 'old friendly words')
    assert client.post('/contact/delfriend', data={'dstid': bob.id},
                       headers=alice.headers).status_code == 200
    assert found(search(alice, 'friendly')) == ['old friendly words']
    assert found(search(bob, 'friendly', target=10, dstid=alice.id)) == ['old friendly words']


def test_a_recalled_message_leaves_the_index(pair, svc, send, search):
    alice, bob = pair
    kept = send(alice, 10, bob.id, '保留 the keeper')
    gone = send(alice, 10, bob.id, '撤回 the mistake')
    assert len(search(bob, 'the')['rows']) == 2
    outcome = svc.writer.submit(alice.id, EventFrame(None, 14, msgid=gone)).get(timeout=10)
    assert isinstance(outcome, Stored)
    assert [r['msgid'] for r in search(bob, 'the')['rows']] == [kept]
    assert found(search(bob, '撤回')) == [] and found(search(alice, 'mistake')) == []
    tables = ('search_fts', 'rowid') if svc.db.provider.dialect == 'SQLite' else (
        'search_doc', 'msgid')
    from pony.orm import db_session
    with db_session:
        assert svc.db.select('SELECT COUNT(*) FROM search_term WHERE msgid = $gone')[0] == 0
        assert svc.db.select('SELECT COUNT(*) FROM {} WHERE {} = $gone'.format(*tables))[0] == 0


def test_an_edited_message_is_found_by_its_new_text_only(pair, svc, send, search):
    """An edit (cmd 18, issue 23) indexes the message's new text in place of the old."""
    import json

    from imchat.service.frame import parse_frame

    alice, bob = pair
    msgid = send(alice, 10, bob.id, 'meet at the apple store')
    assert [r['msgid'] for r in search(bob, 'apple')['rows']] == [msgid]
    edit = parse_frame(json.dumps({'cmd': 18, 'id': 'edit-0001', 'msgid': msgid,
                                   'content': 'meet at the 苹果 banana stand'}), 65536)
    outcome = svc.writer.submit(alice.id, edit).get(timeout=10)
    assert isinstance(outcome, Stored), outcome.msg
    assert found(search(bob, 'apple')) == []
    assert [r['msgid'] for r in search(bob, 'banana')['rows']] == [msgid]
    assert [r['msgid'] for r in search(alice, '苹果')['rows']] == [msgid]


def test_a_message_recalled_before_it_was_indexed_is_never_found(pair, svc, send, search):
    alice, bob = pair
    svc.search_index.stop()  # the follower of this test's app stays behind
    gone = send(alice, 10, bob.id, 'typo message')
    svc.writer.submit(alice.id, EventFrame(None, 14, msgid=gone)).get(timeout=10)
    assert found(search(bob, 'typo')) == []


def test_the_follower_indexes_on_its_own(pair, svc, send):
    alice, bob = pair
    msgid = send(alice, 10, bob.id, 'background indexing')
    index = svc.search_index
    while index.position() < msgid:  # the app's follower greenlet, polling
        index._greenlet.join(timeout=0.05)
    rows = svc.search.search(bob.id, 'background')
    assert [r['msgid'] for r in rows] == [msgid]


def test_two_followers_never_index_a_message_twice(pair, svc, send, app_config):
    from imchat.service.search_index import SearchIndexer
    import gevent

    alice, bob = pair
    for i in range(30):
        send(alice, 10, bob.id, 'twice %d' % i)
    svc.search_index.stop()
    others = [SearchIndexer(svc.db, batch=4) for _ in range(3)]
    gevent.joinall([gevent.spawn(other.catch_up) for other in others], raise_error=True)
    assert len(svc.search.search(bob.id, 'twice', limit=50)) == 30


@pytest.mark.parametrize('fields, field', [
    ({'q': ''}, 'q'),
    ({}, 'q'),
    ({'q': 'a' * 101}, 'q'),
    ({'q': '天' * 200}, 'q'),
    ({'q': 'x', 'before': 'abc'}, 'before'),
    ({'q': 'x', 'before': '0'}, 'before'),
    ({'q': 'x', 'limit': '51'}, 'limit'),
    ({'q': 'x', 'target': '12', 'dstid': '1'}, 'target'),
    ({'q': 'x', 'target': '10'}, 'dstid'),
    ({'q': 'x', 'dstid': '5'}, 'target'),
    ({'q': 'a b c d e f g h i'}, 'q'),
])
def test_bad_input_is_400_naming_the_field(pair, search, fields, field):
    alice, _ = pair
    fields = dict(fields)  # the parameters are shared by both backends' runs
    reply = search(alice, fields.pop('q', None), status=400, **fields)
    assert reply['field'] == field and reply['reason'] == 'invalid'


def test_a_community_the_user_is_not_in_is_403_and_a_missing_one_404(pair, auth, search):
    alice, bob = pair
    group = auth.create_community(bob)
    reply = search(alice, 'x', status=403, target=11, dstid=group['id'])
    assert reply['field'] == 'dstid' and reply['reason'] == 'community.not_member'
    reply = search(alice, 'x', status=404, target=11, dstid=999999)
    assert reply['reason'] == 'not_found.community'
    assert search(alice, 'x', status=404, target=10, dstid=999999)['field'] == 'dstid'


def test_search_needs_a_token(client):
    assert client.post('/chat/search', data={'q': 'x'}).status_code == 401


def test_history_around_opens_a_message_in_place(pair, send, client):
    alice, bob = pair
    ids = [send(alice, 10, bob.id, 'm%d' % i) for i in range(20)]
    rows = client.post('/chat/history', data={'cmd': 10, 'dstid': alice.id, 'around': ids[10],
                                              'limit': 6}, headers=bob.headers).json['rows']
    assert [r['msgid'] for r in rows] == ids[7:13]
    rows = client.post('/chat/history', data={'cmd': 10, 'dstid': alice.id, 'around': ids[1],
                                              'limit': 6}, headers=bob.headers).json['rows']
    assert [r['msgid'] for r in rows] == ids[0:6]  # the page is filled from after
    rows = client.post('/chat/history', data={'cmd': 10, 'dstid': alice.id, 'around': ids[18],
                                              'limit': 6}, headers=bob.headers).json['rows']
    assert [r['msgid'] for r in rows] == ids[14:]  # and from before, near the newest
    rows = client.post('/chat/history', data={'cmd': 10, 'dstid': alice.id, 'after': ids[15]},
                       headers=bob.headers).json['rows']
    assert [r['msgid'] for r in rows] == ids[16:]


def test_history_window_keeps_the_rules_of_history(pair, auth, send, client):
    alice, bob = pair
    group = auth.create_community(alice)
    msgid = send(alice, 11, group['id'], 'members only')
    response = client.post('/chat/history', data={'cmd': 11, 'dstid': group['id'],
                                                  'around': msgid}, headers=bob.headers)
    assert response.status_code == 403
    response = client.post('/chat/history', data={'cmd': 10, 'dstid': bob.id, 'around': 'x'},
                           headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == 'around'
    response = client.post('/chat/history', data={'cmd': 10, 'dstid': bob.id, 'around': 5,
                                                  'before': 9}, headers=alice.headers)
    assert response.status_code == 400 and response.json['field'] == 'around'


@pytest.fixture
def store_many(svc):
    """Store 1:1 text messages straight into the table, as many as a test needs."""
    from pony.orm import db_session

    from imchat.model.stream import insert_messages

    def store_many(rows):
        with db_session:
            return insert_messages(svc.db, [(sender.id, 10, dstid, 1, text, '', '', '', 0, 0,
                                             None) for sender, dstid, text in rows], True)
    return store_many


def test_one_conversation_is_searched_from_its_own_key(auth, pair, store_many, search, svc):
    """More newer matches in other conversations than a request checks do not hide a
    conversation's own: its search reads (term, conversation) from the index."""
    from imchat.service.search import CANDIDATES_MAX

    alice, bob = pair
    carol = auth.register(nickname='carol')
    auth.befriend(alice, carol)
    store_many([(alice, bob.id, 'budget for bob')])
    store_many([(alice, carol.id, 'budget %d for carol' % i) for i in range(CANDIDATES_MAX + 100)])
    reply = search(alice, 'budget', target=10, dstid=bob.id)
    assert found(reply) == ['budget for bob']
    reply = search(bob, '预算 budget', target=10, dstid=alice.id)
    assert found(reply) == []
    text, params = statement(svc, alice, 'budget', target=10, dstid=bob.id)
    assert 'search_term_conv' in plan(svc, text, params)


def statement(svc, account, q, target=None, dstid=None):
    """The SQL a search runs for its candidates, and its values."""
    from pony.orm import db_session

    from imchat.service.search import parse_query
    with db_session:
        scope, scope_params, conv = svc.search._scope(account.id, target, dstid)
        return svc.search._statement(parse_query(q), scope, scope_params, conv)


def plan(svc, text, params):
    from pony.orm import db_session

    from imchat.model.sql import execute_sql
    explain = 'EXPLAIN QUERY PLAN ' if svc.db.provider.dialect == 'SQLite' else 'EXPLAIN '
    with db_session:
        return repr(execute_sql(svc.db, explain + text, params + [2 ** 62, 60]).fetchall())


def test_several_terms_start_from_the_rarest(pair, store_many, search, svc):
    """A rare term beside a common one is found however many newer messages hold the
    common one alone."""
    from imchat.service.search import CANDIDATES_MAX

    alice, bob = pair
    store_many([(alice, bob.id, 'quarterly zebra report')])
    store_many([(alice, bob.id, 'quarterly report %d' % i) for i in range(CANDIDATES_MAX + 100)])
    assert found(search(bob, 'quarterly zebra')) == ['quarterly zebra report']
    assert found(search(bob, 'zebr quar', target=10, dstid=alice.id)) == [
        'quarterly zebra report']
    assert found(search(bob, 'quarterly 斑马')) == []
    for fields in ({}, {'target': 10, 'dstid': alice.id}):
        text, params = statement(svc, bob, 'quarterly zebra', **fields)
        assert params[0] == 'zebr'  # the token read from its key; 'quar' is probed
        assert statement(svc, bob, 'quarterly 斑马', **fields) is None  # 斑马: no match


def test_the_follower_yields_to_sending_and_catches_up_once_it_stops(pair, svc, store_many):
    """While messages keep being stored (a server at full load) sending keeps at least
    nine tenths of the time: the follower falls behind instead. Once nothing new is
    stored the follower goes on without waiting."""
    import time

    import gevent

    from imchat.service.search_index import SearchIndexer

    alice, bob = pair
    svc.search_index.stop()
    store_many([(alice, bob.id, 'load %d' % i) for i in range(20 * 30)])
    follower = SearchIndexer(svc.db, poll_seconds=0.01, batch=20)
    passes = []  # (start, end) of each pass
    index_next = follower.index_next

    def timed(batch=None):
        started = time.monotonic()
        more = index_next(batch)
        passes.append((started, time.monotonic()))
        return more
    follower.index_next = timed

    def share(window):
        return sum(end - start for start, end in window) / (window[-1][1] - window[0][0])

    sending = True

    def send():  # a message every few milliseconds
        while sending:
            store_many([(bob, alice.id, 'more')])
            gevent.sleep(0.005)
    sender = gevent.spawn(send)
    try:
        follower.start()
        while len(passes) < 6:
            gevent.sleep(0.01)
        loaded = list(passes)
    finally:
        sending = False
        sender.join()
    while len(passes) < 30:
        gevent.sleep(0.01)
    follower.stop()
    assert share(loaded[:6]) <= 0.1, loaded
    quiet = passes[len(loaded) + 2:30]
    assert share(quiet) >= 0.5, quiet
