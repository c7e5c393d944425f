"""Notifications and the installable app in a real Chromium (issue 21, docs/push.md):
the manifest and the service worker make the app installable, a push delivered to the
service worker through the DevTools protocol shows a notification that opens its
conversation, the unread badge on the favicon and the title, the page's visibility
told to the server, and the Notifications switch's states. A real push service cannot
be reached from here: the server's side is tested in test_push.py."""
import json
import time

import pytest

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    CHROMIUM, CHROMIUM_ARGS, ServerProcess, WAIT_MS, browser, expect, login_in_browser, new_mobile, people, server)


@pytest.fixture(scope='module')
def push_server(tmp_path_factory):
    proc = ServerProcess(str(tmp_path_factory.mktemp('push-server')))
    proc.env['IMCHAT_VAPID_SUBJECT'] = 'mailto:ops@example.com'
    proc.start()
    yield proc
    proc.stop()
    print(proc.log())


def friends(srv):
    a = srv.register(new_mobile(), 'Alice')
    b = srv.register(new_mobile(), 'Bob')
    assert srv.call('/contact/addfriend', a['token'], dstid=b['id'])[0] == 200
    return a, b


def wait_until(page, read, what, seconds=WAIT_MS / 1000):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        # Playwright's sync API takes in events (CDP's among them) only inside its calls.
        page.wait_for_timeout(100)
    raise AssertionError('{} did not happen within {}s'.format(what, seconds))


def service_worker_ready(page):
    return page.evaluate('navigator.serviceWorker.ready.then(r => r.active.scriptURL)')


NOTIFICATIONS = '''navigator.serviceWorker.ready.then(r => r.getNotifications()).then(
  ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data})))'''


def test_the_app_is_installable(browser, push_server, tmp_path):
    a, _ = friends(push_server)
    # A profile of its own: Chromium offers no install in an incognito context (which
    # Playwright's contexts are), and would say only that.
    context = browser.browser_type.launch_persistent_context(
        str(tmp_path / 'profile'), executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS, base_url=push_server.base, locale='en-US')
    try:
        context.set_default_timeout(WAIT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        page.errors = []
        page.on('pageerror', lambda error: page.errors.append(str(error)))
        check_installable(page, a)
    finally:
        context.close()


def check_installable(page, a):
    login_in_browser(page, a['mobile'])
    assert service_worker_ready(page).endswith('/sw.js')
    manifest = page.evaluate('''fetch(document.querySelector('link[rel=manifest]').href)
      .then(r => r.json())''')
    assert manifest['display'] == 'standalone' and manifest['start_url'] == '/chat/index.shtml'
    sizes = page.evaluate('''(icons) => Promise.all(icons.map(i => new Promise((ok, no) => {
      const image = new Image(); image.onload = () => ok(image.naturalWidth + 'x' +
      image.naturalHeight); image.onerror = no; image.src = i.src; })))''', manifest['icons'])
    assert sizes == ['192x192', '512x512']
    # Chromium's own verdict (manifest fields, icons, a service worker that handles
    # fetch): what makes it offer to install.
    cdp = page.context.new_cdp_session(page)
    errors = wait_until(page, lambda: cdp.send('Page.getInstallabilityErrors'), 'an answer')
    assert errors['installabilityErrors'] == [], errors
    assert page.errors == []


def test_a_push_shows_a_notification_and_a_click_opens_the_conversation(people, push_server):
    a, b = friends(push_server)
    page = people('en-US', srv=push_server)
    page.context.grant_permissions(['notifications'], origin=push_server.base)
    login_in_browser(page, b['mobile'])
    service_worker_ready(page)
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on('ServiceWorker.workerRegistrationUpdated',
           lambda event: registrations.extend(event['registrations']))
    cdp.send('ServiceWorker.enable')
    registration = wait_until(page, lambda: next((r for r in registrations if not r['isDeleted']),
                                           None), 'the registration')
    payload = {'kind': 'message', 'target': 10, 'dstid': a['id'], 'msgid': 7, 'media': 1,
               'from': {'id': a['id'], 'nickname': 'Alice', 'avatar': ''},
               'text': 'are you there?', 'count': 1}
    cdp.send('ServiceWorker.deliverPushMessage', {
        'origin': push_server.base + '/', 'registrationId': registration['registrationId'],
        'data': json.dumps(payload)})
    shown = wait_until(page, lambda: page.evaluate(NOTIFICATIONS), 'a notification')
    assert shown == [{'title': 'Alice', 'body': 'are you there?',
                      'tag': '10-{}'.format(a['id']).join(['c', '']),
                      'data': {'target': 10, 'dstid': a['id'], 'msgid': 7}}]
    # A second push for the same conversation replaces it (one per conversation).
    cdp.send('ServiceWorker.deliverPushMessage', {
        'origin': push_server.base + '/', 'registrationId': registration['registrationId'],
        'data': json.dumps(dict(payload, msgid=9, text='hello?', count=2))})
    wait_until(page, lambda: [n['body'] for n in page.evaluate(NOTIFICATIONS)] ==
               ['2 new messages: hello?'], 'the merged notification')

    # The click, dispatched in the service worker: the open page shows the conversation.
    worker = wait_until(page, lambda: page.context.service_workers, 'the worker')[0]
    worker.evaluate('''self.registration.getNotifications().then(ns => self.dispatchEvent(
      new NotificationEvent('notificationclick', {notification: ns[0]})))''')
    expect(page.locator('#convo')).to_be_visible()
    expect(page.locator('#convo-title')).to_contain_text('Alice')
    wait_until(page, lambda: page.evaluate(NOTIFICATIONS) == [], 'the notification closed')

    # A "read" push closes the notification of that conversation.
    cdp.send('ServiceWorker.deliverPushMessage', {
        'origin': push_server.base + '/', 'registrationId': registration['registrationId'],
        'data': json.dumps(dict(payload, msgid=11))})
    wait_until(page, lambda: page.evaluate(NOTIFICATIONS), 'a notification')
    cdp.send('ServiceWorker.deliverPushMessage', {
        'origin': push_server.base + '/', 'registrationId': registration['registrationId'],
        'data': json.dumps({'kind': 'read', 'target': 10, 'dstid': a['id'], 'msgid': 11})})
    wait_until(page, lambda: page.evaluate(NOTIFICATIONS) == [], 'the notification closed by a read')
    assert page.errors == []


HIDE = '''() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}'''


def test_while_hidden_the_server_is_told_and_favicon_and_title_carry_the_unread(
        people, push_server):
    a, b = friends(push_server)
    page = people('en-US', srv=push_server)
    sent = []
    page.on('websocket', lambda ws: ws.on('framesent', lambda frame: sent.append(
        json.loads(frame)) if isinstance(frame, str) else None))
    login_in_browser(page, b['mobile'])
    wait_until(page, lambda: {'cmd': 20, 'visible': 1} in [
        {k: f.get(k) for k in ('cmd', 'visible')} for f in sent], 'visible told')
    page.evaluate(HIDE)
    wait_until(page, lambda: {'cmd': 20, 'visible': 0} in [
        {k: f.get(k) for k in ('cmd', 'visible')} for f in sent], 'hidden told')
    ws = push_server.socket(a)
    try:
        for text in ('one', 'two'):
            ws.send(json.dumps({'cmd': 10, 'id': text, 'dstid': b['id'], 'media': 1,
                                'content': text}))
        expect(page).to_have_title('(2) imchat')
        icon = page.locator('link[rel=icon]')
        expect(icon).to_have_attribute('data-badge', '2')
        assert icon.get_attribute('href').startswith('data:image/png')
    finally:
        ws.close()
    assert page.errors == []


def open_me(page):
    page.click('.tabbar .tab[data-tab=me]')
    expect(page.locator('#notify-switch')).to_be_visible()


def test_the_notifications_switch_says_what_it_can(people, push_server, server):
    # A server without a VAPID subject: off there, said so.
    a, _ = friends(server)
    page = people('en-US')
    login_in_browser(page, a['mobile'])
    open_me(page)
    expect(page.locator('#notify-status')).to_have_attribute('data-state', 'server_off')
    expect(page.locator('#notify-switch')).to_be_disabled()

    # A browser without the Push API.
    a, _ = friends(push_server)
    page = people('en-US', srv=push_server)
    page.add_init_script('delete window.PushManager')
    login_in_browser(page, a['mobile'])
    open_me(page)
    expect(page.locator('#notify-status')).to_have_attribute('data-state', 'unsupported')
    expect(page.locator('#notify-switch')).to_be_disabled()

    # Headless Chromium blocks notifications unless they are granted: said so.
    page = people('en-US', srv=push_server)
    login_in_browser(page, a['mobile'])
    open_me(page)
    expect(page.locator('#notify-status')).to_have_attribute('data-state', 'denied')

    # Granted but not subscribed: off, and nothing asked on load; turning it on asks
    # once, then subscribes, which needs the browser vendor's push service, out of
    # reach here: the failure is said, and the switch goes back off.
    page = people('en-US', srv=push_server)
    page.context.grant_permissions(['notifications'], origin=push_server.base)
    page.add_init_script('''window.askedPermission = 0;
      const ask = Notification.requestPermission.bind(Notification);
      Notification.requestPermission = () => { window.askedPermission++; return ask(); };''')
    login_in_browser(page, a['mobile'])
    open_me(page)
    expect(page.locator('#notify-status')).to_have_attribute('data-state', 'off')
    expect(page.locator('#notify-switch')).not_to_be_checked()
    assert page.evaluate('window.askedPermission') == 0
    page.click('#notify-switch')
    expect(page.locator('#notify-status')).to_have_attribute('data-state', 'failed')
    expect(page.locator('#notify-switch')).not_to_be_checked()
    expect(page.locator('#notify-switch')).to_be_enabled()
    assert page.evaluate('window.askedPermission') == 1
    print(page.locator('#notify-status').text_content())


def registered_worker(page):
    """The service worker's registration as the DevTools protocol knows it, and its
    session (to deliver pushes through)."""
    service_worker_ready(page)
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on('ServiceWorker.workerRegistrationUpdated',
           lambda event: registrations.extend(event['registrations']))
    cdp.send('ServiceWorker.enable')
    registration = wait_until(page, lambda: next((r for r in registrations if not r['isDeleted']),
                                           None), 'the registration')
    return cdp, registration


def test_reading_a_conversation_here_closes_its_notifications(people, push_server):
    a, b = friends(push_server)
    page = people('en-US', srv=push_server)
    page.context.grant_permissions(['notifications'], origin=push_server.base)
    login_in_browser(page, b['mobile'])
    ws = push_server.socket(a)
    try:
        ws.send(json.dumps({'cmd': 10, 'id': 'x', 'dstid': b['id'], 'media': 1,
                            'content': 'are you there?'}))
        row = page.locator('#chat-list li', has_text='Alice')
        expect(row).to_be_visible()
    finally:
        ws.close()
    cdp, registration = registered_worker(page)
    cdp.send('ServiceWorker.deliverPushMessage', {
        'origin': push_server.base + '/', 'registrationId': registration['registrationId'],
        'data': json.dumps({'kind': 'message', 'target': 10, 'dstid': a['id'], 'msgid': 7,
                            'media': 1, 'from': {'id': a['id'], 'nickname': 'Alice',
                                                 'avatar': ''},
                            'text': 'are you there?', 'count': 1})})
    wait_until(page, lambda: page.evaluate(NOTIFICATIONS), 'a notification')
    # No read push comes from the server: the page itself closes what it has read.
    row.click()
    expect(page.locator('#convo-title')).to_contain_text('Alice')
    wait_until(page, lambda: page.evaluate(NOTIFICATIONS) == [], 'the notification closed')
    assert page.errors == []


COUNT_CHIMES = '''() => {
  window.chimes = 0;
  const Real = window.AudioContext;
  window.AudioContext = function () {
    const context = new Real();
    const make = context.createOscillator.bind(context);
    context.createOscillator = () => {
      const tone = make();
      const start = tone.start.bind(tone);
      tone.start = (...args) => { window.chimes += 1; return start(...args); };
      return tone;
    };
    return context;
  };
}'''


def test_a_sound_while_hidden_only_once_turned_on(people, push_server):
    a, b = friends(push_server)
    page = people('en-US', srv=push_server)
    page.add_init_script('(' + COUNT_CHIMES + ')()')
    login_in_browser(page, b['mobile'])
    open_me(page)
    sound = page.locator('#sound-switch')
    expect(sound).not_to_be_checked()
    ws = push_server.socket(a)
    try:
        page.evaluate(HIDE)
        ws.send(json.dumps({'cmd': 10, 'id': 'one', 'dstid': b['id'], 'media': 1,
                            'content': 'one'}))
        expect(page).to_have_title('(1) imchat')
        assert page.evaluate('window.chimes') == 0  # off by default
        page.evaluate(SHOW)
        sound.check()
        page.evaluate(HIDE)
        ws.send(json.dumps({'cmd': 10, 'id': 'two', 'dstid': b['id'], 'media': 1,
                            'content': 'two'}))
        expect(page).to_have_title('(2) imchat')
        wait_until(page, lambda: page.evaluate('window.chimes') == 1, 'one chime')
    finally:
        ws.close()
    page.reload()
    open_me(page)
    expect(page.locator('#sound-switch')).to_be_checked()  # remembered
    assert page.errors == []


SHOW = '''() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
  document.dispatchEvent(new Event('visibilitychange'));
}'''
