"""Accessibility of the web client (WCAG 2.2 AA): axe-core on every screen, in both
languages and both themes, failing on any serious or critical violation; and every main
flow by keyboard alone, with a visible focus."""
import re

import pytest

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    DESKTOP, PHONE, axe_violations, browser, bubbles, expect, login_in_browser, new_mobile,
    open_friend_chat, people, send_and_ack, server, shot)


def seeded(server):
    """Two friends in a group with a few messages (a link, an image, a run of three),
    the second having read some: every kind of row and bubble the screens show."""
    a = server.register(new_mobile(), 'Alice 王')
    b = server.register(new_mobile(), 'Bob')
    assert server.call('/contact/addfriend', a['token'], dstid=b['id'])[0] == 200
    status, body = server.call('/contact/createcommunity', a['token'], name='Hikers 徒步')
    group = body['data']['id']
    assert server.call('/contact/joincommunity', b['token'], dstid=group)[0] == 200
    pic = server.upload_png(b['token'])
    ws = server.socket(b)
    try:
        for i, frame in enumerate([
                {'cmd': 10, 'dstid': a['id'], 'media': 1, 'content': 'see https://example.com/x'},
                {'cmd': 10, 'dstid': a['id'], 'media': 4, 'url': pic},
                {'cmd': 10, 'dstid': a['id'], 'media': 1, 'content': 'one'},
                {'cmd': 11, 'dstid': group, 'media': 1, 'content': 'hello group'}]):
            assert send_and_ack(ws, dict(frame, id='seed-{}-{}'.format(b['id'], i)))['code'] == 0
    finally:
        ws.close()
    return a, b, group


def check(page, screen, found):
    violations = axe_violations(page)
    if violations:
        found.append('{}: {}'.format(screen, violations))


@pytest.mark.parametrize('locale', ['zh-CN', 'en-US'])
@pytest.mark.parametrize('scheme', ['light', 'dark'])
def test_axe_finds_nothing_serious_on_any_screen(people, server, locale, scheme):
    found = []
    a, b, group = seeded(server)
    page = people(locale, DESKTOP, color_scheme=scheme)
    page.goto('/user/login.shtml')
    check(page, 'login', found)
    page.goto('/user/register.shtml')
    check(page, 'register', found)

    # A new person: the first run.
    newcomer = server.register(new_mobile(), 'New')
    first = people(locale, DESKTOP, color_scheme=scheme)
    login_in_browser(first, newcomer['mobile'])
    expect(first.locator('#first-run')).to_be_visible()
    check(first, 'first run', found)

    login_in_browser(page, a['mobile'])
    expect(page.locator('#chat-list .list-item')).to_have_count(2)
    check(page, 'chats', found)
    open_friend_chat(page, b['id'])
    expect(bubbles(page, 'one')).to_have_count(1)
    page.fill('#text-input', 'a draft')
    check(page, 'conversation', found)
    bubbles(page, 'one').click(button='right')
    expect(page.locator('#msg-menu')).to_be_visible()
    check(page, 'message menu', found)
    page.click('#report-btn')
    expect(page.locator('#report-dialog')).to_be_visible()
    check(page, 'report dialog', found)
    page.keyboard.press('Escape')
    expect(page.locator('#report-dialog')).to_be_hidden()
    page.click('#mute-btn')
    expect(page.locator('#mute-dialog')).to_be_visible()
    check(page, 'mute dialog', found)
    page.keyboard.press('Escape')
    expect(page.locator('#mute-dialog')).to_be_hidden()
    page.click('#msg-list .image-btn')
    expect(page.locator('#lightbox')).to_be_visible()
    check(page, 'image viewer', found)
    page.keyboard.press('Escape')
    page.click('#profile-btn')
    expect(page.locator('#profile-panel')).to_be_visible()
    check(page, 'profile', found)
    page.click('#profile-close')
    page.click('.tabbar .tab[data-tab=friends]')
    page.click('#list-action')
    check(page, 'friends', found)
    page.click('.tabbar .tab[data-tab=groups]')
    page.click('#list-action')
    check(page, 'groups', found)
    page.click('#group-list [data-conv="11:{}"]'.format(group))
    page.click('#members-btn')
    expect(page.locator('#member-list .list-item')).to_have_count(2)
    expect(page.locator('#group-settings')).to_be_visible()  # the owner's: join rule, posting
    check(page, 'members', found)
    page.click('#leave-btn')
    expect(page.locator('#confirm')).to_be_visible()
    check(page, 'dialog', found)
    page.click('#confirm button[value=cancel]')
    page.click('.tabbar .tab[data-tab=me]')
    check(page, 'me', found)
    if locale == 'en-US':
        shot(page, 'a11y-me-' + scheme)
    assert found == []
    assert page.errors == []


def test_the_main_flows_by_keyboard_alone(people, server):
    """Log in, open a chat, send, read history, open a message's menu, recall, switch
    tabs: only the keyboard, and the focus always visible."""
    a, b, group = seeded(server)
    page = people('en-US', DESKTOP)
    page.goto('/user/login.shtml')

    def focus_visible():
        return page.evaluate("""() => {
            const el = document.activeElement;
            if (!el || el === document.body) return false;
            const style = getComputedStyle(el);
            return el.matches(':focus-visible') && style.outlineStyle !== 'none' &&
                parseFloat(style.outlineWidth) >= 2;
        }""")

    def tab_to(selector, limit=60, back=False):
        for _ in range(limit):
            page.keyboard.press('Shift+Tab' if back else 'Tab')
            if page.evaluate('(s) => document.activeElement && document.activeElement.matches(s)',
                             selector):
                assert focus_visible(), selector
                return
        raise AssertionError('never reached ' + selector)

    tab_to('input[name=mobile]')
    page.keyboard.type(a['mobile'])
    tab_to('input[name=passwd]')
    page.keyboard.type(a['passwd'])
    page.keyboard.press('Enter')
    page.wait_for_url('**/chat/index.shtml**')
    expect(page.locator('#app')).to_have_attribute('data-conn', 'open')

    # Open the chat with Bob from the Chats list.
    tab_to('#chat-list [data-conv="10:{}"] .row-btn'.format(b['id']))
    page.keyboard.press('Enter')
    expect(page.locator('#convo')).to_be_visible()
    expect(bubbles(page, 'one')).to_have_count(1)
    # Send.
    tab_to('#text-input')
    page.keyboard.type('typed with keys')
    page.keyboard.press('Enter')
    mine = page.locator('#msg-list .msg.mine', has_text='typed with keys')
    expect(mine).to_have_attribute('data-state', re.compile('sent|read'))
    # Read the history: the pane takes the focus and scrolls with the keys.
    tab_to('#messages', back=True)
    page.keyboard.press('Enter')
    last = page.locator('#msg-list > .msg').last
    expect(last).to_be_focused()
    assert focus_visible()
    page.keyboard.press('ArrowUp')
    expect(page.locator('#msg-list > .msg').nth(-2)).to_be_focused()
    page.keyboard.press('ArrowDown')
    expect(last).to_be_focused()
    # Its menu, from the keyboard: the first action (Reply) focused, the arrows moving
    # through Copy down to Recall.
    page.keyboard.press('Enter')
    expect(page.locator('#msg-menu')).to_be_visible()
    expect(page.locator('#reply-btn')).to_be_focused()
    assert focus_visible()
    passed = []
    for _ in range(6):
        page.keyboard.press('ArrowDown')
        focused = page.evaluate('() => document.activeElement.id')
        passed.append(focused)
        if focused == 'recall-btn':
            break
    assert 'copy-btn' in passed and passed[-1] == 'recall-btn', passed
    assert focus_visible()
    page.keyboard.press('Enter')
    expect(page.locator('#msg-list .msg.mine.recalled')).to_have_count(1)
    expect(page.locator('#msg-menu')).to_be_hidden()
    # Switch tabs.
    tab_to('.tabbar .tab[data-tab=groups]')
    page.keyboard.press('Enter')
    expect(page.locator('#tab-groups')).to_be_visible()
    tab_to('#group-list [data-conv="11:{}"] .row-btn'.format(group), back=True)
    page.keyboard.press('Enter')
    expect(bubbles(page, 'hello group')).to_have_count(1)
    shot(page, 'keyboard-group')
    assert page.errors == []


def test_new_messages_are_announced_politely_and_gathered(people, server):
    a, b, group = seeded(server)
    page = people('en-US', DESKTOP)
    login_in_browser(page, a['mobile'])
    live = page.locator('#announcer')
    expect(live).to_have_attribute('aria-live', 'polite')
    # What waited while offline is said once, gathered per conversation.
    expect(live).to_have_text(re.compile(r'^3 new messages in Bob\. New message from Bob: hello group$'))
    ws = server.socket(b)
    try:
        assert send_and_ack(ws, {'id': 'ann-1-' + str(b['id']), 'cmd': 10, 'dstid': a['id'],
                                 'media': 1, 'content': 'just one'})['code'] == 0
        expect(live).to_have_text('New message from Bob: just one')
        # A burst in the group is said once, not message by message.
        for i in range(6):
            ws.send('{"id": "ann-g%d-%d", "cmd": 11, "dstid": %d, "media": 1, "content": "busy %d"}'
                    % (i, b['id'], group, i))
        expect(live).to_have_text('6 new messages in Hikers 徒步')
    finally:
        ws.close()
