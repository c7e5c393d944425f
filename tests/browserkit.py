"""What the browser tests share: Playwright driving Debian's chromium, headless.

The server runs as a real process (`python wsgi.py` on a free port, SQLite in a temp
folder), so the browser talks to exactly what a user gets, and "the server restarts"
is a real restart. People are separate browser contexts (separate localStorage).
Screenshots of the main screens land in tests/artifacts/.

Without chromium or Playwright these tests are skipped, except under CI=true, where
they fail: tests/run.sh installs chromium when it can.
"""
import json
import math
import os
import re
import struct
import subprocess
import zlib

import pytest
import websocket

from tests import harness
from tests.harness import ROOT, free_port  # noqa: F401  (the browser tests use them)

ARTIFACTS = os.path.join(ROOT, 'tests', 'artifacts')
CHROMIUM = os.environ.get('IMCHAT_TEST_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run',
                 '--disable-quic',
                 # A fake microphone, granted without a prompt, for the voice note.
                 '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream']
PHONE = {'width': 390, 'height': 780}
DESKTOP = {'width': 1100, 'height': 720}
# Generous: the suite shares two cores with chromium and the server process.
WAIT_MS = 20000
# Acknowledged: "sent", or already "read" when the friend has the conversation open.
DELIVERED = re.compile(r'^(sent|read)$')


def make_png(width=320, height=200, noise=False):
    """A real picture (sky, sun and hills), so the screenshots show what a person
    would see; the server stores it and the browser decodes it. `noise` makes it
    random pixels instead, which do not compress: a big file for a slow upload."""
    rows = []
    if noise:
        rows = [b'\x00' + os.urandom(width * 3) for _ in range(height)]
    for y in range(0 if noise else height):
        row = bytearray(b'\x00')
        for x in range(width):
            hill = height * 0.62 + 18 * math.sin(x / 37.0) + 10 * math.sin(x / 13.0 + 1)
            if (x - width * 0.72) ** 2 + (y - height * 0.3) ** 2 < (height * 0.12) ** 2:
                pixel = (255, 210, 70)
            elif y > hill:
                shade = int(40 * (y - hill) / height)
                pixel = (60 - shade // 2, 160 - shade, 90 - shade // 2)
            else:
                pixel = (110 + y * 100 // height, 170 + y * 60 // height, 235)
            row.extend(pixel)
        rows.append(bytes(row))

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
    return (b'\x89PNG\r\n\x1a\n' +
            chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) +
            chunk(b'IDAT', zlib.compress(b''.join(rows), 9)) + chunk(b'IEND', b''))


PNG = make_png()


def _missing_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'Playwright is not installed (pip install -r requirements-dev.txt)'
    if not os.path.exists(CHROMIUM):
        return 'chromium is not at {} (apt-get install chromium)'.format(CHROMIUM)
    return None


_missing = _missing_browser()
if _missing:
    if os.environ.get('CI') == 'true':
        raise RuntimeError('browser tests cannot run under CI: ' + _missing)
    pytest.skip(_missing, allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

expect.set_options(timeout=WAIT_MS)


class ServerProcess(harness.ServerProcess):
    """`python wsgi.py` with its own SQLite file and upload folder, set for people who
    all come from 127.0.0.1; restartable on the same port and database. `start()` waits
    until it answers."""

    def __init__(self, folder, **settings):
        super().__init__(
            folder, IMCHAT_LOG_LEVEL='WARNING', IMCHAT_LOGIN_ATTEMPTS=1000,
            # Every person here registers and logs in from 127.0.0.1, dozens a minute.
            IMCHAT_LOGIN_RATE=0, IMCHAT_REGISTER_RATE=0,
            # A friend who leaves shows offline after 1 s rather than the default 5.
            IMCHAT_PRESENCE_GRACE=1, **settings)
        self.base = self.url

    # The HTTP API, for the set-up that is not under test.
    def call(self, path, token=None, **fields):
        return self.api.post(path, fields, token)

    def register(self, mobile, nickname, passwd='secret-pass'):
        return self.api.register(mobile, passwd, nickname=nickname)

    def upload_png(self, token):
        boundary = 'imchat-test-boundary'
        body = ('--{b}\r\nContent-Disposition: form-data; name="file"; filename="dot.png"\r\n'
                'Content-Type: image/png\r\n\r\n').format(b=boundary).encode() + PNG + \
            '\r\n--{b}--\r\n'.format(b=boundary).encode()
        status, reply = harness.http(self.url + '/attach/upload', body, {
            'Content-Type': 'multipart/form-data; boundary=' + boundary}, token=token)
        assert status == 200, reply
        return reply['data']

    def socket(self, user):
        return websocket.create_connection(self.ws_url(user), timeout=5)


def send_and_ack(ws, frame):
    """Send a frame on a test socket; return its acknowledgement (skipping messages)."""
    ws.send(json.dumps(frame))
    while True:
        reply = json.loads(ws.recv())
        if reply.get('cmd') == 1 and reply.get('id') == frame['id']:
            return reply


_mobiles = iter(range(13900000000, 13999999999))


def new_mobile():
    return str(next(_mobiles))


@pytest.fixture(scope='module')
def browser():
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp('browser-server')).start()
    yield proc
    proc.stop()
    print(proc.log()[-4000:])  # shown with a failure's report


@pytest.fixture
def people(browser, server):
    """Open a person's browser: people(locale='zh-CN', viewport=PHONE) -> Page."""
    contexts = []
    elsewhere = []

    def open_person(locale='zh-CN', viewport=None, srv=None, media_origin=None,
                    color_scheme='light', permissions=()):
        base = (srv or server).base
        allowed = (base + '/', 'data:', 'blob:') + ((media_origin + '/',) if media_origin else ())
        context = browser.new_context(base_url=base, locale=locale,
                                      viewport=viewport or PHONE, color_scheme=color_scheme,
                                      permissions=['microphone'] + list(permissions))
        context.set_default_timeout(WAIT_MS)
        # Nothing may be fetched from outside the app (messages carry outside URLs).
        context.on('request', lambda request: None if request.url.startswith(
            allowed) else elsewhere.append(request.url))
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on('pageerror', lambda error: page.errors.append(str(error)))
        return page

    yield open_person
    for context in contexts:
        context.close()
    assert elsewhere == [], 'fetched from outside the app: {}'.format(elsewhere)


def shot(page, name):
    page.screenshot(path=os.path.join(ARTIFACTS, name + '.png'))


def register_in_browser(page, mobile, nickname, passwd='secret-pass'):
    page.goto('/user/register.shtml')
    page.fill('input[name=mobile]', mobile)
    page.fill('input[name=nickname]', nickname)
    page.fill('input[name=passwd]', passwd)
    page.click('button[type=submit]')
    page.wait_for_url('**/chat/index.shtml')
    expect(page.locator('#app')).to_have_attribute('data-conn', 'open')


def login_in_browser(page, mobile, passwd='secret-pass'):
    page.goto('/user/login.shtml')
    page.fill('input[name=mobile]', mobile)
    page.fill('input[name=passwd]', passwd)
    page.click('button[type=submit]')
    page.wait_for_url('**/chat/index.shtml')
    expect(page.locator('#app')).to_have_attribute('data-conn', 'open')


def back_to_lists(page):
    # On a phone the conversation covers the lists; on a desktop both show.
    if page.locator('#back-btn').is_visible():
        page.click('#back-btn')


def open_friend_chat(page, friend_id):
    back_to_lists(page)
    page.click('.tabbar .tab[data-tab=friends]')
    page.click('#friend-list [data-conv="10:{}"]'.format(friend_id))
    expect(page.locator('#convo')).to_be_visible()


def open_group_chat(page, group_id):
    back_to_lists(page)
    page.click('.tabbar .tab[data-tab=groups]')
    page.click('#group-list [data-conv="11:{}"]'.format(group_id))
    expect(page.locator('#convo')).to_be_visible()


def send_text(page, text):
    page.fill('#text-input', text)
    page.press('#text-input', 'Enter')


def bubbles(page, text):
    return page.locator('#msg-list .msg .bubble', has_text=text)


def my_id(page):
    return page.evaluate('JSON.parse(localStorage.getItem("imchat.session")).user.id')


def befriend_and_connect(server, people, locale='zh-CN'):
    """Two users who are friends, each logged in in a browser; returns (a, b, pa, pb)."""
    a = server.register(new_mobile(), 'Alice')
    b = server.register(new_mobile(), 'Bob')
    assert server.call('/contact/addfriend', a['token'], dstid=b['id'])[0] == 200
    pa, pb = people(locale), people(locale)
    login_in_browser(pa, a['mobile'])
    login_in_browser(pb, b['mobile'])
    return a, b, pa, pb


# axe-core, pinned: the accessibility checker the browser tests run on every screen.
# Installed from npm into tests/.axe on first use (tests/run.sh does it up front);
# MPL-2.0, not shipped with the product.
AXE_VERSION = '4.10.2'
AXE_DIR = os.path.join(ROOT, 'tests', '.axe')
AXE_FILE = os.path.join(AXE_DIR, 'node_modules', 'axe-core', 'axe.min.js')
_axe_source = None


def axe_source():
    global _axe_source
    if _axe_source is None:
        if not os.path.exists(AXE_FILE) or not _axe_is_pinned():
            subprocess.run(['npm', 'install', '--no-save', '--no-audit', '--no-fund',
                            '--prefix', AXE_DIR, 'axe-core@' + AXE_VERSION],
                           check=True, stdout=subprocess.DEVNULL)
        with open(AXE_FILE, encoding='utf-8') as f:
            _axe_source = f.read()
    return _axe_source


def _axe_is_pinned():
    with open(os.path.join(os.path.dirname(AXE_FILE), 'package.json'), encoding='utf-8') as f:
        return json.load(f).get('version') == AXE_VERSION


def axe_violations(page, context=None):
    """axe-core's serious and critical violations of WCAG 2.0-2.2 A and AA (and its
    best practices) on what the page shows now: a list of 'rule: target' strings.
    The script goes in through the DevTools protocol, so the page's CSP is untouched."""
    if not page.evaluate('() => !!window.axe'):
        page.evaluate(axe_source())
    found = page.evaluate("""async (context) => {
        const result = await axe.run(context || document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                            'wcag22aa', 'best-practice']},
            resultTypes: ['violations']});
        return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => v.id + ': ' + v.nodes.slice(0, 4).map((n) => n.target.join(' ') +
                 (n.failureSummary ? ' (' + n.failureSummary.split('\\n').slice(1).join(' ') + ')' : ''))
                 .join(' | '));
    }""", context)
    return found
