"""Issue 22 in a real browser: a friend request sent with a greeting, seen live with the
Friends tab's badge, accepted, then a chat; a block from the profile (asked first), after
which the blocked person's message is refused, and the block list on the Me tab. Two
people, Chinese and English."""
import pytest

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    ServerProcess, back_to_lists, browser, bubbles, expect, login_in_browser, new_mobile,
    open_friend_chat, people, send_text, shot)
from tests.conftest import SAFETY_DEFAULTS

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """The browser tests' server with issue 22's defaults (friend requests on)."""
    proc = ServerProcess(str(tmp_path_factory.mktemp('browser-safety')))
    proc.env.update({'IMCHAT_' + k: str(int(v)) if isinstance(v, bool) else str(v)
                     for k, v in SAFETY_DEFAULTS.items()})
    proc.start()
    yield proc
    proc.stop()
    print(proc.log())  # shown with a failure's report


def friends_tab(page):
    back_to_lists(page)
    page.click('.tabbar .tab[data-tab=friends]')


def test_a_request_with_its_badge_accepted_then_a_chat_then_a_block(people, server):
    alice = server.register(new_mobile(), 'Alice')
    bob = server.register(new_mobile(), 'Bob')
    pa, pb = people('en-US'), people('zh-CN')
    login_in_browser(pa, alice['mobile'])
    login_in_browser(pb, bob['mobile'])

    # Alice asks by id, with a greeting.
    friends_tab(pa)
    pa.click('#list-action')
    pa.select_option('#add-friend-form select[name=by]', 'dstid')
    pa.fill('#add-friend-form input[name=target]', str(bob['id']))
    pa.fill('#add-friend-form input[name=memo]', 'Hi Bob, from the hike')
    pa.click('#add-friend-form button[type=submit]')
    expect(pa.locator('#toast')).to_have_text('Friend request sent')
    waiting = pa.locator('#request-list [data-request-from="{}"]'.format(bob['id']))
    expect(waiting).to_contain_text('Waiting for an answer')
    expect(pa.locator('#friend-list .list-item')).to_have_count(0)

    # Bob sees it at once: the badge on his Friends tab, the request with its greeting.
    badge = pb.locator('.tabbar .tab[data-tab=friends] .badge')
    expect(badge).to_have_text('1')
    friends_tab(pb)
    row = pb.locator('#request-list [data-request-from="{}"]'.format(alice['id']))
    expect(row.locator('.list-name')).to_have_text('Alice')
    expect(row.locator('.request-memo')).to_have_text('Hi Bob, from the hike')
    shot(pb, 'friend-request-zh')
    row.locator('.request-accept').focus()
    pb.keyboard.press('Enter')  # keyboard-usable
    expect(badge).to_be_hidden()
    expect(pb.locator('#requests')).to_be_hidden()
    expect(pb.locator('#friend-list [data-conv="10:{}"]'.format(alice['id']))).to_be_visible()
    # Alice's list follows live (cmd 17 accepted).
    expect(pa.locator('#friend-list [data-conv="10:{}"]'.format(bob['id']))).to_be_visible()
    expect(pa.locator('#requests')).to_be_hidden()

    open_friend_chat(pa, bob['id'])
    send_text(pa, 'Saturday at eight?')
    open_friend_chat(pb, alice['id'])
    expect(bubbles(pb, 'Saturday at eight?')).to_have_count(1)

    # Bob blocks Alice from her profile; he is asked first, and "cancel" does nothing.
    pb.click('#profile-btn')
    expect(pb.locator('#block-btn')).to_be_visible()
    pb.click('#block-btn')
    expect(pb.locator('#confirm')).to_be_visible()
    expect(pb.locator('#confirm-text')).to_contain_text('Alice')
    pb.click('#confirm button[value=cancel]')
    expect(pb.locator('#friend-list [data-conv="10:{}"]'.format(alice['id']))).to_have_count(1)
    pb.click('#block-btn')  # the profile is still open
    pb.click('#confirm-ok')
    expect(pb.locator('#toast')).to_have_text('已拉黑')
    expect(pb.locator('#friend-list [data-conv="10:{}"]'.format(alice['id']))).to_have_count(0)

    # Alice's next message is refused; she is not told why.
    send_text(pa, 'Still on?')
    expect(pa.locator('#msg-list .msg.mine[data-state=failed]')).to_have_count(1)
    expect(pa.locator('#msg-list .msg.mine[data-state=failed]')).not_to_contain_text('block')

    # Bob's block list on the Me tab; unblocking asks first.
    back_to_lists(pb)
    pb.click('.tabbar .tab[data-tab=me]')
    blocked = pb.locator('#blocked-list [data-blocked="{}"]'.format(alice['id']))
    expect(blocked).to_contain_text('Alice')
    shot(pb, 'blocked-list-zh')
    blocked.locator('.blocked-unblock').click()
    pb.click('#confirm-ok')
    expect(pb.locator('#blocked')).to_be_hidden()
    for page in (pa, pb):
        assert page.errors == []
