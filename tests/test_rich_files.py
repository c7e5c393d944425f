"""Files (media 10, docs/protocol.md "Richer messages"): any allowed type uploaded with
/attach/file, sent as a message with its name and size, and served only as a download;
on SQLite and MySQL."""
import io

import pytest

from tests.test_chat import connect, pair, wait_for  # noqa: F401 (fixtures)
from tests.test_rich import sent


def post_file(client, account, content, filename):
    return client.post('/attach/file', data={'file': (io.BytesIO(content), filename)},
                       content_type='multipart/form-data', headers=account.headers)


def test_a_file_is_uploaded_sent_and_served_only_as_a_download(client, auth, pair, connect):
    alice, bob = pair
    # HTML inside: it must never be rendered as a page of this site.
    body = b'<html><script>alert(1)</script></html>'
    response = post_file(client, alice, body, '../../etc/Q3 report (final).pdf')
    assert response.status_code == 200, response.json
    data = response.json['data']
    assert data['name'] == 'Q3 report (final).pdf' and data['size'] == len(body)
    assert data['url'].startswith('/mnt/') and data['url'].endswith('.f.pdf')
    a, b = connect(alice), connect(bob)
    ack = sent(a, cmd=10, dstid=bob.id, media=10, url=data['url'], content=data['name'],
               amount=data['size'])
    assert ack['code'] == 0
    got = b.recv()
    assert (got['media'], got['url'], got['content'], got['amount']) == (
        10, data['url'], data['name'], len(body))
    served = client.get(data['url'], query_string={'name': '../evil\r\n.pdf'})
    assert served.status_code == 200 and served.data == body
    disposition = served.headers['Content-Disposition']
    assert disposition.startswith('attachment') and '/' not in disposition
    assert '\r' not in disposition and '\n' not in disposition
    assert served.headers['Content-Type'] == 'application/pdf'
    assert served.headers['X-Content-Type-Options'] == 'nosniff'
    assert 'sandbox' in served.headers['Content-Security-Policy']


def test_an_unknown_kind_of_file_is_served_as_octet_stream(client, auth):
    alice = auth.register()
    data = post_file(client, alice, b'PK\x03\x04 not really', 'slides.pptx').json['data']
    served = client.get(data['url'])
    assert served.headers['Content-Type'] == 'application/octet-stream'
    assert 'slides.pptx' not in served.headers['Content-Disposition']  # no name: a safe one
    assert served.headers['Content-Disposition'].startswith('attachment')


def test_a_download_name_is_display_text_never_a_path():
    from imchat.service.mediatypes import display_name, download_name
    assert display_name('C:\\Users\\me\\x.pdf') == 'x.pdf'
    assert display_name('\x00\x1b[31m.pdf') == '[31m.pdf'
    assert download_name('a"b;c.pdf', 'pdf') == 'abc.pdf'
    assert download_name(None, 'zip') == 'file.zip'
    assert download_name('notes', 'txt') == 'notes.txt'


@pytest.mark.parametrize('filename', ['page.html', 'tool.exe', 'noextension', 'x.svg'])
def test_a_file_type_not_allowed_is_refused(client, auth, filename):
    alice = auth.register()
    response = post_file(client, alice, b'content', filename)
    assert response.status_code == 415, response.json
    assert response.json['reason'] == 'upload.file_type'


def test_the_operator_chooses_the_file_types(app_config, auth_for):
    app_config['FILE_TYPES'] = 'dwg, .txt'
    client, auth = auth_for(app_config)
    alice = auth.register()
    assert post_file(client, alice, b'x', 'plan.dwg').status_code == 200
    assert post_file(client, alice, b'x', 'report.pdf').status_code == 415


def test_files_count_in_the_upload_quota(app_config, auth_for):
    app_config['UPLOAD_QUOTA_BYTES'] = 10
    client, auth = auth_for(app_config)
    alice = auth.register()
    assert post_file(client, alice, b'12345678', 'a.txt').status_code == 200
    response = post_file(client, alice, b'12345678', 'b.txt')
    assert response.status_code == 429 and response.json['reason'] == 'upload.quota'


def test_a_file_message_needs_its_url_and_name(pair, connect):
    alice, bob = pair
    a = connect(alice)
    ack = sent(a, cmd=10, dstid=bob.id, media=10, content='a.pdf')
    assert ack['code'] == -1 and 'url' in ack['msg']
    ack = sent(a, cmd=10, dstid=bob.id, media=10, url='/mnt/' + 'a' * 32 + '.f.pdf')
    assert ack['code'] == -1 and 'content' in ack['msg']


def test_a_forwarded_file_reuses_the_stored_file(client, auth, pair, connect, app_config):
    import os
    alice, bob = pair
    data = post_file(client, alice, b'%PDF-1.4 minimal', 'doc.pdf').json['data']
    a, b = connect(alice), connect(bob)
    first = sent(a, cmd=10, dstid=bob.id, media=10, url=data['url'], content=data['name'],
                 amount=data['size'])['msgid']
    b.recv()
    carol = auth.register()
    auth.befriend(bob, carol)
    forwarded = sent(b, cmd=10, dstid=carol.id, forward=first)
    assert forwarded['code'] == 0
    assert len(os.listdir(app_config['UPLOAD_DIR'])) == 1


@pytest.fixture
def auth_for():
    """An app built with the config a test changed, with a client and Auth of its own."""
    from imchat import create_app
    from tests.conftest import Auth
    apps = []

    def make(config):
        app = create_app(config)
        app.config['TESTING'] = True
        apps.append(app)
        client = app.test_client()
        return client, Auth(client)
    yield make
    for app in apps:
        app.extensions['imchat'].close()
