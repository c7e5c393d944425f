"""The original's own web client, unchanged, against imchat: pages in its shape (its
form fields, `userid` in every call, no token over HTTP, a request helper that answers
only on HTTP 200 or 304, `/chat?id=&token=` with the login's token) are served by this
test on the server's origin (tests/original/, never by the product) and driven in
Chromium, with IMCHAT_ERROR_STATUS=200 as a deployment keeping that client would set."""
import os
import re

import pytest

from playwright.sync_api import sync_playwright

from tests.browserkit import (  # noqa: F401  (fixtures are found by name)
    CHROMIUM, CHROMIUM_ARGS, PNG, ROOT, ServerProcess, expect, new_mobile, people, server)

PAGES = os.path.join(ROOT, 'tests', 'original')


@pytest.fixture(scope='module')
def browser():
    # Pages this test serves itself have no network address of their own, so Chromium's
    # local-network checks would keep their WebSocket from 127.0.0.1: off, here only.
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS + ['--disable-features=LocalNetworkAccessChecks'])
        yield chromium
        chromium.close()


@pytest.fixture
def original(tmp_path):
    srv = ServerProcess(str(tmp_path))
    srv.env['IMCHAT_ERROR_STATUS'] = '200'
    srv.start()
    yield srv
    srv.stop()


def open_original(people, srv):
    page = people('zh-CN', srv=srv)

    def serve(route):
        name = os.path.basename(route.request.url.split('?')[0])
        with open(os.path.join(PAGES, name), 'rb') as f:
            route.fulfill(body=f.read(), content_type='application/javascript' if name.endswith('.js')
                          else 'text/html; charset=utf-8')
    page.route(re.compile(r'.*/original/[a-z]+\.(html|js)(\?.*)?$'), serve)
    return page


def register(page, mobile, nickname):
    page.goto('/original/register.html')
    page.fill('#mobile', mobile)
    page.fill('#passwd', 'secret-pass')
    page.fill('#nickname', nickname)
    page.click('#register-btn')
    expect(page.locator('#toast')).to_have_text(re.compile(r'^registered \d+$'))
    return int(page.locator('#toast').inner_text().split()[1])


def login(page, mobile, passwd='secret-pass'):
    page.goto('/original/login.html')
    page.fill('#mobile', mobile)
    page.fill('#passwd', passwd)
    page.click('#login-btn')


def test_the_originals_client_works_unchanged(people, original, tmp_path):
    pa, pb = open_original(people, original), open_original(people, original)
    ma, mb = new_mobile(), new_mobile()
    a_id = register(pa, ma, 'Ann')
    b_id = register(pb, mb, 'Ben')
    # A refusal reaches the helper that only listens to 200: shown, not silent.
    pb.click('#register-btn')
    expect(pb.locator('#toast')).to_contain_text('already registered')
    login(pa, ma, 'wrong-passwd')
    expect(pa.locator('#toast')).to_be_visible()
    expect(pa.locator('#toast')).not_to_be_empty()

    login(pa, ma)
    pa.wait_for_url('**/original/chat.html?id=*')
    login(pb, mb)
    pb.wait_for_url('**/original/chat.html?id=*')
    for page in (pa, pb):
        expect(page.locator('body')).to_have_attribute('data-ws', 'open')

    # Friends, by id, with only `userid` and the cookie.
    pa.fill('#dstid', str(b_id))
    pa.click('#addfriend')
    expect(pa.locator('#toast')).to_have_text('added')
    expect(pa.locator('#friends li[data-id="{}"]'.format(b_id))).to_have_text('Ben')
    pb.reload()
    expect(pb.locator('#friends li[data-id="{}"]'.format(a_id))).to_have_text('Ann')
    expect(pb.locator('body')).to_have_attribute('data-ws', 'open')

    # A community: created by Ann, joined by Ben.
    pa.fill('#cname', '老同学')
    pa.click('#createcom')
    expect(pa.locator('#toast')).to_have_text(re.compile(r'^created \d+$'))
    group = int(pa.locator('#toast').inner_text().split()[1])
    pb.fill('#comid', str(group))
    pb.click('#joincom')
    expect(pb.locator('#toast')).to_have_text('joined')
    expect(pb.locator('#communities li[data-id="{}"]'.format(group))).to_have_text('老同学')

    def send(page, to, cmd, text):
        page.fill('#to', str(to))
        page.fill('#cmd', str(cmd))
        page.fill('#txt', text)
        page.click('#send')

    send(pa, b_id, 10, '你好 Ben')
    expect(pb.locator('#msgs li[data-cmd="10"]', has_text='你好 Ben')).to_have_count(1)
    send(pb, a_id, 10, 'hi Ann')
    expect(pa.locator('#msgs li[data-cmd="10"]', has_text='hi Ann')).to_have_count(1)
    send(pa, group, 11, '大家好')
    expect(pb.locator('#msgs li[data-cmd="11"]', has_text='大家好')).to_have_count(1)

    # An image: uploaded with its uploadfile helper, sent as media 4.
    pa.fill('#to', str(b_id))
    pa.fill('#cmd', '10')
    picture = tmp_path / 'pic.png'
    picture.write_bytes(PNG)
    pa.set_input_files('#pic', str(picture))
    image = pb.locator('#msgs li[data-media="4"]')
    expect(image).to_have_count(1)
    url = image.inner_text()
    assert url.startswith('/') or url.startswith(original.base)
    status = pb.evaluate('(u) => fetch(u).then((r) => r.status)', url)
    assert status == 200

    # A reload (no `since`, as always): Ann's own messages do not come back as new.
    pa.reload()
    expect(pa.locator('body')).to_have_attribute('data-ws', 'open')
    send(pb, a_id, 10, 'after your reload')
    expect(pa.locator('#msgs li', has_text='after your reload')).to_have_count(1)
    expect(pa.locator('#msgs li')).to_have_count(1)
