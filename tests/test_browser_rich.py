"""Richer messages in a real browser (docs/protocol.md, "Richer messages"): the message
menu by mouse and keyboard (reply, react, edit, forward, copy), quotes that jump to the
quoted message, reactions with counts, "edited", @ suggestions and the mention marker
in a group, and a file sent with the paper-clip shown as a file card. Two and three
people, English and Chinese."""
import re

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    DESKTOP, back_to_lists, browser, bubbles, expect, login_in_browser, new_mobile,
    open_friend_chat, open_group_chat, people, send_text, server, shot)
from tests.test_browser_events import chats_row, friends, group_of, show_chats


def menu_on(page, text, action):
    """Right click the message with `text` and choose `action` from its menu."""
    message(page, text).click(button='right')
    expect(page.locator('#msg-menu')).to_be_visible()
    page.click('#{}-btn'.format(action))


def message(page, text):
    """The last message whose own bubble (not a quote of it) holds `text`."""
    return page.locator('#msg-list .msg', has=page.locator('.bubble', has_text=text)).last


def test_reply_react_edit_and_forward_between_three_people(people, server):
    """en. Bob reacts to Alice's message and she sees the count; Alice edits it and Bob
    sees the new text marked edited; Bob replies with a quote that jumps to it; Bob
    forwards it to Carol, who sees it forwarded; the menu works from the keyboard."""
    alice, bob, carol = friends(server, 'Alice', 'Bob', 'Carol')
    pa, pb, pc = (people('en-US', DESKTOP) for _ in range(3))
    for page, user in ((pa, alice), (pb, bob), (pc, carol)):
        login_in_browser(page, user['mobile'])
    open_friend_chat(pa, bob['id'])
    open_friend_chat(pb, alice['id'])
    send_text(pa, 'see you at noon')
    expect(bubbles(pb, 'see you at noon')).to_be_visible()

    menu_on(pb, 'see you at noon', 'react')
    expect(pb.locator('.reaction-picker')).to_be_visible()
    pb.locator('.reaction-picker .emoji', has_text='👍').first.click()
    mine = message(pb, 'see you at noon').locator('.reaction')
    expect(mine).to_have_text('👍1')
    expect(mine).to_have_class('reaction mine')
    theirs = message(pa, 'see you at noon').locator('.reaction')
    expect(theirs).to_have_text('👍1')
    expect(theirs).to_have_class('reaction')

    menu_on(pa, 'see you at noon', 'edit')
    pa.fill('.edit-dialog textarea', 'see you at one')
    pa.click('.edit-dialog .edit-save')
    expect(bubbles(pb, 'see you at one')).to_be_visible()
    expect(message(pb, 'see you at one').locator('.msg-edited')).to_have_text('edited')
    expect(message(pa, 'see you at one').locator('.msg-edited')).to_be_visible()

    menu_on(pb, 'see you at one', 'reply')
    expect(pb.locator('#reply-bar')).to_contain_text('Replying to Alice')
    send_text(pb, 'works for me')
    expect(pb.locator('#reply-bar')).to_be_hidden()
    quote = message(pa, 'works for me').locator('.msg-quote')
    expect(quote).to_contain_text('see you at one')
    quote.click()
    expect(message(pa, 'see you at one')).to_have_class(re.compile(r'\bflash\b'))

    menu_on(pb, 'see you at one', 'forward')
    pb.locator('.forward-dialog .forward-target', has_text='Carol').click()
    open_friend_chat(pc, bob['id'])
    forwarded = message(pc, 'see you at one')
    expect(forwarded.locator('.msg-forwarded')).to_have_text('Forwarded')

    # From the keyboard: focus a message, open its menu, move, close.
    message(pb, 'works for me').focus()
    pb.keyboard.press('Shift+F10')
    expect(pb.locator('#msg-menu')).to_be_visible()
    expect(pb.locator('#reply-btn')).to_be_focused()
    pb.keyboard.press('ArrowDown')
    expect(pb.locator('#react-btn')).to_be_focused()
    pb.keyboard.press('Escape')
    expect(pb.locator('#msg-menu')).to_be_hidden()
    shot(pb, 'rich-reply-react-edit')
    for page in (pa, pb, pc):
        assert page.errors == []


def test_mentions_and_a_file_in_a_group(people, server, tmp_path):
    """zh. In a group Bob types @ and picks Carol from the suggestions; Carol's chat list
    marks the conversation until she opens it; Carol sends a PDF with the paper-clip and
    the others see a file card with its name, size and a download link."""
    alice, bob, carol = friends(server, 'Alice', 'Bob', 'Carol')
    group_id = group_of(server, alice, [bob, carol], '周末')
    pa, pb, pc = (people('zh-CN', DESKTOP) for _ in range(3))
    for page, user in ((pa, alice), (pb, bob), (pc, carol)):
        login_in_browser(page, user['mobile'])
    # The member list is held back: Bob types @ before it comes, and its suggestions
    # show once it does (they were lost, now and then, on a quick typist).
    held, released = [], []

    def hold(route):
        if released:
            route.continue_()
        else:
            held.append(route)
    pb.route('**/contact/members*', hold)
    open_group_chat(pb, group_id)
    pb.fill('#text-input', '')
    pb.type('#text-input', '@Ca')
    suggestion = pb.locator('#mention-list li', has_text='Carol')
    expect(suggestion).to_have_count(0)
    released.append(True)
    for route in held:
        route.continue_()
    expect(suggestion).to_be_visible()
    pb.press('#text-input', 'Enter')
    expect(pb.locator('#text-input')).to_have_value('@Carol ')
    pb.type('#text-input', '带水')
    pb.press('#text-input', 'Enter')
    show_chats(pc)
    expect(chats_row(pc, 11, group_id).locator('.list-mentioned')).to_have_text('[有人@我]')
    show_chats(pa)
    expect(chats_row(pa, 11, group_id)).to_contain_text('带水')
    expect(chats_row(pa, 11, group_id).locator('.list-mentioned')).to_have_count(0)
    open_group_chat(pc, group_id)
    expect(message(pc, '带水')).to_have_class(re.compile(r'\bmentions-me\b'))
    show_chats(pc)
    expect(chats_row(pc, 11, group_id).locator('.list-mentioned')).to_have_count(0)

    open_group_chat(pc, group_id)
    pc.set_input_files('#file-input', files=[{'name': '行程.pdf', 'mimeType': 'application/pdf',
                                              'buffer': b'%PDF-1.4 ' + b'x' * 2048}])
    open_group_chat(pa, group_id)
    card = pa.locator('#msg-list .file-card', has_text='行程.pdf')
    expect(card).to_be_visible()
    expect(card.locator('.file-size')).to_have_text('2 KB')
    href = card.locator('.file-download').get_attribute('href')
    assert href.startswith('/mnt/') and '.f.pdf?name=' in href
    shot(pa, 'rich-file-card')
    for page in (pa, pb, pc):
        assert page.errors == []
