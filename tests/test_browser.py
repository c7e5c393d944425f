"""The web client in a real browser: sign-up, chatting, media, reconnecting, safety
(the set-up they share is in browserkit.py; the conversation events are in
test_browser_events.py)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    DELIVERED, DESKTOP, PHONE, PNG, ROOT, ServerProcess, back_to_lists, befriend_and_connect,
    browser, bubbles, expect, free_port, login_in_browser, make_png, my_id, new_mobile,
    open_friend_chat, open_group_chat, people, register_in_browser, send_and_ack, send_text,
    server, shot)
from tests.harness import wait_for


def test_root_sends_a_visitor_to_login_and_the_language_follows_the_browser(people):
    zh = people('zh-CN')
    zh.goto('/')
    zh.wait_for_url('**/user/login.shtml')
    expect(zh.locator('button[type=submit]')).to_have_text('登录')
    shot(zh, 'login')
    en = people('en-US')
    en.goto('/user/register.shtml')
    expect(en.locator('button[type=submit]')).to_have_text('Register')
    # Neither Chinese nor English: Chinese, the default.
    fr = people('fr-FR')
    fr.goto('/user/login.shtml')
    expect(fr.locator('button[type=submit]')).to_have_text('登录')
    # The switch wins over the browser, and sticks.
    fr.click('.lang-switch')
    expect(fr.locator('button[type=submit]')).to_have_text('Log in')
    fr.reload()
    expect(fr.locator('button[type=submit]')).to_have_text('Log in')
    shot(en, 'register')
    for page in (zh, en, fr):
        assert page.errors == []


def test_login_shows_why_it_failed(people, server):
    user = server.register(new_mobile(), 'Carol')
    page = people('en-US')
    page.goto('/user/login.shtml')
    page.fill('input[name=mobile]', '12')
    page.fill('input[name=passwd]', 'whatever')
    page.click('button[type=submit]')
    expect(page.locator('.form-error')).to_have_text('The mobile number must be 5 to 19 digits')
    page.fill('input[name=mobile]', user['mobile'])
    page.fill('input[name=passwd]', 'wrong-passwd')
    page.click('button[type=submit]')
    expect(page.locator('.form-error')).to_be_visible()
    assert page.url.endswith('/user/login.shtml')


def test_two_users_register_befriend_and_chat_both_ways(people, server):
    alice, bob = people('zh-CN'), people('en-US')
    alice_mobile, bob_mobile = new_mobile(), new_mobile()
    register_in_browser(alice, alice_mobile, 'Alice')
    register_in_browser(bob, bob_mobile, 'Bob')
    # Chats come first; nobody to chat with yet: the first run says how to add a friend.
    expect(alice.locator('#first-run')).to_be_visible()
    alice.click('.tabbar .tab[data-tab=friends]')
    expect(alice.locator('#friend-empty')).to_be_visible()
    shot(alice, 'friends-empty')

    # Alice adds Bob by his mobile.
    alice.click('#list-action')
    alice.select_option('#add-friend-form select[name=by]', 'mobile')
    alice.fill('#add-friend-form input[name=target]', bob_mobile)
    alice.click('#add-friend-form button[type=submit]')
    bob_id, alice_id = my_id(bob), my_id(alice)
    expect(alice.locator('#friend-list [data-conv="10:{}"]'.format(bob_id))).to_contain_text('Bob')

    # Bob sees Alice once his list reloads (the tab does it).
    bob.click('.tabbar .tab[data-tab=groups]')
    bob.click('.tabbar .tab[data-tab=friends]')
    alice_item = bob.locator('#friend-list [data-conv="10:{}"]'.format(alice_id))
    expect(alice_item).to_contain_text('Alice')

    open_friend_chat(alice, bob_id)
    send_text(alice, '你好 Bob, hello')
    mine = alice.locator('#msg-list .msg.mine').last
    expect(mine).to_have_attribute('data-state', 'sent')
    expect(mine.locator('.msg-state')).to_have_text('已发送')
    assert int(mine.get_attribute('data-msgid')) > 0

    # Bob has an unread count on Alice, and the message once he opens her.
    expect(alice_item.locator('.badge')).to_have_text('1')
    expect(bob.locator('.tabbar .tab[data-tab=chats] .badge')).to_have_text('1')
    shot(bob, 'friends-unread')
    open_friend_chat(bob, alice_id)
    expect(bubbles(bob, '你好 Bob, hello')).to_have_count(1)
    theirs = bob.locator('#msg-list .msg.theirs').last
    expect(theirs.locator('.msg-name')).to_have_text('Alice')
    expect(theirs.locator('time')).to_have_text(re.compile(r'\d\d:\d\d'))
    expect(bob.locator('.tabbar .tab[data-tab=chats] .badge')).to_be_hidden()

    send_text(bob, 'Hi Alice!\nsecond line')
    expect(bubbles(alice, 'Hi Alice!')).to_have_count(1)
    # Alice has the conversation open: she reads it at once, and Bob sees that.
    expect(bob.locator('#msg-list .msg.mine').last).to_have_attribute('data-state', 'read')
    expect(bob.locator('#msg-list .msg.mine .msg-state').last).to_have_text('Read')

    # An emoji from the picker.
    alice.click('#emoji-btn')
    expect(alice.locator('#emoji-panel')).to_be_visible()
    shot(alice, 'emoji-picker')
    alice.click('#emoji-panel .emoji >> text=🎉')
    expect(bob.locator('#msg-list .msg.theirs.media-6 .bubble')).to_have_text('🎉')

    # A reload shows the same conversation from history, once each.
    bob.reload()
    expect(bob.locator('#app')).to_have_attribute('data-conn', 'open')
    open_friend_chat(bob, alice_id)
    expect(bubbles(bob, '你好 Bob, hello')).to_have_count(1)
    expect(bubbles(bob, 'Hi Alice!')).to_have_count(1)
    shot(alice, 'conversation')
    assert alice.errors == [] and bob.errors == []


def test_a_group_of_three(people, server):
    names = ['Ann', 'Ben', 'Cat']
    users = [server.register(new_mobile(), name) for name in names]
    pages = [people('en-US') for _ in users]
    for page, user in zip(pages, users):
        login_in_browser(page, user['mobile'])
    ann, ben, cat = pages

    ann.click('.tabbar .tab[data-tab=groups]')
    ann.click('#list-action')
    ann.fill('#create-group-form input[name=name]', 'Hikers 徒步')
    ann.click('#create-group-form button[type=submit]')
    item = ann.locator('#group-list .list-item', has_text='Hikers 徒步')
    expect(item).to_have_count(1)
    group_id = int(item.get_attribute('data-conv').split(':')[1])

    for page in (ben, cat):
        page.click('.tabbar .tab[data-tab=groups]')
        page.click('#list-action')
        page.fill('#join-group-form input[name=dstid]', str(group_id))
        page.click('#join-group-form button[type=submit]')
        expect(page.locator('#group-list [data-conv="11:{}"]'.format(group_id))).to_have_count(1)

    open_group_chat(ann, group_id)
    send_text(ann, 'Saturday at 8?')
    expect(ann.locator('#msg-list .msg.mine').last).to_have_attribute('data-state', 'sent')
    for page in (ben, cat):
        expect(page.locator('.tabbar .tab[data-tab=chats] .badge')).to_have_text('1')
        open_group_chat(page, group_id)
        expect(bubbles(page, 'Saturday at 8?')).to_have_count(1)
        expect(page.locator('#msg-list .msg.theirs .msg-name').last).to_have_text('Ann')
    send_text(cat, 'I am in')
    send_text(ben, 'Me too')
    for page in (ann, ben, cat):
        expect(bubbles(page, 'I am in')).to_have_count(1)
        expect(bubbles(page, 'Me too')).to_have_count(1)
    cats = ann.locator('#msg-list .msg.theirs', has_text='I am in')
    expect(cats.locator('.msg-name')).to_have_text('Cat')
    shot(ann, 'group-conversation')

    ann.click('#members-btn')
    members = ann.locator('#member-list .list-item')
    expect(members).to_have_count(3)
    for name in names:
        expect(ann.locator('#member-list')).to_contain_text(name)
    shot(ann, 'group-members')
    ann.click('#members-close')
    ann.click('#back-btn')
    expect(ann.locator('#group-list')).to_contain_text('Hikers 徒步')
    shot(ann, 'groups')
    assert all(page.errors == [] for page in pages)


def test_an_image_and_a_voice_note_reach_the_other_side(people, server, tmp_path):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    image = tmp_path / 'photo.png'
    image.write_bytes(PNG)
    open_friend_chat(pa, b['id'])
    open_friend_chat(pb, a['id'])

    # On a slow line (chromium's network emulation) the progress bar shows the upload.
    big = tmp_path / 'noise.png'
    big.write_bytes(make_png(400, 400, noise=True))
    cdp = pa.context.new_cdp_session(pa)
    cdp.send('Network.enable')
    cdp.send('Network.emulateNetworkConditions', {'offline': False, 'latency': 20,
                                                  'downloadThroughput': -1,
                                                  'uploadThroughput': 160 * 1024})
    pa.set_input_files('#image-input', str(big))
    expect(pa.locator('#upload-bar')).to_be_visible()
    pa.wait_for_function('() => { const v = document.getElementById("upload-progress").value;'
                         ' return v > 0 && v < 100; }')
    shot(pa, 'upload-progress')
    expect(pa.locator('#upload-bar')).to_be_hidden(timeout=30000)
    cdp.send('Network.emulateNetworkConditions', {'offline': False, 'latency': 0,
                                                  'downloadThroughput': -1,
                                                  'uploadThroughput': -1})
    expect(pb.locator('#msg-list .msg.theirs.media-4 img.msg-image')).to_have_count(1)

    pa.set_input_files('#image-input', str(image))
    expect(pa.locator('#msg-list .msg.mine.media-4')).to_have_count(2)
    sent = pa.locator('#msg-list .msg.mine.media-4').last
    expect(sent).to_have_attribute('data-state', DELIVERED)
    src = sent.locator('img.msg-image').get_attribute('src')
    assert src.startswith('/')
    received = pb.locator('#msg-list .msg.theirs.media-4 img.msg-image').last
    expect(received).to_have_attribute('src', src)
    expect(received).to_have_js_property('naturalWidth', 320)  # the image really loaded
    received.click()
    expect(pb.locator('#lightbox')).to_be_visible()
    expect(pb.locator('#lightbox-img')).to_have_attribute('src', src)
    pb.click('#lightbox')
    expect(pb.locator('#lightbox')).to_be_hidden()

    # A voice note from chromium's fake microphone.
    pa.click('#voice-btn')
    expect(pa.locator('#recorder')).to_be_visible()
    pa.wait_for_timeout(1300)
    pa.click('#rec-stop')
    voice = pb.locator('#msg-list .msg.theirs.media-3').last
    expect(voice.locator('.voice-len')).to_have_text(re.compile(r'^[12]″$'))
    expect(voice.locator('audio')).to_have_attribute('src', re.compile(r'^/'))
    expect(pa.locator('#msg-list .msg.mine.media-3').last).to_have_attribute('data-state', DELIVERED)
    # The recording plays (chromium decodes what it recorded; the fake tone is ~1 s).
    voice.locator('.voice-play').click()
    expect(voice.locator('.voice-play')).to_have_class(re.compile(r'\bplaying\b'))
    pb.wait_for_function('a => a.currentTime > 0.2', arg=voice.locator('audio').element_handle())
    shot(pb, 'image-and-voice')
    assert pa.errors == [] and pb.errors == []


@pytest.fixture
def oss_process():
    """The test OSS server (tests/oss_server.py) in a process of its own."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'tests', 'oss_server.py'),
                             str(port), 'browser-key', 'browser-secret', 'chat'])
    origin = 'http://127.0.0.1:{}'.format(port)

    def listening():
        assert proc.poll() is None, 'the OSS server exited'
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(listening, 20, 'the OSS server listening')
    yield origin
    proc.terminate()
    proc.wait(10)


def test_images_kept_in_oss_show_inline(people, tmp_path, oss_process):
    srv = ServerProcess(str(tmp_path))
    srv.env.update(IMCHAT_STORAGE='oss', IMCHAT_OSS_ENDPOINT=oss_process,
                   IMCHAT_OSS_BUCKET='chat', IMCHAT_OSS_ACCESS_KEY_ID='browser-key',
                   IMCHAT_OSS_ACCESS_KEY_SECRET='browser-secret')
    srv.start()
    try:
        a = srv.register(new_mobile(), 'Alice')
        b = srv.register(new_mobile(), 'Bob')
        assert srv.call('/contact/addfriend', a['token'], dstid=b['id'])[0] == 200
        pa = people('en-US', srv=srv, media_origin=oss_process)
        pb = people('en-US', srv=srv, media_origin=oss_process)
        login_in_browser(pa, a['mobile'])
        login_in_browser(pb, b['mobile'])
        open_friend_chat(pa, b['id'])
        open_friend_chat(pb, a['id'])
        image = tmp_path / 'photo.png'
        image.write_bytes(PNG)
        pa.set_input_files('#image-input', str(image))
        received = pb.locator('#msg-list .msg.theirs.media-4 img.msg-image')
        expect(received).to_have_count(1)
        expect(received).to_have_attribute('src', re.compile(
            '^' + re.escape(oss_process + '/chat/mnt/')))
        expect(received).to_have_js_property('naturalWidth', 320)  # loaded from the bucket
        # Any other outside address is still only a link, never loaded by the page.
        ws = srv.socket(a)
        send_and_ack(ws, {'id': 1, 'cmd': 10, 'dstid': b['id'], 'media': 4,
                          'url': 'http://127.0.0.2:9/elsewhere.png'})
        ws.close()
        expect(pb.locator('#msg-list .msg.theirs.media-4')).to_have_count(2)
        expect(pb.locator('#msg-list .msg.theirs.media-4').last.locator('img')).to_have_count(0)
        assert pa.errors == [] and pb.errors == []
    finally:
        srv.stop()


def test_every_media_type_renders_and_history_scrolls_back(people, server):
    a = server.register(new_mobile(), 'Media Sender')
    b = server.register(new_mobile(), 'Reader')
    server.call('/contact/addfriend', a['token'], dstid=b['id'])
    pic = server.upload_png(a['token'])
    assert server.call('/user/update', a['token'], avatar=pic)[0] == 200
    ws = server.socket(a)
    try:
        for i in range(35):
            ws.send(json.dumps({'id': i, 'cmd': 10, 'dstid': b['id'], 'media': 1,
                                'content': 'old message {}'.format(i)}))
        frames = [
            {'media': 100, 'content': '{"game":"chess","move":"e4"}'},
            {'media': 7, 'url': 'https://example.org/a.html'},
            {'media': 8, 'url': 'https://example.org/a.mp4', 'pic': pic},
            {'media': 9, 'content': str(a['id']), 'pic': pic, 'memo': 'Media Sender'},
            {'media': 2, 'content': 'Release 1.0 is out', 'pic': pic,
             'url': 'https://example.org/news', 'memo': 'What is new in imchat'},
            {'media': 5, 'url': '/redpacket?id=1', 'amount': 888, 'memo': '恭喜发财'},
            {'media': 3, 'url': pic, 'amount': 7},
            {'media': 1, 'content': '周末去爬山吗？照片在这里 👇'},
            {'media': 4, 'url': pic},
            {'media': 6, 'content': 'cry'},
        ]
        for i, frame in enumerate(frames):
            ws.send(json.dumps(dict(frame, id=100 + i, cmd=10, dstid=b['id'])))
        acks = 0
        while acks < 35 + len(frames):
            reply = json.loads(ws.recv())
            if reply.get('cmd') == 1:
                assert reply['code'] == 0, reply
                acks += 1
    finally:
        ws.close()
    # The reader's phone gets all 44 live, so a new browser does not: it shows them
    # from history, a page at a time.
    phone = server.socket(b)
    try:
        received = [json.loads(phone.recv()) for _ in range(35 + len(frames))]
        assert [m['media'] for m in received[35:]] == [f['media'] for f in frames]
    finally:
        phone.close()

    page = people('zh-CN', DESKTOP)
    login_in_browser(page, b['mobile'])
    # Read on no device yet: all 45 are unread, in the Chats list as on the server.
    expect(page.locator('#chat-list [data-conv="10:{}"] .badge'.format(a['id']))).to_have_text('45')
    open_friend_chat(page, a['id'])
    send_text(page, '好啊，我也去！')
    expect(page.locator('#msg-list .msg.mine').last).to_have_attribute('data-state', 'sent')
    msgs = page.locator('#msg-list .msg')
    expect(page.locator('.media-2 .card-title')).to_have_text('Release 1.0 is out')
    expect(page.locator('.media-2 a')).to_have_attribute('href', 'https://example.org/news')
    expect(page.locator('.media-2 a')).to_have_attribute('target', '_blank')
    expect(page.locator('.media-5 .rp-amount')).to_have_text('¥8.88')
    expect(page.locator('.media-5 .card-title')).to_have_text('恭喜发财')
    expect(page.locator('.media-6 .bubble')).to_have_text('😭')
    expect(page.locator('.media-7 a')).to_have_text('https://example.org/a.html')
    # A video from elsewhere is a link, never loaded; one of ours would play inline.
    expect(page.locator('.media-8 video')).to_have_count(0)
    expect(page.locator('.media-8 a')).to_have_attribute('href', 'https://example.org/a.mp4')
    expect(page.locator('.media-9 .card-title')).to_have_text('Media Sender')
    expect(page.locator('.media-100 .fallback-body')).to_have_text('{"game":"chess","move":"e4"}')
    expect(page.locator('.media-3 .voice-len')).to_have_text('7″')
    expect(page.locator('.media-4 img.msg-image')).to_have_attribute('src', pic)
    expect(page.locator('.media-4 img.msg-image')).to_have_js_property('naturalWidth', 320)
    shot(page, 'media-types')
    page.locator('#msg-list .media-100').evaluate(
        'el => { const box = document.getElementById("messages");'
        ' box.scrollTop = el.offsetTop - box.offsetTop - 8; }')
    shot(page, 'media-cards')

    # The newest page of history is 30 messages: scrolling up fetches the rest, once.
    expect(msgs).to_have_count(31)
    page.locator('#messages').evaluate('el => { el.scrollTop = 0; }')
    expect(msgs).to_have_count(46)
    for i in (0, 20, 34):
        expect(bubbles(page, 'old message {}'.format(i))).to_have_count(1)
    ids = [int(x) for x in page.locator('#msg-list .msg').evaluate_all(
        'els => els.map(e => e.dataset.msgid)')]
    assert ids == sorted(ids) and len(set(ids)) == 46
    expect(page.locator('#history-note')).to_have_text('没有更早的消息了')
    assert page.errors == []


def test_a_message_sent_while_offline_shows_at_login(people, server):
    a = server.register(new_mobile(), 'Early Bird')
    b = server.register(new_mobile(), 'Late Riser')
    server.call('/contact/addfriend', a['token'], dstid=b['id'])
    pa = people('en-US')
    login_in_browser(pa, a['mobile'])
    open_friend_chat(pa, b['id'])
    send_text(pa, 'are you up?')
    expect(pa.locator('#msg-list .msg.mine').last).to_have_attribute('data-state', 'sent')

    pb = people('en-US')
    login_in_browser(pb, b['mobile'])
    pb.click('.tabbar .tab[data-tab=friends]')
    early_bird = pb.locator('#friend-list [data-conv="10:{}"]'.format(a['id']))
    expect(early_bird.locator('.badge')).to_have_text('1')
    expect(early_bird.locator('.list-sub')).to_have_text('are you up?')
    open_friend_chat(pb, a['id'])
    expect(bubbles(pb, 'are you up?')).to_have_count(1)


def friends_in_conversation(own, people):
    """Ada and Bo, friends on server `own`, each with their conversation open."""
    a = own.register(new_mobile(), 'Ada')
    b = own.register(new_mobile(), 'Bo')
    own.call('/contact/addfriend', a['token'], dstid=b['id'])
    pa, pb = people('en-US', srv=own), people('en-US', srv=own)
    login_in_browser(pa, a['mobile'])
    login_in_browser(pb, b['mobile'])
    open_friend_chat(pa, b['id'])
    open_friend_chat(pb, a['id'])
    return a, b, pa, pb


def test_reconnects_after_the_server_restarts_without_duplicates(people, tmp_path):
    own = ServerProcess(str(tmp_path)).start()
    try:
        a, b, pa, pb = friends_in_conversation(own, people)
        send_text(pa, 'before the restart')
        expect(bubbles(pb, 'before the restart')).to_have_count(1)

        own.stop()
        expect(pb.locator('#conn-banner')).to_be_visible()
        expect(pb.locator('#conn-banner')).to_contain_text('reconnecting')
        shot(pb, 'reconnecting')
        # Written while the server is away: it waits, shown as sending, and goes out
        # on the new connection.
        send_text(pa, 'typed while offline')
        queued = pa.locator('#msg-list .msg.mine').last
        expect(queued).to_have_attribute('data-state', 'sending')
        expect(queued.locator('.msg-state')).to_have_text('Sending…')
        own.start()
        # A message stored while Bo's page is still away: he fetches it on reconnect.
        ws = own.socket(a)
        ack = send_and_ack(ws, {'id': 1, 'cmd': 10, 'dstid': b['id'], 'media': 1,
                                'content': 'while you were away'})
        assert ack['code'] == 0, ack
        ws.close()
        expect(pa.locator('#app')).to_have_attribute('data-conn', 'open', timeout=30000)
        expect(pb.locator('#app')).to_have_attribute('data-conn', 'open', timeout=30000)
        expect(pb.locator('#conn-banner')).to_be_hidden()
        send_text(pa, 'after the restart')
        expect(bubbles(pb, 'after the restart')).to_have_count(1)
        expect(bubbles(pb, 'while you were away')).to_have_count(1)
        expect(bubbles(pb, 'before the restart')).to_have_count(1)
        # Ada sees her own socket message too (another device of hers), once.
        expect(bubbles(pa, 'while you were away')).to_have_count(1)
        expect(bubbles(pa, 'after the restart')).to_have_count(1)
        expect(bubbles(pa, 'before the restart')).to_have_count(1)
        expect(queued).to_have_attribute('data-state', DELIVERED)
        expect(bubbles(pb, 'typed while offline')).to_have_count(1)
        assert pa.locator('#msg-list .msg[data-state=sent], #msg-list .msg[data-state=read]').count() == 4
    except Exception:
        print(own.log())
        raise
    finally:
        own.stop()


def test_a_message_caught_in_a_dropped_connection_goes_again_and_arrives_once(people,
                                                                              tmp_path):
    own = ServerProcess(str(tmp_path)).start()
    try:
        a, b, pa, pb = friends_in_conversation(own, people)
        # Frozen, the server reads nothing: the frame goes out on an open socket and no
        # acknowledgement comes back. Then the server dies without reading it.
        own.process.send_signal(signal.SIGSTOP)
        send_text(pa, 'caught in the drop')
        caught = pa.locator('#msg-list .msg.mine').last
        expect(caught).to_have_attribute('data-state', 'sending')
        pa.wait_for_timeout(300)
        own.kill()
        expect(pa.locator('#app')).to_have_attribute('data-conn', 'closed')
        expect(caught).to_have_attribute('data-state', 'sending')
        own.start()
        expect(caught).to_have_attribute('data-state', DELIVERED, timeout=30000)
        expect(bubbles(pb, 'caught in the drop')).to_have_count(1, timeout=30000)
        expect(bubbles(pa, 'caught in the drop')).to_have_count(1)
        assert pa.errors == [] and pb.errors == []
    except Exception:
        print(own.log())
        raise
    finally:
        own.stop()


def test_a_refused_message_shows_why(people, server):
    a, b, pa, pb = befriend_and_connect(server, people, 'en-US')
    open_friend_chat(pa, b['id'])
    # Past the 4000-character limit (the textarea's maxlength does not bind a script).
    pa.locator('#text-input').evaluate('el => { el.value = "x".repeat(4100); }')
    pa.click('#send-btn')
    failed = pa.locator('#msg-list .msg.mine').last
    expect(failed).to_have_attribute('data-state', 'failed')
    expect(failed.locator('.msg-state')).to_contain_text('Not sent: content is too long')
    shot(pa, 'refused')


def test_what_users_type_stays_text(people, server):
    evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    a = server.register(new_mobile(), '<b>Mallory</b>')
    b = server.register(new_mobile(), 'Victim')
    server.call('/contact/addfriend', a['token'], dstid=b['id'])
    status, body = server.call('/contact/createcommunity', a['token'], name='<i>grp</i>')
    group_id = body['data']['id']
    server.call('/contact/joincommunity', b['token'], dstid=group_id)
    pa, pb = people('en-US'), people('en-US')
    login_in_browser(pa, a['mobile'])
    login_in_browser(pb, b['mobile'])
    open_friend_chat(pa, b['id'])
    send_text(pa, evil)
    ws = server.socket(a)
    ack = send_and_ack(ws, {'id': 1, 'cmd': 11, 'dstid': group_id, 'media': 100, 'content': evil})
    assert ack['code'] == 0, ack
    ws.close()

    expect(pb.locator('#friend-list')).to_contain_text('<b>Mallory</b>')
    open_friend_chat(pb, a['id'])
    expect(pb.locator('#convo-title')).to_have_text('<b>Mallory</b>')
    expect(bubbles(pb, evil)).to_have_count(1)
    open_group_chat(pb, group_id)
    expect(pb.locator('#group-list')).to_contain_text('<i>grp</i>')
    expect(pb.locator('#convo-title')).to_have_text('<i>grp</i>')
    expect(pb.locator('.media-100 .fallback-body')).to_have_text(evil)
    expect(pb.locator('#msg-list img:not(.msg-image)')).to_have_count(0)
    markup = '#msg-list script, #msg-list b, #friend-list b, #group-list i'
    expect(pb.locator(markup)).to_have_count(0)
    assert pb.evaluate('window.__pwned') is None
    assert pa.evaluate('window.__pwned') is None
    shot(pb, 'xss-stays-text')


def test_me_tab_renames_changes_avatar_and_logout_ends_the_token(people, server, tmp_path):
    user = server.register(new_mobile(), 'Before')
    page = people('zh-CN', DESKTOP)
    login_in_browser(page, user['mobile'])
    token = page.evaluate('JSON.parse(localStorage.getItem("imchat.session")).token')
    page.click('.tabbar .tab[data-tab=me]')
    expect(page.locator('#me-name')).to_have_text('Before')
    page.fill('#nickname-form input[name=nickname]', 'After')
    page.click('#nickname-form button[type=submit]')
    expect(page.locator('#me-name')).to_have_text('After')
    avatar = tmp_path / 'me.png'
    avatar.write_bytes(PNG)
    page.set_input_files('#avatar-input', str(avatar))
    expect(page.locator('#me-avatar img')).to_have_attribute('src', re.compile(r'^/'))
    expect(page.locator('#me-avatar img')).to_have_js_property('naturalWidth', 320)
    assert server.call('/user/find', token)[1]['data']['avatar'].startswith('/')
    page.click('#tab-me .lang-switch')
    expect(page.locator('#logout-btn')).to_have_text('Log out')
    shot(page, 'me')
    page.click('#logout-btn')
    page.wait_for_url('**/user/login.shtml')
    assert page.evaluate('localStorage.getItem("imchat.session")') is None
    status, body = server.call('/user/find', token)
    assert status == 401, body
    # The chat page without a session goes to login.
    page.goto('/chat/index.shtml')
    page.wait_for_url('**/user/login.shtml')


def test_a_session_ended_elsewhere_goes_back_to_login(people, server):
    """Logging out elsewhere closes this page's socket (4401), and the page goes back to
    login by itself; a page opened later with the stale token goes there too. (The test
    once reloaded at once after the logout, racing the page's own navigation to login:
    `Page.reload: net::ERR_ABORTED`. Now each navigation is the page's own.)"""
    user = server.register(new_mobile(), 'Elsewhere')
    page = people('en-US')
    login_in_browser(page, user['mobile'])
    stale = page.evaluate('localStorage.getItem("imchat.session")')
    token = json.loads(stale)['token']
    assert server.call('/user/logout', token)[0] == 200
    page.wait_for_url('**/user/login.shtml?expired=1')
    expect(page.locator('.form-error')).to_have_text('Your session has ended, please log in again')
    assert page.evaluate('localStorage.getItem("imchat.session")') is None
    # The stale login kept in the browser: opening the chat checks it first.
    page.evaluate('session => localStorage.setItem("imchat.session", session)', stale)
    page.goto('/chat/index.shtml')
    page.wait_for_url('**/user/login.shtml?expired=1')
    expect(page.locator('.form-error')).to_have_text('Your session has ended, please log in again')
    assert page.evaluate('localStorage.getItem("imchat.session")') is None
    assert page.errors == []
