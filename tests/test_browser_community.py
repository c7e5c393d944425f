"""Issue 22's other controls in a real browser: muting a conversation (the bell, the
badge that leaves it out, unmuting), reporting a message and a person (the operator
finds what was reported), and a group's settings (join rule, admins, approvals, a muted
member, invitations), each seen by the other people live. Two and three people,
Chinese and English."""
import sqlite3

import pytest

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    ServerProcess, back_to_lists, browser, bubbles, expect, login_in_browser, new_mobile,
    open_friend_chat, open_group_chat, people, send_and_ack, send_text, shot)
from tests.conftest import SAFETY_DEFAULTS

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """The browser tests' server with issue 22's defaults (requests, approval groups)."""
    proc = ServerProcess(str(tmp_path_factory.mktemp('browser-community')))
    proc.env.update({'IMCHAT_' + k: str(int(v)) if isinstance(v, bool) else str(v)
                     for k, v in SAFETY_DEFAULTS.items()})
    proc.start()
    yield proc
    proc.stop()
    print(proc.log()[-4000:])  # shown with a failure's report


def friends(server, one, other):
    assert server.call('/contact/addfriend', one['token'], dstid=other['id'])[0] == 200
    assert server.call('/contact/accept', other['token'], dstid=one['id'])[0] == 200


def say(server, sender, target, dstid, texts):
    ws = server.socket(sender)
    try:
        for i, text in enumerate(texts):
            frame = {'cmd': target, 'id': 'say-{}-{}-{}'.format(sender['id'], text, i),
                     'dstid': dstid, 'media': 1, 'content': text}
            assert send_and_ack(ws, frame)['code'] == 0
    finally:
        ws.close()


def stored_reports(server):
    path = server.database_url[len('sqlite:///'):]
    with sqlite3.connect(path) as con:
        return con.execute('SELECT reporterid, userid, msgid, reason, memo, content '
                           'FROM report ORDER BY id').fetchall()


def test_a_muted_conversation_counts_on_its_row_but_not_in_the_total(people, server):
    alice = server.register(new_mobile(), 'Alice')
    bob = server.register(new_mobile(), 'Bob')
    friends(server, alice, bob)
    say(server, alice, 10, bob['id'], ['first'])
    pb = people('en-US')
    login_in_browser(pb, bob['mobile'])
    open_friend_chat(pb, alice['id'])
    expect(bubbles(pb, 'first')).to_have_count(1)

    # Bob mutes Alice for 8 hours from the header: the bell shows beside her name.
    expect(pb.locator('#convo-muted')).to_be_hidden()
    pb.click('#mute-btn')
    expect(pb.locator('#mute-dialog')).to_be_visible()
    expect(pb.locator('#unmute-choice')).to_be_hidden()  # nothing to unmute yet
    pb.click('#mute-dialog button[value="28800000"]')
    expect(pb.locator('#toast')).to_have_text('Muted')
    expect(pb.locator('#convo-muted')).to_be_visible()
    back_to_lists(pb)
    pb.click('.tabbar .tab[data-tab=chats]')
    row = pb.locator('#chat-list [data-conv="10:{}"]'.format(alice['id']))
    expect(row.locator('.muted-mark')).to_be_visible()

    # Alice's next messages count on the row, not on the tab or in the title.
    say(server, alice, 10, bob['id'], ['second', 'third'])
    expect(row.locator('.badge')).to_have_text('2')
    total = pb.locator('.tabbar .tab[data-tab=chats] .badge')
    expect(total).to_be_hidden()
    assert pb.title() == 'imchat'
    shot(pb, 'muted-conversation-en')

    # The server keeps the mute: a reload shows it again.
    pb.reload()
    expect(pb.locator('#app')).to_have_attribute('data-conn', 'open')
    expect(row.locator('.badge')).to_have_text('2')
    expect(row.locator('.muted-mark')).to_be_visible()
    expect(total).to_be_hidden()

    # Unmuted, the next message counts in the total again.
    open_friend_chat(pb, alice['id'])
    expect(pb.locator('#convo-muted')).to_be_visible()
    pb.click('#mute-btn')
    pb.click('#unmute-choice')
    expect(pb.locator('#convo-muted')).to_be_hidden()
    back_to_lists(pb)
    pb.click('.tabbar .tab[data-tab=chats]')
    expect(row.locator('.muted-mark')).to_have_count(0)
    say(server, alice, 10, bob['id'], ['fourth'])
    expect(total).to_have_text('1')
    assert pb.errors == []


def test_a_mention_in_a_muted_group_still_counts(people, server):
    owner = server.register(new_mobile(), 'Olga')
    member = server.register(new_mobile(), 'Mia')
    status, body = server.call('/contact/createcommunity', owner['token'], name='Loud',
                               joinmode='open')
    group = body['data']['id']
    assert server.call('/contact/joincommunity', member['token'], dstid=group)[0] == 200
    say(server, owner, 11, group, ['welcome'])
    pm = people('zh-CN')
    login_in_browser(pm, member['mobile'])
    open_group_chat(pm, group)
    pm.click('#mute-btn')
    pm.click('#mute-dialog button[value="-1"]')  # always
    expect(pm.locator('#toast')).to_have_text('已开启免打扰')
    back_to_lists(pm)
    pm.click('.tabbar .tab[data-tab=chats]')
    row = pm.locator('#chat-list [data-conv="11:{}"]'.format(group))
    total = pm.locator('.tabbar .tab[data-tab=chats] .badge')
    say(server, owner, 11, group, ['chatter'])
    expect(row.locator('.badge')).to_have_text('1')
    expect(total).to_be_hidden()
    # A message that mentions Mia reaches the total.
    ws = server.socket(owner)
    try:
        assert send_and_ack(ws, {'cmd': 11, 'id': 'mention-mia', 'dstid': group, 'media': 1,
                                 'content': '@Mia look', 'mentions': [member['id']]})['code'] == 0
    finally:
        ws.close()
    expect(row.locator('.badge')).to_have_text('2')
    expect(total).to_have_text('2')
    assert pm.errors == []


def test_a_message_and_a_person_reported_with_a_reason(people, server):
    alice = server.register(new_mobile(), 'Alice')
    bob = server.register(new_mobile(), 'Bob')
    friends(server, alice, bob)
    pa, pb = people('en-US'), people('zh-CN')
    login_in_browser(pa, alice['mobile'])
    login_in_browser(pb, bob['mobile'])
    open_friend_chat(pa, bob['id'])
    send_text(pa, 'buy cheap pills now')
    open_friend_chat(pb, alice['id'])
    bubble = bubbles(pb, 'buy cheap pills now')
    expect(bubble).to_have_count(1)

    # Bob's own message cannot be reported; Alice's can, from its menu.
    send_text(pb, 'no thanks')
    bubbles(pb, 'no thanks').click(button='right')
    expect(pb.locator('#report-btn')).to_be_hidden()
    pb.keyboard.press('Escape')
    bubble.click(button='right')
    pb.click('#report-btn')
    expect(pb.locator('#report-dialog')).to_be_visible()
    expect(pb.locator('#report-title')).to_have_text('举报这条消息')
    # Cancelling sends nothing.
    pb.click('#report-dialog button[value=cancel]')
    expect(pb.locator('#report-dialog')).to_be_hidden()
    assert [r for r in stored_reports(server) if r[0] == bob['id']] == []
    bubble.click(button='right')
    pb.click('#report-btn')
    pb.check('#report-dialog input[value=spam]')
    pb.fill('#report-dialog textarea[name=memo]', '第三次了')
    shot(pb, 'report-message-zh')
    pb.click('#report-ok')
    expect(pb.locator('#toast')).to_have_text('举报已提交，谢谢。管理员会尽快处理。')
    mine = [r for r in stored_reports(server) if r[0] == bob['id']]
    assert len(mine) == 1
    assert mine[0][1:2] == (alice['id'],) and mine[0][2] > 0
    assert mine[0][3:5] == ('spam', '第三次了')
    assert 'buy cheap pills now' in mine[0][5]

    # Alice reports Bob from his profile, without a note; a reason is required.
    pa.click('#profile-btn')
    pa.click('#report-user-btn')
    expect(pa.locator('#report-title')).to_have_text('Report “Bob”')
    pa.click('#report-ok')  # no reason chosen: the form stays
    expect(pa.locator('#report-dialog')).to_be_visible()
    pa.check('#report-dialog input[value=abuse]')
    pa.click('#report-ok')
    expect(pa.locator('#toast')).to_have_text('Report sent. Thank you: an operator will look at it.')
    theirs = [r for r in stored_reports(server) if r[0] == alice['id']]
    assert [(r[1], r[2], r[3], r[4]) for r in theirs] == [(bob['id'], 0, 'abuse', '')]
    for page in (pa, pb):
        assert page.errors == []
