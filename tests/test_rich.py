"""Richer messages end to end (docs/protocol.md, "Richer messages"): edit (cmd 18),
reactions (cmd 19), replies, mentions, forwarding; a real server, real WebSockets,
two and three people, on SQLite and MySQL. Files (media 10) are in test_rich_files.py."""
import pytest
from pony.orm import db_session

from imchat.service import rich
from tests.test_chat import connect, pair, wait_for  # noqa: F401 (fixtures)
from tests.test_conversations import conversation, group_of_three  # noqa: F401


def history(client, account, cmd, dstid, **query):
    response = client.get('/chat/history', query_string=dict(cmd=cmd, dstid=dstid, **query),
                          headers=account.headers)
    assert response.status_code == 200, response.json
    return response.json['rows']


def by_id(rows, msgid):
    found = [row for row in rows if row['msgid'] == msgid]
    assert len(found) == 1, rows
    return found[0]


def sent(ws, **frame):
    """Send a frame and return its ack, passing over what is delivered meanwhile (the
    tests that look at those frames receive them before sending)."""
    ws.send(**frame)
    while True:
        got = ws.recv()
        if got.get('cmd') == 1:
            return got


def refused(ws, reason, **frame):
    ack = sent(ws, **frame)
    assert ack['code'] == -1 and ack.get('reason') == reason, ack
    return ack


# -- cmd 18: edit -----------------------------------------------------------------------

def test_an_edit_reaches_everyone_and_history_shows_the_latest_text(pair, connect, auth, client):
    alice, bob = pair
    a, laptop, b = connect(alice), connect(auth.login(alice)), connect(bob)
    [msgid] = a.send_texts(bob.id, ['helo'])
    b.recv(), laptop.recv()
    ack = sent(a, cmd=18, msgid=msgid, content='hello')
    assert ack['code'] == 0 and ack['msgid'] > msgid
    event = {'msgid': ack['msgid'], 'userid': alice.id, 'cmd': 18, 'target': 10,
             'dstid': bob.id, 'editedmsgid': msgid, 'content': 'hello',
             'createat': ack['createat']}
    assert b.recv() == event
    assert laptop.recv() == event
    row = by_id(history(client, bob, 10, alice.id), msgid)
    assert row['content'] == 'hello' and row['editedat'] >= row['createat']
    # Earlier texts are not kept; the edit event is no history row of its own.
    assert [r['msgid'] for r in history(client, bob, 10, alice.id)] == [msgid]
    last = conversation(client, bob, 10, alice.id)['last']
    assert (last['msgid'], last['content'], 'editedat' in last) == (msgid, 'hello', True)
    # The conversation did not move: an edit is no new message.
    assert conversation(client, bob, 10, alice.id)['unread'] == 1


def test_edits_are_refused_with_reasons(pair, connect, app, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    [text, gone] = a.send_texts(bob.id, ['mine', 'to recall'])
    [theirs] = [sent(b, cmd=10, dstid=alice.id, media=1, content='theirs')['msgid']]
    image = sent(a, cmd=10, dstid=bob.id, media=4, url='/mnt/x.png')['msgid']
    assert sent(a, cmd=14, msgid=gone)['code'] == 0
    refused(a, 'edit.not_yours', cmd=18, msgid=theirs, content='x')
    refused(a, 'edit.recalled', cmd=18, msgid=gone, content='x')
    refused(a, 'edit.not_text', cmd=18, msgid=image, content='x')
    refused(a, 'edit.not_found', cmd=18, msgid=10 ** 9, content='x')
    assert sent(a, cmd=18, msgid=text)['code'] == -1  # no content: refused by the parser
    db = app.extensions['imchat'].db
    with db_session:
        message = db.Message[text]
        message.createat -= (2 * 24 * 3600 + 1) * 1000  # sent more than two days ago
    refused(a, 'edit.too_late', cmd=18, msgid=text, content='x')
    assert by_id(history(client, bob, 10, alice.id), text)['content'] == 'mine'


def test_an_edit_in_a_group_reaches_the_members(group_of_three, connect, client):
    alice, bob, carol, group = group_of_three
    a, b, c = connect(alice), connect(bob), connect(carol)
    [msgid] = a.send_texts(group, ['hi al'], cmd=11)
    b.recv(), c.recv()
    assert sent(a, cmd=18, msgid=msgid, content='hi all')['code'] == 0
    for ws in (b, c):
        event = ws.recv()
        assert (event['cmd'], event['target'], event['editedmsgid'], event['content']) == (
            18, 11, msgid, 'hi all')
    assert by_id(history(client, carol, 11, group), msgid)['content'] == 'hi all'


# -- cmd 19: reactions ------------------------------------------------------------------

def test_reactions_reach_three_people_and_are_summarised(group_of_three, connect, client):
    alice, bob, carol, group = group_of_three
    a, b, c = connect(alice), connect(bob), connect(carol)
    [msgid] = a.send_texts(group, ['lunch?'], cmd=11)
    b.recv(), c.recv()
    assert sent(b, cmd=19, msgid=msgid, emoji='👍', on=1)['code'] == 0
    for ws in (a, c):
        event = ws.recv()
        assert (event['cmd'], event['reactedmsgid'], event['userid'], event['emoji'],
                event['on'], event['target'], event['dstid']) == (
            19, msgid, bob.id, '👍', 1, 11, group)
    assert sent(c, cmd=19, msgid=msgid, emoji='👍', on=1)['code'] == 0
    assert a.recv()['userid'] == b.recv()['userid'] == carol.id
    rows = {who.id: by_id(history(client, who, 11, group), msgid)
            for who in (alice, bob, carol)}
    assert rows[alice.id]['reactions'] == {'👍': {'count': 2, 'mine': 0}}
    assert rows[bob.id]['reactions'] == {'👍': {'count': 2, 'mine': 1}}
    # One emoji per person: a new one replaces it, and says which it replaced.
    ack = sent(b, cmd=19, msgid=msgid, emoji='❤️', on=1)
    event = a.recv()
    assert (event['emoji'], event['on'], event['replaced']) == ('❤️', 1, '👍')
    assert c.recv() == event
    assert by_id(history(client, bob, 11, group), msgid)['reactions'] == {
        '👍': {'count': 1, 'mine': 0}, '❤️': {'count': 1, 'mine': 1}}
    # Emoji that MySQL's collations hold equal stay apart.
    assert sent(a, cmd=19, msgid=msgid, emoji='😂', on=1)['code'] == 0
    assert by_id(history(client, alice, 11, group), msgid)['reactions'] == {
        '👍': {'count': 1, 'mine': 0}, '❤️': {'count': 1, 'mine': 0}, '😂': {'count': 1, 'mine': 1}}
    assert sent(a, cmd=19, msgid=msgid, emoji='😂', on=0)['code'] == 0
    for ws in (b, c):
        assert [(e['emoji'], e['on']) for e in ws.recv_messages(2)] == [('😂', 1), ('😂', 0)]
    # Removed.
    assert sent(b, cmd=19, msgid=msgid, emoji='❤️', on=0)['msgid'] > ack['msgid']
    assert a.recv()['on'] == 0
    assert by_id(history(client, alice, 11, group), msgid)['reactions'] == {
        '👍': {'count': 1, 'mine': 0}}
    # Reactions move no conversation.
    assert conversation(client, alice, 11, group)['last']['msgid'] == msgid


def test_reactions_are_refused_with_reasons(pair, connect, auth, monkeypatch):
    alice, bob = pair
    stranger = auth.register()
    a, b, s = connect(alice), connect(bob), connect(stranger)
    [msgid, gone] = a.send_texts(bob.id, ['react to me', 'gone'])
    assert sent(a, cmd=14, msgid=gone)['code'] == 0
    refused(s, 'reaction.not_found', cmd=19, msgid=msgid, emoji='👍', on=1)
    refused(b, 'reaction.recalled', cmd=19, msgid=gone, emoji='👍', on=1)
    refused(b, 'reaction.not_set', cmd=19, msgid=msgid, emoji='👍', on=0)
    for not_one in ('ab', '👍👍', '', 'x' * 40, 5):
        ack = sent(b, cmd=19, msgid=msgid, emoji=not_one, on=1)
        assert ack['code'] == -1 and 'emoji' in ack['msg'], ack
    monkeypatch.setattr(rich, 'DISTINCT_EMOJI_MAX', 1)
    assert sent(a, cmd=19, msgid=msgid, emoji='😂', on=1)['code'] == 0
    refused(b, 'reaction.too_many', cmd=19, msgid=msgid, emoji='👍', on=1)
    assert sent(b, cmd=19, msgid=msgid, emoji='😂', on=1)['code'] == 0


def test_reactions_are_limited_in_rate(pair, connect, app):
    alice, bob = pair
    app.extensions['imchat'].reaction_rate.settings.message_burst = 3
    a = connect(alice)
    [msgid] = a.send_texts(bob.id, ['spam me'])
    acks = [sent(a, cmd=19, msgid=msgid, emoji='👍', on=n % 2 == 0 and 1 or 0)
            for n in range(6)]
    assert [ack.get('reason') for ack in acks].count('rate_limited.reaction') >= 2, acks


# -- offline catch-up --------------------------------------------------------------------

def test_edits_and_reactions_reach_an_offline_device_through_since(pair, connect, client):
    alice, bob = pair
    a = connect(alice)
    [msgid] = a.send_texts(bob.id, ['draft'])
    b = connect(bob)
    assert b.recv()['msgid'] == msgid
    b.close()
    edit = sent(a, cmd=18, msgid=msgid, content='final')['msgid']
    reaction = sent(a, cmd=19, msgid=msgid, emoji='🎉', on=1)['msgid']
    again = connect(bob, since=msgid)
    got = again.recv_messages(2)
    assert [(m['cmd'], m['msgid']) for m in got] == [(18, edit), (19, reaction)]
    assert got[0]['content'] == 'final' and got[1]['emoji'] == '🎉'
    # Without since, from the start: the message itself with the latest text and reactions.
    fresh = connect(bob, since=0)
    first = fresh.recv()
    assert (first['msgid'], first['content'], first['reactions']) == (
        msgid, 'final', {'🎉': {'count': 1, 'mine': 0}})


# -- replies ------------------------------------------------------------------------------

def test_a_reply_carries_a_quote_of_the_message_it_answers(pair, connect, client):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    long_text = 'x' * 150
    [asked] = a.send_texts(bob.id, [long_text])
    b.recv()
    ack = sent(b, cmd=10, dstid=alice.id, media=1, content='yes', replyto=asked)
    got = a.recv()
    assert got['replyto'] == asked
    assert got['reply'] == {'msgid': asked, 'userid': alice.id, 'media': 1,
                            'content': 'x' * 100, 'recalled': 0}
    assert sent(a, cmd=14, msgid=asked)['code'] == 0
    row = by_id(history(client, alice, 10, bob.id), ack['msgid'])
    assert row['reply'] == {'msgid': asked, 'userid': alice.id, 'media': 0, 'content': '',
                            'recalled': 1}


def test_a_reply_read_back_from_the_database_keeps_its_quote(pair, connect, app):
    """What the gap filler, a late commit's delivery and a join's catch-up release from
    the database carries the quote as the live message did."""
    from imchat.service.bus.gaps import read_message
    from imchat.service.writer_gaps import read_messages

    alice, bob = pair
    a, b = connect(alice), connect(bob)
    [asked] = a.send_texts(bob.id, ['shall we?'])
    b.recv()
    reply = sent(b, cmd=10, dstid=alice.id, media=1, content='yes', replyto=asked)['msgid']
    live = a.recv()
    db = app.extensions['imchat'].db
    assert read_message(db, reply)['reply'] == live['reply']
    [released] = [w for w in read_messages(db, asked, reply) if w['msgid'] == reply]
    assert released['reply'] == live['reply'] == {
        'msgid': asked, 'userid': alice.id, 'media': 1, 'content': 'shall we?', 'recalled': 0}


def test_a_reply_to_another_conversation_is_refused(pair, connect, auth, group_of_three):
    alice, bob = pair
    carol = auth.register()
    auth.befriend(alice, carol)
    a, c = connect(alice), connect(carol)
    [elsewhere] = a.send_texts(bob.id, ['for bob only'])
    refused(c, 'reply.not_found', cmd=10, dstid=alice.id, media=1, content='?',
            replyto=elsewhere)
    refused(a, 'reply.not_found', cmd=10, dstid=carol.id, media=1, content='?',
            replyto=elsewhere)


# -- mentions -----------------------------------------------------------------------------

def test_a_mention_counts_in_the_mentioned_members_conversation(group_of_three, connect,
                                                                client, auth):
    alice, bob, carol, group = group_of_three
    outsider = auth.register()
    b = connect(bob)
    ack = sent(b, cmd=11, dstid=group, media=1, content='@carol look',
               mentions=[carol.id, outsider.id])
    assert ack['code'] == 0
    c = connect(carol, since=0)
    got = c.recv()
    assert got['mentions'] == [carol.id]  # the outsider is no member: dropped
    assert conversation(client, carol, 11, group)['mentioned'] == 1
    assert 'mentioned' not in conversation(client, alice, 11, group)
    sent(c, cmd=12, target=11, dstid=group, msgid=ack['msgid'])
    assert 'mentioned' not in conversation(client, carol, 11, group)


def test_only_the_owner_mentions_everyone(group_of_three, connect, client):
    alice, bob, carol, group = group_of_three
    a, b = connect(alice), connect(bob)
    refused(b, 'mention.everyone_not_allowed', cmd=11, dstid=group, media=1,
            content='@all', mentions=[-1])
    assert sent(a, cmd=11, dstid=group, media=1, content='@all', mentions=[-1])['code'] == 0
    assert conversation(client, bob, 11, group)['mentioned'] == 1
    assert conversation(client, carol, 11, group)['mentioned'] == 1
    ack = sent(a, cmd=10, dstid=bob.id, media=1, content='x', mentions=[bob.id])
    assert ack['code'] == -1 and 'mentions' in ack['msg']


def test_an_admin_mentions_everyone(group_of_three, connect, client):
    alice, bob, carol, group = group_of_three
    response = client.post('/contact/setrole', data={'dstid': group, 'memberid': bob.id,
                                                     'role': 'admin'}, headers=alice.headers)
    assert response.status_code == 200, response.json
    b = connect(bob)
    assert sent(b, cmd=11, dstid=group, media=1, content='@all', mentions=[-1])['code'] == 0
    assert conversation(client, carol, 11, group)['mentioned'] == 1


# -- forward ------------------------------------------------------------------------------

def test_a_forward_keeps_media_and_body_and_hides_the_origin(group_of_three, connect, auth,
                                                            client):
    alice, bob, carol, group = group_of_three
    auth.befriend(bob, carol)
    a, b, c = connect(alice), connect(bob), connect(carol)
    image = sent(a, cmd=11, dstid=group, media=4, url='/mnt/' + 'a' * 32 + '.png',
                 pic='/mnt/' + 'b' * 32 + '.png')['msgid']
    b.recv(), c.recv()
    ack = sent(b, cmd=10, dstid=carol.id, forward=image)
    assert ack['code'] == 0
    got = c.recv()
    assert got == {'msgid': ack['msgid'], 'userid': bob.id, 'cmd': 10, 'dstid': carol.id,
                   'media': 4, 'url': '/mnt/' + 'a' * 32 + '.png',
                   'pic': '/mnt/' + 'b' * 32 + '.png', 'forwarded': 1,
                   'createat': ack['createat']}
    assert by_id(history(client, carol, 10, bob.id), ack['msgid'])['forwarded'] == 1


def test_forwarding_what_i_cannot_read_is_refused(pair, connect, auth):
    alice, bob = pair
    carol = auth.register()
    auth.befriend(carol, alice)
    a, b, c = connect(alice), connect(bob), connect(carol)
    [private] = a.send_texts(bob.id, ['between us'])
    refused(c, 'forward.not_found', cmd=10, dstid=alice.id, forward=private)
    assert sent(a, cmd=14, msgid=private)['code'] == 0
    refused(b, 'forward.recalled', cmd=10, dstid=alice.id, forward=private)


def test_the_original_client_gets_plain_messages_as_before(pair, connect):
    alice, bob = pair
    a, b = connect(alice), connect(bob)
    ack = sent(a, cmd=10, dstid=bob.id, media=1, content='plain')
    assert b.recv() == {'msgid': ack['msgid'], 'userid': alice.id, 'cmd': 10,
                        'dstid': bob.id, 'media': 1, 'createat': ack['createat'],
                        'content': 'plain'}
