"""Message search in the web client (issue 20), in Chromium: the box over the Chats list
and the one in a conversation, in Chinese and in English; a result opens its
conversation at the message, its neighbours loaded around it, the match marked."""
import time

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    DESKTOP, back_to_lists, browser, bubbles, expect, login_in_browser, new_mobile,
    open_friend_chat, people, send_and_ack, server, shot)


def store(server, sender, dstid, texts, cmd=10):
    ws = server.socket(sender)
    try:
        return [send_and_ack(ws, {'id': 'search-{}-{}'.format(time.monotonic_ns(), i),
                                  'cmd': cmd, 'dstid': dstid, 'media': 1,
                                  'content': text})['msgid'] for i, text in enumerate(texts)]
    finally:
        ws.close()


def indexed(server, user, q, msgid, seconds=20):
    """Wait until the server's search follower has indexed `msgid` (it polls)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = server.call('/chat/search', user['token'], q=q)
        assert status == 200, body
        if any(row['msgid'] == msgid for row in body['rows']):
            return
        time.sleep(0.05)
    raise AssertionError('message {} was not indexed for {!r}'.format(msgid, q))


def test_search_over_the_chats_list_opens_a_chinese_message_in_place(people, server):
    a = server.register(new_mobile(), 'Alice')
    b = server.register(new_mobile(), 'Bob')
    assert server.call('/contact/addfriend', a['token'], dstid=b['id'])[0] == 200
    before = store(server, a, b['id'], ['早上的消息 {}'.format(i) for i in range(20)])
    target, markup = store(server, a, b['id'], ['明天去上海开会', '<b>上海</b>的天气'])
    store(server, a, b['id'], ['后来的消息 {}'.format(i) for i in range(40)])
    indexed(server, b, '上海', target)

    page = people('zh-CN', viewport=DESKTOP)
    login_in_browser(page, b['mobile'])
    expect(page.locator('#search-all-input')).to_have_attribute('placeholder', '搜索聊天记录')
    page.fill('#search-all-input', '上海')
    results = page.locator('#search-all-results .search-result')
    expect(results).to_have_count(2)
    # Newest first; conversation, sender and the matched words marked, as text.
    first = results.nth(0)
    expect(first.locator('.search-result-conv')).to_have_text('Alice')
    expect(first.locator('.search-result-sender')).to_have_text('Alice')
    expect(first.locator('.search-result-text')).to_have_text('<b>上海</b>的天气')
    expect(first.locator('mark.search-hit')).to_have_text('上海')
    assert first.locator('.search-result-text b').count() == 0
    expect(results.nth(1).locator('mark.search-hit')).to_have_text('上海')
    shot(page, 'search-zh')

    results.nth(1).click()
    expect(page.locator('#convo')).to_be_visible()
    hit = page.locator('#msg-list .msg.search-target')
    expect(hit).to_have_attribute('data-msgid', str(target))
    expect(hit.locator('mark.search-hit')).to_have_text('上海')
    expect(hit).to_be_in_viewport()
    # Its neighbours came with it (`around`), though far from the newest page.
    expect(bubbles(page, '早上的消息 19')).to_have_count(1)
    expect(bubbles(page, '后来的消息 0')).to_have_count(1)
    assert before[-1] < target
    assert page.errors == []


def test_search_in_a_conversation_in_english_pages_by_scrolling(people, server):
    a = server.register(new_mobile(), 'Carol')
    b = server.register(new_mobile(), 'Dave')
    c = server.register(new_mobile(), 'Erin')
    for other in (b, c):
        assert server.call('/contact/addfriend', a['token'], dstid=other['id'])[0] == 200
    reports = store(server, b, a['id'], ['Weekly report {}'.format(i) for i in range(45)])
    store(server, c, a['id'], ['A report from Erin'])
    store(server, b, a['id'], ['Meeting moved to noon', 'see you'])
    last = store(server, b, a['id'], ['Lunch after the meeting?'])[0]
    indexed(server, a, 'meeting', last)

    page = people('en-US', viewport=DESKTOP)
    login_in_browser(page, a['mobile'])
    open_friend_chat(page, b['id'])
    page.click('#search-here-btn')
    expect(page.locator('#search-here-input')).to_have_attribute(
        'placeholder', 'Search this conversation')
    page.fill('#search-here-input', 'MEET')
    results = page.locator('#search-here-results .search-result')
    expect(results).to_have_count(2)
    expect(results.nth(0).locator('mark.search-hit')).to_have_text('meet')
    expect(results.nth(1).locator('mark.search-hit')).to_have_text('Meet')

    # 45 reports with Dave, not Erin's: a page of 30, then the rest as the list scrolls.
    page.fill('#search-here-input', 'report')
    expect(results).to_have_count(30)
    results.nth(29).scroll_into_view_if_needed()
    page.locator('#search-here-results').evaluate('el => el.scrollTop = el.scrollHeight')
    expect(results).to_have_count(45)
    expect(page.locator('#search-here-results .search-result', has_text='Erin')).to_have_count(0)
    results.nth(44).click()
    hit = page.locator('#msg-list .msg.search-target')
    expect(hit).to_have_attribute('data-msgid', str(reports[0]))
    expect(hit.locator('mark.search-hit')).to_have_text('report')
    shot(page, 'search-en')

    # Over the Chats list, every conversation: Erin's too; nothing for a stranger word.
    back_to_lists(page)
    page.click('.tabbar .tab[data-tab=chats]')
    page.fill('#search-all-input', 'report erin')
    expect(page.locator('#search-all-results .search-result')).to_have_count(1)
    page.fill('#search-all-input', 'zzzz')
    expect(page.locator('#search-all-note')).to_have_text('No messages found')
    assert page.errors == []
