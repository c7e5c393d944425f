"""Issue 22's other controls in a real browser: muting a conversation (the bell, the
badge that leaves it out, unmuting), reporting a message and a person (the operator
finds what was reported), and a group's settings (join rule, admins, approvals, a muted
member, invitations), each seen by the other people live. Two and three people,
Chinese and English."""
import sqlite3

import pytest

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    DESKTOP, ServerProcess, axe_violations, back_to_lists, browser, bubbles, expect,
    login_in_browser, new_mobile, open_friend_chat, open_group_chat, people, send_and_ack,
    send_text, shot)
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
    # Bob's other device (a phone) shows his Chats list.
    phone = people('en-US')
    login_in_browser(phone, bob['mobile'])
    phone.click('.tabbar .tab[data-tab=chats]')
    on_phone = phone.locator('#chat-list [data-conv="10:{}"]'.format(alice['id']))
    expect(on_phone).to_be_visible()
    expect(on_phone.locator('.muted-mark')).to_be_hidden()
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
    expect(on_phone.locator('.muted-mark')).to_be_visible()  # live, on his other device

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
    expect(on_phone.locator('.muted-mark')).to_have_count(0)
    say(server, alice, 10, bob['id'], ['fourth'])
    expect(total).to_have_text('1')
    assert pb.errors == [] and phone.errors == []


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
    expect(pa.locator('#toast')).to_have_text(
        'Report sent. Thank you: an operator will look at it.')
    theirs = [r for r in stored_reports(server) if r[0] == alice['id']]
    assert [(r[1], r[2], r[3], r[4]) for r in theirs] == [(bob['id'], 0, 'abuse', '')]
    for page in (pa, pb):
        assert page.errors == []


def members_panel(page, group_id):
    open_group_chat(page, group_id)
    page.click('#members-btn')
    expect(page.locator('#members-panel')).to_be_visible()


def member_row(page, user):
    return page.locator('#member-list [data-user-id="{}"]'.format(user['id']))


def test_owner_sets_rules_appoints_an_admin_who_approves_a_join_and_mutes(people, server):
    """Three people: Olga owns the group, Ada becomes its admin, Ned asks to join."""
    olga = server.register(new_mobile(), 'Olga')
    ada = server.register(new_mobile(), 'Ada')
    ned = server.register(new_mobile(), 'Ned')
    status, body = server.call('/contact/createcommunity', olga['token'], name='Hikers',
                               joinmode='open')
    group = body['data']['id']
    assert server.call('/contact/joincommunity', ada['token'], dstid=group)[0] == 200
    po, pa, pn = people('en-US', DESKTOP), people('zh-CN', DESKTOP), people('en-US')
    for page, user in ((po, olga), (pa, ada), (pn, ned)):
        login_in_browser(page, user['mobile'])

    # A plain member sees roles but no settings.
    members_panel(pa, group)
    expect(member_row(pa, olga).locator('.owner-tag')).to_have_text('群主')
    expect(pa.locator('#group-settings')).to_be_hidden()
    expect(pa.locator('#member-list .member-kick')).to_have_count(0)

    # The owner makes joining need an admin's approval.
    members_panel(po, group)
    expect(po.locator('#join-mode')).to_have_value('open')
    po.select_option('#join-mode', 'approval')
    expect(po.locator('#toast')).to_have_text('Group settings saved')
    assert server.call('/contact/community', ned['token'], dstid=group)[1]['data']['joinmode'] == \
        'approval'

    # ... and Ada an admin: her tag on the owner's list, and on Ada's open panel, live,
    # the settings appear.
    member_row(po, ada).locator('.member-admin').click()
    expect(po.locator('#toast')).to_have_text('Ada is an admin now')
    expect(member_row(po, ada).locator('.admin-tag')).to_have_text('Admin')
    expect(pa.locator('#toast')).to_have_text('你已成为「Hikers」的管理员')
    expect(pa.locator('#group-settings')).to_be_visible()
    expect(member_row(pa, ada).locator('.admin-tag')).to_have_text('管理员')

    # Ned asks to join by the id; he is not in yet.
    back_to_lists(pn)
    pn.click('.tabbar .tab[data-tab=groups]')
    pn.click('#list-action')
    pn.fill('#join-group-form input[name=dstid]', str(group))
    pn.click('#join-group-form button[type=submit]')
    expect(pn.locator('#toast')).to_have_text('Request sent: an admin of the group will answer')
    expect(pn.locator('#group-list [data-conv="11:{}"]'.format(group))).to_have_count(0)

    # Ada sees the request live, in her open panel, and approves it.
    asking = pa.locator('#join-request-list [data-join-request="{}"]'.format(ned['id']))
    expect(asking.locator('.list-name')).to_have_text('Ned')
    shot(pa, 'group-join-request-zh')
    assert axe_violations(pa) == []  # the settings, the request, the roles
    asking.locator('.join-approve').click()
    expect(pa.locator('#toast')).to_have_text('已同意 Ned 入群')
    expect(pa.locator('#join-requests')).to_be_hidden()
    expect(pa.locator('#member-list .list-item')).to_have_count(3)
    # Ned hears at once and finds the group in his list.
    expect(pn.locator('#toast')).to_have_text('You have joined “Hikers”')
    expect(pn.locator('#group-list [data-conv="11:{}"]'.format(group))).to_be_visible()

    # Announcements only: Ned's message is refused with the reason.
    po.check('#announce-switch')
    expect(po.locator('#toast')).to_have_text('Group settings saved')
    open_group_chat(pn, group)
    send_text(pn, 'hello all')
    refused = pn.locator('#msg-list .msg.mine', has_text='hello all')
    expect(refused).to_have_attribute('data-state', 'failed')
    expect(refused).to_contain_text('Only the admins post in this group')
    po.uncheck('#announce-switch')
    expect(po.locator('#toast')).to_have_text('Group settings saved')

    # Ada (an admin) mutes Ned for an hour; she cannot act on the owner.
    expect(member_row(pa, olga).locator('.member-mute')).to_have_count(0)
    member_row(pa, ned).locator('.member-mute').click()
    expect(pa.locator('#mute-text')).to_have_text('禁言「Ned」多久？')
    expect(pa.locator('#unmute-choice')).to_be_hidden()  # not muted yet
    pa.click('#mute-dialog button[value="3600000"]')
    expect(pa.locator('#toast')).to_have_text('已禁言 Ned')
    expect(member_row(pa, ned).locator('.list-sub')).to_contain_text('已禁言')
    expect(pn.locator('#toast')).to_contain_text('An admin muted you in “Hikers” until')
    send_text(pn, 'may I speak?')
    muted = pn.locator('#msg-list .msg.mine', has_text='may I speak?')
    expect(muted).to_have_attribute('data-state', 'failed')
    expect(muted).to_contain_text('An admin muted you in this group for now')

    # The owner takes Ada's role back: Ada's panel loses the settings, live.
    member_row(po, ada).locator('.member-unadmin').click()
    expect(po.locator('#toast')).to_have_text('Ada is no longer an admin')
    expect(pa.locator('#toast')).to_have_text('你不再是「Hikers」的管理员')
    expect(pa.locator('#group-settings')).to_be_hidden()
    expect(pa.locator('#member-list .member-mute')).to_have_count(0)
    for page in (po, pa, pn):
        assert page.errors == []


def test_a_member_invites_a_friend_who_sees_the_public_profile_and_joins(people, server):
    olga = server.register(new_mobile(), 'Olga')
    ada = server.register(new_mobile(), 'Ada')
    ned = server.register(new_mobile(), 'Ned')
    friends(server, ada, ned)
    status, body = server.call('/contact/createcommunity', olga['token'], name='Book club',
                               joinmode='invite')
    group = body['data']['id']
    # Ada came in through an invitation of the owner's.
    friends(server, olga, ada)
    assert server.call('/contact/invite', olga['token'], dstid=group, memberid=ada['id'])[0] == 200
    assert server.call('/contact/joincommunity', ada['token'], dstid=group)[0] == 200
    pa, pn = people('en-US', DESKTOP), people('zh-CN')
    login_in_browser(pa, ada['mobile'])
    login_in_browser(pn, ned['mobile'])

    # Without an invitation, Ned cannot join by the id.
    pn.click('.tabbar .tab[data-tab=groups]')
    pn.click('#list-action')
    pn.fill('#join-group-form input[name=dstid]', str(group))
    pn.click('#join-group-form button[type=submit]')
    expect(pn.locator('#toast')).to_have_text('这个群只能受邀加入')
    expect(pn.locator('#invitations')).to_be_hidden()

    # Ada, a plain member, invites her friend Ned.
    members_panel(pa, group)
    expect(pa.locator('#group-settings')).to_be_hidden()
    expect(pa.locator('#invite-form')).to_be_visible()
    pa.select_option('#invite-form select[name=friend]', str(ned['id']))
    pa.click('#invite-form button[type=submit]')
    expect(pa.locator('#toast')).to_have_text('Ned is invited')

    # Ned sees it live, with the group's public profile (2 members), and joins.
    expect(pn.locator('#toast')).to_have_text('Ada 邀请你加入「Book club」')
    card = pn.locator('#invitation-list [data-invitation="{}"]'.format(group))
    expect(card.locator('.list-name')).to_have_text('Book club')
    expect(card.locator('.invitation-about')).to_have_text('Ada 邀请你加入 · 2 位成员')
    shot(pn, 'group-invitation-zh')
    assert axe_violations(pn) == []
    card.locator('.invitation-accept').click()
    expect(pn.locator('#toast')).to_have_text('已加入群')
    expect(pn.locator('#invitations')).to_be_hidden()
    expect(pn.locator('#group-list [data-conv="11:{}"]'.format(group))).to_be_visible()
    # Ada's panel lists him (opened again), and her form has no one left to invite.
    pa.click('#members-close')
    pa.click('#members-btn')
    expect(member_row(pa, ned)).to_be_visible()
    expect(pa.locator('#invite-form')).to_be_hidden()
    for page in (pa, pn):
        assert page.errors == []


def test_an_invitation_made_while_away_waits_and_a_dismissed_one_is_gone(people, server):
    olga = server.register(new_mobile(), 'Olga')
    ned = server.register(new_mobile(), 'Ned')
    friends(server, olga, ned)
    groups = []
    for name in ('Chess', 'Choir'):
        status, body = server.call('/contact/createcommunity', olga['token'], name=name,
                                   joinmode='invite')
        groups.append(body['data']['id'])
        assert server.call('/contact/invite', olga['token'], dstid=groups[-1],
                           memberid=ned['id'])[0] == 200
    # Ned was not connected: his Groups tab shows both when he comes.
    pn = people('en-US')
    login_in_browser(pn, ned['mobile'])
    pn.click('.tabbar .tab[data-tab=groups]')
    chess, choir = [pn.locator('#invitation-list [data-invitation="{}"]'.format(g))
                    for g in groups]
    expect(chess.locator('.list-name')).to_have_text('Chess')
    expect(choir.locator('.list-name')).to_have_text('Choir')
    # Dismissed: gone, after a reload too; the other one stays.
    choir.locator('.invitation-dismiss').click()
    expect(choir).to_have_count(0)
    pn.reload()
    expect(pn.locator('#app')).to_have_attribute('data-conn', 'open')
    pn.click('.tabbar .tab[data-tab=groups]')
    expect(chess.locator('.list-name')).to_have_text('Chess')
    expect(choir).to_have_count(0)
    status, body = server.call('/contact/invitations', ned['token'])
    assert [row['community']['id'] for row in body['rows']] == [groups[0]]
    assert pn.errors == []


def test_a_declined_join_request_is_asked_first_and_the_asker_told(people, server):
    olga = server.register(new_mobile(), 'Olga')
    ned = server.register(new_mobile(), 'Ned')
    status, body = server.call('/contact/createcommunity', olga['token'], name='Quiet')
    group = body['data']['id']  # approval, the default
    po, pn = people('zh-CN', DESKTOP), people('en-US')
    login_in_browser(po, olga['mobile'])
    login_in_browser(pn, ned['mobile'])
    members_panel(po, group)
    expect(po.locator('#join-mode')).to_have_value('approval')
    assert server.call('/contact/joincommunity', ned['token'], dstid=group,
                       memo='I read a lot')[1]['data'] == {'status': 'requested'}
    expect(po.locator('#toast')).to_have_text('Ned 申请加入「Quiet」')
    asking = po.locator('#join-request-list [data-join-request="{}"]'.format(ned['id']))
    expect(asking.locator('.list-sub')).to_have_text('I read a lot')
    asking.locator('.join-reject').click()
    expect(po.locator('#confirm-text')).to_have_text('拒绝「Ned」的入群申请？')
    po.click('#confirm button[value=cancel]')
    expect(asking).to_be_visible()
    assert len(server.call('/contact/joinrequests', olga['token'], dstid=group)[1]['rows']) == 1
    asking.locator('.join-reject').click()
    po.click('#confirm-ok')
    expect(po.locator('#join-requests')).to_be_hidden()
    expect(pn.locator('#toast')).to_have_text('Your request to join “Quiet” was declined')
    assert server.call('/contact/joinrequests', olga['token'], dstid=group)[1]['rows'] == []
    pn.click('.tabbar .tab[data-tab=groups]')
    expect(pn.locator('#group-list [data-conv="11:{}"]'.format(group))).to_have_count(0)
    for page in (po, pn):
        assert page.errors == []
