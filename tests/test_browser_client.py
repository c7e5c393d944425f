"""The defects a first week of real use found in the web client, each shown fixed in a
real browser: drafts, addresses, live lists, errors in the person's language, the
banner, links, grouping, Copy, the first run, the Me tab's settings, a group's name and
picture, the avatar colours and the dark theme."""
import re

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    DESKTOP, PHONE, PNG, ServerProcess, back_to_lists, befriend_and_connect, browser, bubbles,
    expect, login_in_browser, my_id, new_mobile, open_friend_chat, open_group_chat, people,
    send_and_ack, send_text, server, shot)


def group_with(server, owner, members, name):
    group = server.call('/contact/createcommunity', owner['token'], name=name)[1]['data']['id']
    for m in members:
        assert server.call('/contact/joincommunity', m['token'], dstid=group)[0] == 200
    return group


def test_each_conversation_keeps_its_own_draft_across_reloads(people, server):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    group = group_with(server, a, [b], 'Drafts')
    open_friend_chat(pa, b['id'])
    pa.fill('#text-input', 'for Bob only')
    open_group_chat(pa, group)
    # The group's box is empty: Bob's text is not ready to go to the wrong place.
    expect(pa.locator('#text-input')).to_have_value('')
    pa.fill('#text-input', 'for the group')
    back_to_lists(pa)
    pa.click('.tabbar .tab[data-tab=chats]')
    row = pa.locator('#chat-list [data-conv="10:{}"]'.format(b['id']))
    expect(row.locator('.list-sub')).to_have_text('[Draft] for Bob only')
    shot(pa, 'draft-in-chats')
    pa.reload()
    expect(pa.locator('#app')).to_have_attribute('data-conn', 'open')
    pa.click('.tabbar .tab[data-tab=chats]')
    expect(row.locator('.list-sub')).to_have_text('[Draft] for Bob only')
    open_friend_chat(pa, b['id'])
    expect(pa.locator('#text-input')).to_have_value('for Bob only')
    open_group_chat(pa, group)
    expect(pa.locator('#text-input')).to_have_value('for the group')
    # Sent: the draft is gone.
    pa.press('#text-input', 'Enter')
    expect(bubbles(pa, 'for the group')).to_have_count(1)
    back_to_lists(pa)
    pa.click('.tabbar .tab[data-tab=chats]')
    expect(pa.locator('#chat-list [data-conv="11:{}"] .list-sub'.format(group))).to_have_text(
        'for the group')
    # Another person on this browser has their own drafts.
    assert pa.evaluate('Object.keys(localStorage).filter((k) => k.includes(".draft.")).sort()') \
        == ['imchat.u{}.draft.10:{}'.format(a['id'], b['id'])]
    assert pa.errors == []


def test_the_address_names_the_open_conversation_so_reload_back_and_links_work(people, server):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    group = group_with(server, a, [b], 'Routes')
    open_friend_chat(pa, b['id'])
    assert pa.url.endswith('#/friends/c/10/{}'.format(b['id']))
    open_group_chat(pa, group)
    assert pa.url.endswith('#/groups/c/11/{}'.format(group))
    pa.reload()
    expect(pa.locator('#convo')).to_be_visible()
    expect(pa.locator('#convo-title')).to_have_text('Routes')
    expect(pa.locator('#tab-groups')).to_be_hidden()  # a phone: the conversation covers it
    # Back: the group list it was opened from, then Bob's conversation; and forward.
    pa.go_back()
    expect(pa.locator('#convo')).to_be_hidden()
    expect(pa.locator('#tab-groups')).to_be_visible()
    pa.go_back()
    pa.go_back()
    expect(pa.locator('#convo')).to_be_visible()
    expect(pa.locator('#convo-title')).to_have_text('Bob')
    pa.go_forward()
    pa.go_forward()
    pa.go_forward()
    expect(pa.locator('#convo-title')).to_have_text('Routes')
    pa.click('#back-btn')
    expect(pa.locator('#convo')).to_be_hidden()
    assert pa.url.endswith('#/groups')
    # A link (a notification, a search result) opens the conversation it names.
    pb.goto('/chat/index.shtml#/c/10/{}'.format(a['id']))
    expect(pb.locator('#convo')).to_be_visible()
    expect(pb.locator('#convo-title')).to_have_text('Alice')
    expect(pb.locator('.tabbar .tab[data-tab=chats]')).to_have_attribute('aria-current', 'page')
    assert pa.errors == [] and pb.errors == []


def test_a_new_friend_and_changed_profiles_show_without_a_reload(people, server):
    a = server.register(new_mobile(), 'Ann')
    b = server.register(new_mobile(), 'Ben')
    pa, pb = people('en-US'), people('en-US')
    login_in_browser(pa, a['mobile'])
    login_in_browser(pb, b['mobile'])
    pb.click('.tabbar .tab[data-tab=friends]')
    expect(pb.locator('#friend-empty')).to_be_visible()
    pa.click('.tabbar .tab[data-tab=friends]')
    pa.click('#list-action')
    pa.fill('#add-friend-form input[name=target]', b['mobile'])
    pa.click('#add-friend-form button[type=submit]')
    # Ben, who did nothing, has Ann in his list.
    ann_row = pb.locator('#friend-list [data-conv="10:{}"]'.format(a['id']))
    expect(ann_row).to_contain_text('Ann')
    # Ann renames herself and changes her picture: Ben sees both at once.
    pic = server.upload_png(a['token'])
    assert server.call('/user/update', a['token'], nickname='Ann Lee', avatar=pic)[0] == 200
    expect(ann_row.locator('.list-name')).to_have_text('Ann Lee')
    expect(ann_row.locator('.avatar img')).to_have_attribute('src', pic)
    # A group renamed by its owner is renamed for its members.
    group = group_with(server, a, [b], 'Old name')
    pb.click('.tabbar .tab[data-tab=groups]')
    expect(pb.locator('#group-list')).to_contain_text('Old name')
    assert server.call('/contact/updatecommunity', a['token'], dstid=group, name='New name')[0] == 200
    expect(pb.locator('#group-list [data-conv="11:{}"] .list-name'.format(group))).to_have_text('New name')
    assert pa.errors == [] and pb.errors == []


def test_server_refusals_are_said_in_the_persons_language(people, server):
    user = server.register(new_mobile(), 'Lin')
    zh = people('zh-CN')
    login_in_browser(zh, user['mobile'])
    zh.click('.tabbar .tab[data-tab=friends]')
    zh.click('#list-action')
    zh.fill('#add-friend-form input[name=target]', '19999999999')
    zh.click('#add-friend-form button[type=submit]')
    expect(zh.locator('#toast')).to_have_text('没有这个用户')
    zh.click('.tabbar .tab[data-tab=groups]')
    zh.click('#list-action')
    zh.fill('#join-group-form input[name=dstid]', '987654')
    zh.click('#join-group-form button[type=submit]')
    expect(zh.locator('#toast')).to_have_text('没有这个群')
    # The same in English, and "group" where the server says "community".
    en = people('en-US')
    login_in_browser(en, user['mobile'])
    en.click('.tabbar .tab[data-tab=groups]')
    en.click('#list-action')
    en.fill('#join-group-form input[name=dstid]', '987654')
    en.click('#join-group-form button[type=submit]')
    expect(en.locator('#toast')).to_have_text('No such group')
    # Login and registration too.
    fresh = people('zh-CN')
    fresh.goto('/user/register.shtml')
    fresh.fill('input[name=mobile]', user['mobile'])
    fresh.fill('input[name=passwd]', 'secret-pass')
    fresh.click('button[type=submit]')
    expect(fresh.locator('.form-error')).to_have_text('这个手机号已经注册过了')
    fresh.goto('/user/login.shtml')
    fresh.fill('input[name=mobile]', user['mobile'])
    fresh.fill('input[name=passwd]', 'wrong-passwd')
    fresh.click('button[type=submit]')
    expect(fresh.locator('.form-error')).to_have_text('手机号或密码不对')
    # No "community" anywhere a person reads.
    for page in (zh, en):
        for tab in ('chats', 'friends', 'groups', 'me'):
            page.click('.tabbar .tab[data-tab={}]'.format(tab))
            assert 'ommunit' not in page.locator('body').inner_text()


def test_links_in_text_open_in_a_new_tab_and_stay_text(people, server):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    open_friend_chat(pb, a['id'])
    open_friend_chat(pa, b['id'])
    send_text(pa, 'see https://example.com/a?b=1, and <b>http://x.test</b> or javascript:alert(1)')
    bubble = bubbles(pb, 'see ')
    links = bubble.locator('a')
    expect(links).to_have_count(2)
    assert links.nth(0).get_attribute('href') == 'https://example.com/a?b=1'
    assert links.nth(0).inner_text() == 'https://example.com/a?b=1'
    assert links.nth(1).get_attribute('href') == 'http://x.test/'
    for i in range(2):
        assert links.nth(i).get_attribute('target') == '_blank'
        assert set(links.nth(i).get_attribute('rel').split()) >= {'noopener', 'noreferrer'}
    expect(bubble).to_have_text(
        'see https://example.com/a?b=1, and <b>http://x.test</b> or javascript:alert(1)')
    assert bubble.locator('b').count() == 0
    assert pa.errors == [] and pb.errors == []


def test_a_run_of_messages_shares_one_avatar_name_and_time_and_read_shows_once(people, server):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    group = group_with(server, a, [b], 'Runs')
    open_friend_chat(pa, b['id'])
    for text in ('one', 'two', 'three'):
        send_text(pa, text)
        expect(pa.locator('#msg-list .msg.mine', has_text=text)).to_have_attribute(
            'data-state', 'sent')
    mine = pa.locator('#msg-list .msg.mine')
    expect(mine.locator('.msg-state:visible')).to_have_count(1)
    expect(mine.last.locator('.msg-state')).to_have_text('Sent')
    open_friend_chat(pb, a['id'])
    # Bob read them all: "Read" once, under the last.
    expect(mine.last).to_have_attribute('data-state', 'read')
    expect(mine.locator('.msg-state:visible')).to_have_count(1)
    expect(mine.last.locator('.msg-state')).to_have_text('Read')
    theirs = pb.locator('#msg-list .msg.theirs')
    expect(theirs).to_have_count(3)
    expect(theirs.locator('.avatar:visible')).to_have_count(1)
    expect(theirs.locator('.msg-name:visible')).to_have_count(1)
    expect(theirs.locator('time:visible')).to_have_count(1)
    expect(theirs.nth(1)).to_have_class(re.compile(r'\bcont\b'))
    # In a group, another person's message starts a new run.
    open_group_chat(pa, group)
    open_group_chat(pb, group)
    send_text(pa, 'g1')
    send_text(pa, 'g2')
    expect(bubbles(pb, 'g2')).to_have_count(1)
    send_text(pb, 'b1')
    expect(bubbles(pa, 'b1')).to_have_count(1)
    send_text(pa, 'g3')
    expect(bubbles(pb, 'g3')).to_have_count(1)
    names = pb.locator('#msg-list .msg.theirs .msg-name:visible')
    expect(names).to_have_count(2)
    shot(pb, 'grouped')
    assert pa.errors == [] and pb.errors == []


def test_copy_from_the_menu(people, server, browser):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    page = people('en-US', DESKTOP, permissions=['clipboard-read', 'clipboard-write'])
    login_in_browser(page, b['mobile'])
    open_friend_chat(pa, b['id'])
    send_text(pa, 'copy me 复制')
    open_friend_chat(page, a['id'])
    bubbles(page, 'copy me').click(button='right')
    page.click('#copy-btn')
    expect(page.locator('#toast')).to_have_text('Copied')
    assert page.evaluate('navigator.clipboard.readText()') == 'copy me 复制'


def test_the_disconnected_banner_pushes_the_lists_down(people, tmp_path):
    own = ServerProcess(str(tmp_path))
    own.start()
    try:
        # The first user and the first group of a new server: both id 1.
        a = own.register(new_mobile(), 'Ada')
        b = own.register(new_mobile(), 'Bo')
        assert own.call('/contact/addfriend', a['token'], dstid=b['id'])[0] == 200
        group = own.call('/contact/createcommunity', a['token'], name='Ada')[1]['data']['id']
        assert a['id'] == group == 1
        ws = own.socket(b)
        send_and_ack(ws, {'id': 'banner-1', 'cmd': 10, 'dstid': a['id'], 'media': 1, 'content': 'hi'})
        ws.close()
        page = people('en-US', srv=own)
        login_in_browser(page, a['mobile'])
        rows = page.locator('#chat-list .list-item')
        expect(rows).to_have_count(1)
        page.click('.tabbar .tab[data-tab=groups]')
        user_hue = page.locator('#group-list .avatar').get_attribute('data-hue')
        page.click('.tabbar .tab[data-tab=friends]')
        # User 1 (Ada herself) and group 1: different colours.
        page.click('.tabbar .tab[data-tab=me]')
        assert page.locator('#me-avatar').get_attribute('data-hue') != user_hue
        page.click('.tabbar .tab[data-tab=chats]')
        top = rows.first.bounding_box()['y']
        own.stop()
        banner = page.locator('#conn-banner')
        expect(banner).to_be_visible()
        box = banner.bounding_box()
        first = rows.first.bounding_box()
        assert first['y'] >= box['y'] + box['height'] - 0.5 and first['y'] > top
        shot(page, 'banner')
    finally:
        own.stop()


def test_first_run_explains_how_to_add_a_friend_and_shows_what_to_share(people, server):
    user = server.register(new_mobile(), 'Newcomer')
    page = people('zh-CN')
    login_in_browser(page, user['mobile'])
    first = page.locator('#first-run')
    expect(first).to_be_visible()
    expect(first.locator('#first-run-id')).to_have_text(str(user['id']))
    expect(first.locator('#first-run-mobile')).to_have_text(user['mobile'])
    shot(page, 'first-run')
    page.click('#first-run-add')
    expect(page.locator('#add-friend-form')).to_be_visible()
    expect(page.locator('#add-friend-form input[name=target]')).to_be_focused()
    # The Chinese placeholder fits its box on a phone.
    fits = page.evaluate("""() => {
        const input = document.querySelector('#add-friend-form input[name=target]');
        const style = getComputedStyle(input);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = style.font;
        const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return ctx.measureText(input.placeholder).width <= room;
    }""")
    assert fits


def test_me_tab_changes_the_password_and_the_bio_and_the_theme(people, server):
    user = server.register(new_mobile(), 'Mei')
    page = people('en-US', color_scheme='dark')
    login_in_browser(page, user['mobile'])
    page.click('.tabbar .tab[data-tab=me]')
    # The system's dark preference is followed; the switch overrides it, per device.
    dark_bg = page.evaluate('getComputedStyle(document.body).backgroundColor')
    page.select_option('#theme-select', 'light')
    light_bg = page.evaluate('getComputedStyle(document.body).backgroundColor')
    assert dark_bg != light_bg
    page.reload()
    expect(page.locator('#theme-select')).to_have_value('light')
    assert page.evaluate('document.documentElement.dataset.theme') == 'light'
    page.click('.tabbar .tab[data-tab=me]')
    page.fill('#bio-form input[name=memo]', 'Climbing, tea, 猫')
    page.click('#bio-form button[type=submit]')
    expect(page.locator('#me-bio')).to_have_text('Climbing, tea, 猫')
    assert server.call('/user/find', user['token'])[1]['data']['memo'] == 'Climbing, tea, 猫'
    page.fill('#password-form input[name=passwd]', 'wrong-one')
    page.fill('#password-form input[name=newpasswd]', 'new-secret')
    page.click('#password-form button[type=submit]')
    expect(page.locator('#toast')).to_have_text('Wrong mobile number or password')
    page.fill('#password-form input[name=passwd]', user['passwd'])
    page.fill('#password-form input[name=newpasswd]', 'new-secret')
    page.click('#password-form button[type=submit]')
    expect(page.locator('#toast')).to_have_text('Password changed')
    assert server.call('/user/login', mobile=user['mobile'], passwd='new-secret')[0] == 200
    page.select_option('#theme-select', 'dark')
    shot(page, 'me-dark')
    assert page.errors == []


def test_the_owner_renames_the_group_and_gives_it_a_picture(people, server, tmp_path):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    group = group_with(server, a, [b], 'Before')
    open_group_chat(pa, group)
    pa.click('#members-btn')
    expect(pa.locator('#group-settings')).to_be_visible()
    pa.fill('#rename-group-form input[name=name]', 'After 之后')
    pa.click('#rename-group-form button[type=submit]')
    expect(pa.locator('#convo-title')).to_have_text('After 之后')
    icon = tmp_path / 'icon.png'
    icon.write_bytes(PNG)
    pa.set_input_files('#group-icon-input', str(icon))
    expect(pa.locator('#toast')).to_have_text('Group picture updated')
    rows = server.call('/contact/loadcommunity', b['token'])[1]['rows']
    assert rows[0]['name'] == 'After 之后' and rows[0]['icon'].startswith('/')
    # A member has no such settings.
    open_group_chat(pb, group)
    pb.click('#members-btn')
    expect(pb.locator('#member-list .list-item')).to_have_count(2)
    expect(pb.locator('#group-settings')).to_be_hidden()
    expect(pb.locator('#convo-title')).to_have_text('After 之后')
