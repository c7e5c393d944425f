"""The conversation events in a real browser (docs/protocol.md, cmd 12-15 and the contact
calls beside them): the Chats tab with unread counts kept by the server and shared by
a person's devices, read receipts, typing, the online dot, recall, unfriending, and
leaving, kicking and handing over a group. Two or three people, Chinese and English;
screenshots in tests/artifacts/ (the README's is one of them)."""
import re
import time

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    DESKTOP, PHONE, ServerProcess, back_to_lists, browser, bubbles, expect,
    login_in_browser, new_mobile, open_friend_chat, open_group_chat, people, send_and_ack,
    send_text, server, shot)


def chats_row(page, target, dstid):
    return page.locator('#chat-list [data-conv="{}:{}"]'.format(target, dstid))


def show_chats(page):
    back_to_lists(page)
    page.click('.tabbar .tab[data-tab=chats]')


def friends(server, *names):
    """Users who are all friends with each other."""
    users = [server.register(new_mobile(), name) for name in names]
    for i, user in enumerate(users):
        for other in users[i + 1:]:
            assert server.call('/contact/addfriend', user['token'], dstid=other['id'])[0] == 200
    return users


def group_of(server, owner, members, name):
    status, body = server.call('/contact/createcommunity', owner['token'], name=name)
    assert status == 200, body
    group_id = body['data']['id']
    for member in members:
        assert server.call('/contact/joincommunity', member['token'], dstid=group_id)[0] == 200
    return group_id


def recall_by_menu(page, text):
    """Right click my message with `text` and choose Recall from its menu."""
    page.locator('#msg-list .msg.mine', has_text=text).last.click(button='right')
    expect(page.locator('#msg-menu')).to_be_visible()
    page.click('#recall-btn')


def test_chats_list_unread_everywhere_and_a_read_on_one_device_clears_the_other(people, server):
    """zh. Bob on a phone and a laptop: Alice's messages and a group's are counted on
    both, in the list, on the tab and in the title; reading on the phone clears the
    laptop at once and after a reload; Alice sees her messages read."""
    alice, bob, carol = friends(server, 'Alice', 'Bob', 'Carol')
    group_id = group_of(server, carol, [alice, bob], '周末爬山')
    pa = people('zh-CN', DESKTOP)
    phone, laptop = people('zh-CN', PHONE), people('zh-CN', DESKTOP)
    for page, user in ((pa, alice), (phone, bob), (laptop, bob)):
        login_in_browser(page, user['mobile'])
    # The Chats tab comes first, empty for now.
    expect(laptop.locator('#chats-empty')).to_be_visible()

    open_friend_chat(pa, bob['id'])
    send_text(pa, '晚上一起吃饭吗？')
    send_text(pa, '七点，老地方')
    pc = people('zh-CN', PHONE)
    login_in_browser(pc, carol['mobile'])
    open_group_chat(pc, group_id)
    send_text(pc, '周六早上八点出发')

    for page in (phone, laptop):
        row = chats_row(page, 10, alice['id'])
        expect(row.locator('.badge')).to_have_text('2')
        expect(row.locator('.list-name')).to_have_text('Alice')
        expect(row.locator('.list-sub')).to_have_text('七点，老地方')
        expect(row.locator('.list-time')).to_have_text(re.compile(r'\d\d:\d\d'))
        group_row = chats_row(page, 11, group_id)
        expect(group_row.locator('.list-name')).to_have_text('周末爬山')
        expect(group_row.locator('.list-sub')).to_have_text('Carol: 周六早上八点出发')
        expect(page.locator('.tabbar .tab[data-tab=chats] .badge')).to_have_text('3')
        expect(page).to_have_title('(3) imchat')
        # The newest conversation first.
        expect(page.locator('#chat-list .list-item').first).to_have_attribute(
            'data-conv', '11:{}'.format(group_id))
    expect(pa.locator('#msg-list .msg.mine .msg-state').last).to_have_text('已发送')
    shot(laptop, 'chats-unread-zh')

    # Bob reads Alice on his phone: the laptop's count goes too, at once.
    show_chats(phone)
    chats_row(phone, 10, alice['id']).click()
    expect(bubbles(phone, '七点，老地方')).to_have_count(1)
    expect(chats_row(laptop, 10, alice['id']).locator('.badge')).to_have_count(0)
    expect(laptop.locator('.tabbar .tab[data-tab=chats] .badge')).to_have_text('1')
    expect(laptop).to_have_title('(1) imchat')
    # Alice's messages now say read (已读), both of them.
    expect(pa.locator('#msg-list .msg.mine[data-state=read]')).to_have_count(2)
    expect(pa.locator('#msg-list .msg.mine .msg-state').last).to_have_text('已读')

    # A new message while Bob's phone has the conversation open is read at once; the
    # laptop counts nothing for it.
    send_text(pa, '到了告诉我')
    expect(bubbles(phone, '到了告诉我')).to_have_count(1)
    expect(pa.locator('#msg-list .msg.mine[data-state=read]')).to_have_count(3)
    expect(chats_row(laptop, 10, alice['id']).locator('.list-sub')).to_have_text('到了告诉我')
    expect(chats_row(laptop, 10, alice['id']).locator('.badge')).to_have_count(0)

    # The counts are the server's: a reload shows the same.
    laptop.reload()
    expect(laptop.locator('#app')).to_have_attribute('data-conn', 'open')
    expect(chats_row(laptop, 11, group_id).locator('.badge')).to_have_text('1')
    expect(chats_row(laptop, 10, alice['id']).locator('.badge')).to_have_count(0)
    expect(laptop).to_have_title('(1) imchat')
    chats_row(laptop, 11, group_id).click()
    expect(bubbles(laptop, '周六早上八点出发')).to_have_count(1)
    expect(laptop.locator('.tabbar .tab[data-tab=chats] .badge')).to_be_hidden()
    expect(laptop).to_have_title('imchat')
    expect(chats_row(phone, 11, group_id).locator('.badge')).to_have_count(0)
    shot(pa, 'read-receipts-zh')
    for page in (pa, phone, laptop, pc):
        assert page.errors == []


# Watches the three lists: every list element now, and every row added to or taken
# from a list from now on.
WATCH_LISTS = """() => {
  const lists = ['chat-list', 'friend-list', 'group-list'].map((id) => document.getElementById(id));
  window.__rowsBefore = lists.flatMap((ul) => Array.from(ul.children));
  window.__insideBefore = lists.flatMap((ul) => Array.from(ul.querySelectorAll('li *')))
    .flatMap((el) => [el].concat(Array.from(el.childNodes)))
    .map((node) => [node.parentNode.closest('li').dataset.conv, node]);
  window.__rowsMoved = [];
  const observer = new MutationObserver((records) => records.forEach((r) => {
    r.addedNodes.forEach((n) => window.__rowsMoved.push(n.dataset.conv));
    r.removedNodes.forEach((n) => window.__rowsMoved.push(n.dataset.conv));
  }));
  lists.forEach((ul) => observer.observe(ul, {childList: true}));
}"""

# The rows seen before that are no longer in the page, the rows added or taken away
# since (a row moved to the top is taken away and added back), and the rows with
# something inside them replaced.
LISTS_SINCE = """() => ({
  gone: window.__rowsBefore.filter((li) => !li.isConnected).map((li) => li.dataset.conv),
  moved: Array.from(new Set(window.__rowsMoved.filter((conv) => conv))),
  redrawn: Array.from(new Set(window.__insideBefore.filter(([conv, node]) => !node.isConnected)
    .map(([conv, node]) => conv)))
})"""


def test_an_incoming_message_redraws_only_its_own_conversations_row(people, server):
    """A message in one conversation redraws that conversation's row (in Chats and in
    Friends, moving it to the top) and no other: every other row of the three lists
    stays the same element, in its place, with the same elements inside."""
    bo, ada, cy, di = friends(server, 'Bo', 'Ada', 'Cy', 'Di')
    group_id = group_of(server, cy, [bo], 'Quiet group')
    ada_ws, cy_ws = server.socket(ada), server.socket(cy)
    try:
        # Bo's Chats list, newest first: the group, Ada, Cy.
        for ws, cmd, dstid, text in ((cy_ws, 10, bo['id'], 'first from Cy'),
                                     (ada_ws, 10, bo['id'], 'first from Ada'),
                                     (cy_ws, 11, group_id, 'first in the group')):
            ack = send_and_ack(ws, {'id': 'row-test-' + text, 'cmd': cmd, 'dstid': dstid,
                                    'media': 1, 'content': text})
            assert ack['code'] == 0, ack
        pb = people('en-US', DESKTOP)
        login_in_browser(pb, bo['mobile'])
        cy_key, group_key = '10:{}'.format(cy['id']), '11:{}'.format(group_id)
        rows = pb.locator('#chat-list .list-item')
        expect(rows).to_have_count(3)
        expect(rows.first).to_have_attribute('data-conv', group_key)
        expect(chats_row(pb, 11, group_id).locator('.list-name')).to_have_text('Quiet group')
        expect(chats_row(pb, 11, group_id).locator('.list-sub')).to_have_text(
            'Cy: first in the group')
        expect(rows.last).to_have_attribute('data-conv', cy_key)
        expect(chats_row(pb, 10, cy['id']).locator('.list-name')).to_have_text('Cy')
        expect(pb.locator('#friend-list .list-item')).to_have_count(3)
        expect(pb.locator('#group-list .list-item')).to_have_count(1)
        pb.evaluate(WATCH_LISTS)

        ack = send_and_ack(cy_ws, {'id': 'row-test-again', 'cmd': 10, 'dstid': bo['id'],
                                   'media': 1, 'content': 'Cy again'})
        assert ack['code'] == 0, ack
        expect(chats_row(pb, 10, cy['id']).locator('.list-sub')).to_have_text('Cy again')
        expect(chats_row(pb, 10, cy['id']).locator('.badge')).to_have_text('2')
        expect(rows.first).to_have_attribute('data-conv', cy_key)
        expect(pb.locator('#friend-list .list-item').first).to_have_attribute('data-conv', cy_key)
        since = pb.evaluate(LISTS_SINCE)
        # Every row is the element it was, Cy's too (drawn again in place); only Cy's
        # moved, to the top, and only in Cy's did anything change.
        assert since['gone'] == []
        assert since['moved'] == [cy_key]
        assert since['redrawn'] == [cy_key]
        expect(pb).to_have_title('(4) imchat')
        assert pb.errors == []
    finally:
        ada_ws.close()
        cy_ws.close()


def test_chats_tab_in_english_for_the_readme(people, server):
    """en, desktop: the Chats tab beside an open conversation, with read receipts, the
    friend's online dot and unread counts: the README's screenshot."""
    mia, leo, zoe = friends(server, 'Mia Chen', 'Leo Park', 'Zoe Li')
    group_id = group_of(server, zoe, [mia, leo], 'Book club')
    pm, pl, pz = people('en-US', DESKTOP), people('en-US', PHONE), people('en-US', PHONE)
    for page, user in ((pm, mia), (pl, leo), (pz, zoe)):
        login_in_browser(page, user['mobile'])
    open_group_chat(pz, group_id)
    send_text(pz, 'Next book: "The Left Hand of Darkness"?')
    send_text(pz, 'Vote by Friday 📚')
    open_friend_chat(pl, mia['id'])
    send_text(pl, 'Are we still on for the climbing gym?')
    expect(chats_row(pm, 10, leo['id']).locator('.badge')).to_have_text('1')
    expect(chats_row(pm, 11, group_id).locator('.badge')).to_have_text('2')
    expect(pm).to_have_title('(3) imchat')
    shot(pm, 'chats-unread-en')

    chats_row(pm, 10, leo['id']).click()
    expect(bubbles(pm, 'climbing gym')).to_have_count(1)
    send_text(pm, 'Yes! 7 pm, bring chalk 🧗')
    send_text(pl, 'Great, see you there')
    expect(bubbles(pm, 'see you there')).to_have_count(1)
    expect(pl.locator('#msg-list .msg.mine .msg-state').last).to_have_text('Read')
    expect(pm.locator('#msg-list .msg.mine .msg-state').last).to_have_text('Read')
    # Leo is online: a dot on his avatar, and "online" under his name.
    expect(chats_row(pm, 10, leo['id']).locator('.avatar.is-online')).to_have_count(1)
    expect(pm.locator('#convo-status')).to_have_text('online')
    expect(pm.locator('.tabbar .tab[data-tab=chats] .badge')).to_have_text('2')
    expect(pm).to_have_title('(2) imchat')
    pm.mouse.move(0, 0)
    # The README's docs/screenshot-chats.png is a copy of this one (made by hand, so
    # that running the tests leaves the tree as it was).
    shot(pm, 'chats-tab-en')
    # And in the dark theme (the system's choice): docs/screenshot-chats-dark.png.
    pm.emulate_media(color_scheme='dark')
    expect(pm.locator('body')).to_have_css('background-color', 'rgb(10, 10, 10)')
    shot(pm, 'chats-tab-en-dark')
    for page in (pm, pl, pz):
        assert page.errors == []


def test_typing_shows_under_the_title_and_friends_have_an_online_dot(people, server):
    """en: the dot follows a friend's login and logout (cmd 15); "… is typing" shows
    while the friend types (cmd 13) and goes when the message arrives."""
    ada, bo = friends(server, 'Ada', 'Bo')
    pa = people('en-US', PHONE)
    login_in_browser(pa, ada['mobile'])
    pa.click('.tabbar .tab[data-tab=friends]')
    bo_item = pa.locator('#friend-list [data-conv="10:{}"]'.format(bo['id']))
    expect(bo_item.locator('.avatar')).not_to_have_class(re.compile(r'is-online'))

    pb = people('en-US', PHONE)
    login_in_browser(pb, bo['mobile'])
    # Bo comes online: the dot appears without a reload.
    expect(bo_item.locator('.avatar')).to_have_class(re.compile(r'is-online'))
    expect(bo_item.locator('.list-sub')).to_contain_text('online')

    open_friend_chat(pa, bo['id'])
    expect(pa.locator('#convo-status')).to_have_text('online')
    open_friend_chat(pb, ada['id'])
    pb.locator('#text-input').press_sequentially('On my way', delay=30)
    expect(pa.locator('#convo-status')).to_have_text('Bo is typing…')
    shot(pa, 'typing-en')
    pb.press('#text-input', 'Enter')
    expect(bubbles(pa, 'On my way')).to_have_count(1)
    expect(pa.locator('#convo-status')).to_have_text('online')

    # Bo's only page goes: after the server's grace he shows offline.
    pb.context.close()
    expect(pa.locator('#convo-status')).to_have_text('offline')
    back_to_lists(pa)
    pa.click('.tabbar .tab[data-tab=friends]')
    expect(bo_item.locator('.avatar')).not_to_have_class(re.compile(r'is-online'))
    assert pa.errors == []


def test_typing_in_chinese(people, server):
    """zh: the same line, in Chinese."""
    ada, bo = friends(server, '小明', '小红')
    pa, pb = people('zh-CN'), people('zh-CN')
    login_in_browser(pa, ada['mobile'])
    login_in_browser(pb, bo['mobile'])
    open_friend_chat(pa, bo['id'])
    expect(pa.locator('#convo-status')).to_have_text('在线')
    open_friend_chat(pb, ada['id'])
    pb.locator('#text-input').press_sequentially('马上到', delay=30)
    expect(pa.locator('#convo-status')).to_have_text('小红 正在输入…')
    shot(pa, 'typing-zh')
    assert pa.errors == [] and pb.errors == []


def test_recall_from_the_menu_shows_for_everyone_and_after_reload(people, server):
    """A message taken back by right click: "message recalled" for both people (zh and
    en), in the Chats list, and from history after a reload; in a group too. Nobody
    may recall someone else's message: their menu does not open."""
    ada, bo, cy = friends(server, 'Ada', 'Bo', 'Cy')
    group_id = group_of(server, ada, [bo, cy], 'Trio')
    pa, pb = people('zh-CN', DESKTOP), people('en-US', DESKTOP)
    login_in_browser(pa, ada['mobile'])
    login_in_browser(pb, bo['mobile'])
    open_friend_chat(pa, bo['id'])
    open_friend_chat(pb, ada['id'])
    send_text(pa, '密码是 hunter2')
    send_text(pa, '这条留着')
    expect(bubbles(pb, 'hunter2')).to_have_count(1)
    expect(bubbles(pb, '这条留着')).to_have_count(1)

    # Bo cannot recall Ada's message: his menu (reply, react, copy...) has no Recall.
    bubbles(pb, 'hunter2').click(button='right')
    expect(pb.locator('#msg-menu')).to_be_visible()
    expect(pb.locator('#copy-btn')).to_be_visible()
    expect(pb.locator('#recall-btn')).to_be_hidden()
    pb.keyboard.press('Escape')
    expect(pb.locator('#msg-menu')).to_be_hidden()

    bubbles(pa, 'hunter2').click(button='right')
    expect(pa.locator('#msg-menu')).to_be_visible()
    expect(pa.locator('#recall-btn')).to_have_text('撤回')
    shot(pa, 'recall-menu-zh')
    pa.click('#recall-btn')
    for page, text in ((pa, '消息已撤回'), (pb, 'Message recalled')):
        expect(page.locator('#msg-list .msg.recalled')).to_have_count(1)
        expect(page.locator('#msg-list .msg.recalled .bubble')).to_have_text(text)
        expect(bubbles(page, 'hunter2')).to_have_count(0)
        expect(bubbles(page, '这条留着')).to_have_count(1)
    shot(pb, 'recalled-en')

    # After a reload the history says so too (the body is gone from the server).
    pb.reload()
    expect(pb.locator('#app')).to_have_attribute('data-conn', 'open')
    open_friend_chat(pb, ada['id'])
    expect(bubbles(pb, '这条留着')).to_have_count(1)
    expect(pb.locator('#msg-list .msg.recalled .bubble')).to_have_text('Message recalled')
    expect(pb.locator('#msg-list')).not_to_contain_text('hunter2')

    # The newest message recalled: the Chats list says who took it back.
    send_text(pa, 'oops, wrong chat')
    expect(bubbles(pb, 'oops, wrong chat')).to_have_count(1)
    recall_by_menu(pa, 'oops, wrong chat')
    expect(pb.locator('#msg-list .msg.recalled')).to_have_count(2)
    show_chats(pa)
    expect(chats_row(pa, 10, bo['id']).locator('.list-sub')).to_have_text('你撤回了一条消息')
    show_chats(pb)
    expect(chats_row(pb, 10, ada['id']).locator('.list-sub')).to_have_text('Ada recalled a message')

    # In a group, every member sees it.
    pc = people('en-US', PHONE)
    login_in_browser(pc, cy['mobile'])
    for page in (pa, pb, pc):
        open_group_chat(page, group_id)
    send_text(pa, 'Meeting moved to 3 pm')
    for page in (pb, pc):
        expect(bubbles(page, 'Meeting moved')).to_have_count(1)
    recall_by_menu(pa, 'Meeting moved')
    for page in (pa, pb, pc):
        expect(page.locator('#msg-list .msg.recalled')).to_have_count(1)
        expect(bubbles(page, 'Meeting moved')).to_have_count(0)
    for page in (pa, pb, pc):
        assert page.errors == []


def test_recall_by_long_press_on_a_phone(people, server, browser):
    """A touch screen has no right click: a long press opens the same menu."""
    ada, bo = friends(server, 'Ada', 'Bo')
    context = browser.new_context(base_url=server.base, locale='en-US', viewport=PHONE,
                                  has_touch=True, is_mobile=True)
    try:
        pa = context.new_page()
        login_in_browser(pa, ada['mobile'])
        pb = people('en-US')
        login_in_browser(pb, bo['mobile'])
        open_friend_chat(pb, ada['id'])
        open_friend_chat(pa, bo['id'])
        send_text(pa, 'sent by mistake')
        mine = pa.locator('#msg-list .msg.mine', has_text='sent by mistake')
        expect(mine).to_have_attribute('data-state', re.compile(r'^(sent|read)$'))
        box = mine.locator('.bubble').bounding_box()
        x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
        # Touch down, hold past the long press, then lift.
        cdp = context.new_cdp_session(pa)
        point = [{'x': x, 'y': y}]
        cdp.send('Input.dispatchTouchEvent', {'type': 'touchStart', 'touchPoints': point})
        expect(pa.locator('#msg-menu')).to_be_visible()
        cdp.send('Input.dispatchTouchEvent', {'type': 'touchEnd', 'touchPoints': []})
        shot(pa, 'recall-long-press-en')
        pa.locator('#recall-btn').tap()
        expect(pb.locator('#msg-list .msg.recalled .bubble')).to_have_text('Message recalled')
        expect(pa.locator('#msg-list .msg.recalled .bubble')).to_have_text('Message recalled')
    finally:
        context.close()


def confirm(page, answer):
    dialog = page.locator('#confirm')
    expect(dialog).to_be_visible()
    if answer:
        page.click('#confirm-ok')
    else:
        page.click('#confirm button[value=cancel]')
    expect(dialog).to_be_hidden()


def test_unfriend_from_the_profile_asks_first_and_ends_the_conversation(people, server):
    """en and zh: "Remove friend" on the friend's profile asks; No keeps the friend,
    Yes removes them at once, and neither can send to the other from then on."""
    ada, bo = friends(server, 'Ada', 'Bo')
    pa, pb = people('en-US'), people('zh-CN')
    login_in_browser(pa, ada['mobile'])
    login_in_browser(pb, bo['mobile'])
    open_friend_chat(pa, bo['id'])
    open_friend_chat(pb, ada['id'])
    send_text(pb, '在吗')
    expect(bubbles(pa, '在吗')).to_have_count(1)

    pa.click('#profile-btn')
    expect(pa.locator('#profile-panel')).to_be_visible()
    expect(pa.locator('#profile-name')).to_have_text('Bo')
    expect(pa.locator('#profile-online')).to_have_text('online')
    shot(pa, 'profile-en')
    pa.click('#unfriend-btn')
    expect(pa.locator('#confirm-text')).to_have_text(
        'Remove “Bo” from your friends? The history stays, but neither of you can send to the other.')
    shot(pa, 'unfriend-confirm-en')
    confirm(pa, False)
    assert server.call('/contact/loadfriend', ada['token'])[1]['rows'][0]['id'] == bo['id']

    pa.click('#unfriend-btn')
    confirm(pa, True)
    expect(pa.locator('#toast')).to_have_text('Friend removed')
    expect(pa.locator('#convo')).to_be_hidden()
    pa.click('.tabbar .tab[data-tab=friends]')
    expect(pa.locator('#friend-empty')).to_be_visible()
    assert server.call('/contact/loadfriend', ada['token'])[1]['rows'] == []

    # Bo's open page may no longer send to Ada: the server refuses, and it says so.
    send_text(pb, '还在吗？')
    refused = pb.locator('#msg-list .msg.mine', has_text='还在吗？')
    expect(refused).to_have_attribute('data-state', 'failed')
    expect(refused.locator('.msg-state')).to_contain_text('未发送')
    shot(pb, 'unfriended-refused-zh')

    # In Chinese, the same question.
    pb.click('#profile-btn')
    expect(pb.locator('#unfriend-btn')).to_be_hidden()
    assert pa.errors == [] and pb.errors == []


def test_owner_kicks_and_hands_over_and_a_member_leaves(people, server):
    """Three people, en and zh: the owner removes a member (after a No and a Yes) whose
    open page can no longer send to the group, makes another member the owner, and,
    no longer the owner, leaves."""
    ann, ben, cat = friends(server, 'Ann', 'Ben', 'Cat')
    group_id = group_of(server, ann, [ben, cat], 'Hikers')
    pa, pb, pc = people('en-US', DESKTOP), people('zh-CN'), people('en-US')
    for page, user in ((pa, ann), (pb, ben), (pc, cat)):
        login_in_browser(page, user['mobile'])
        open_group_chat(page, group_id)

    # Only the owner has the buttons.
    pb.click('#members-btn')
    expect(pb.locator('#member-list .list-item')).to_have_count(3)
    expect(pb.locator('#member-list .member-kick')).to_have_count(0)
    expect(pb.locator('#member-list [data-user-id="{}"] .owner-tag'.format(ann['id']))).to_have_text('群主')
    pb.click('#members-close')

    pa.click('#members-btn')
    cat_row = pa.locator('#member-list [data-user-id="{}"]'.format(cat['id']))
    expect(cat_row.locator('.member-kick')).to_have_text('Remove')
    expect(pa.locator('#member-list .member-kick')).to_have_count(2)
    shot(pa, 'members-owner-en')
    cat_row.locator('.member-kick').click()
    expect(pa.locator('#confirm-text')).to_have_text('Remove “Cat” from the group?')
    confirm(pa, False)
    expect(pa.locator('#member-list .list-item')).to_have_count(3)
    cat_row.locator('.member-kick').click()
    confirm(pa, True)
    expect(pa.locator('#toast')).to_have_text('Cat was removed from the group')
    expect(pa.locator('#member-list .list-item')).to_have_count(2)

    # Cat's open page: the group's messages stop, and her own are refused.
    send_text(pb, '猫走了吗')
    expect(bubbles(pa, '猫走了吗')).to_have_count(1)
    send_text(pc, 'still here?')
    expect(pc.locator('#msg-list .msg.mine', has_text='still here?')).to_have_attribute(
        'data-state', 'failed')
    expect(bubbles(pc, '猫走了吗')).to_have_count(0)

    # Ann hands the group to Ben.
    ben_row = pa.locator('#member-list [data-user-id="{}"]'.format(ben['id']))
    ben_row.locator('.member-transfer').click()
    expect(pa.locator('#confirm-text')).to_have_text(
        'Make “Ben” the owner of the group? You stay as a member.')
    confirm(pa, True)
    expect(pa.locator('#toast')).to_have_text('Ben is now the owner')
    expect(ben_row.locator('.owner-tag')).to_have_text('Owner')
    expect(pa.locator('#member-list .member-kick')).to_have_count(0)
    # Ben, the owner now, has the buttons (in Chinese).
    pb.click('#members-btn')
    expect(pb.locator('#member-list [data-user-id="{}"] .member-kick'.format(ann['id']))).to_have_text('移出')
    expect(pb.locator('#member-list [data-user-id="{}"] .member-transfer'.format(ann['id']))).to_have_text('转让群主')
    shot(pb, 'members-new-owner-zh')

    # Ann leaves, after saying yes.
    pa.click('#leave-btn')
    expect(pa.locator('#confirm-text')).to_have_text('Leave the group “Hikers”?')
    confirm(pa, True)
    expect(pa.locator('#toast')).to_have_text('You left the group')
    expect(pa.locator('#members-panel')).to_be_hidden()
    pa.click('.tabbar .tab[data-tab=groups]')
    expect(pa.locator('#group-list [data-conv="11:{}"]'.format(group_id))).to_have_count(0)
    rows = server.call('/contact/members', ben['token'], dstid=group_id)[1]['rows']
    assert [row['id'] for row in rows] == [ben['id']]

    # Ben, the last member, may leave too (in Chinese); the owner of a group with
    # others may not, and the page says why.
    pb.click('#leave-btn')
    expect(pb.locator('#confirm-text')).to_have_text('退出群「Hikers」？')
    confirm(pb, True)
    expect(pb.locator('#toast')).to_have_text('已退出群')
    for page in (pa, pb, pc):
        assert page.errors == []


def test_the_owner_of_a_group_with_members_cannot_leave(people, server):
    ann, ben = friends(server, 'Ann', 'Ben')
    group_id = group_of(server, ann, [ben], 'Pair')
    pa = people('en-US')
    login_in_browser(pa, ann['mobile'])
    open_group_chat(pa, group_id)
    pa.click('#members-btn')
    expect(pa.locator('#member-list .list-item')).to_have_count(2)
    pa.click('#leave-btn')
    # Not refused after the fact: told at once to choose a new owner, and taken there.
    expect(pa.locator('#confirm-text')).to_contain_text('make another member the owner')
    confirm(pa, True)
    expect(pa.locator('#member-list .member-transfer').first).to_be_focused()
    expect(pa.locator('#members-panel')).to_be_visible()
    rows = server.call('/contact/members', ben['token'], dstid=group_id)[1]['rows']
    assert sorted(row['id'] for row in rows) == sorted([ann['id'], ben['id']])
    assert pa.errors == []


def test_recall_is_offered_only_within_the_servers_limit(people, tmp_path):
    """The page takes the server's IMCHAT_RECALL_SECONDS (here 3): a message older
    than that has no Recall in its menu."""
    own = ServerProcess(str(tmp_path))
    own.env['IMCHAT_RECALL_SECONDS'] = '3'
    own.start()
    try:
        ada, bo = friends(own, 'Ada', 'Bo')
        pa = people('en-US', DESKTOP, srv=own)
        login_in_browser(pa, ada['mobile'])
        assert pa.locator('meta[name=imchat-recall-seconds]').get_attribute('content') == '3'
        open_friend_chat(pa, bo['id'])
        send_text(pa, 'quick')
        mine = pa.locator('#msg-list .msg.mine', has_text='quick')
        expect(mine).to_have_attribute('data-state', 'sent')
        sent_at = time.time()
        mine.click(button='right')
        expect(pa.locator('#msg-menu')).to_be_visible()
        expect(pa.locator('#recall-btn')).to_be_visible()
        pa.keyboard.press('Escape')
        expect(pa.locator('#msg-menu')).to_be_hidden()
        # Once the limit has passed (by the browser's clock too), no Recall (Reply and
        # Copy stay).
        while time.time() - sent_at < 4:
            time.sleep(0.2)
        mine.click(button='right')
        expect(pa.locator('#msg-menu')).to_be_visible()
        expect(pa.locator('#reply-btn')).to_be_visible()
        expect(pa.locator('#recall-btn')).to_be_hidden()
        expect(pa.locator('#copy-btn')).to_be_visible()
        assert pa.errors == []
    finally:
        own.stop()
