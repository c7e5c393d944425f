"""Uploads through the HTTP API: /attach/upload on local disk and on OSS, /mnt serving.

Local storage is exercised end to end with real files (tests/data/upload); OSS through
the real oss2 client against tests/oss_server.py, which checks request signatures the
way OSS does.
"""
import io
import logging
import math
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import wave

import pytest
import requests

from imchat import create_app
from imchat.service.storage import OssStorage
from conftest import Auth
from oss_server import FakeOss

DATA = os.path.join(os.path.dirname(__file__), 'data', 'upload')
LOCAL_URL = re.compile(r'/mnt/[0-9a-f]{32}\.([a-z0-9]+)')
SMALL_LIMIT = 8 * 1024

OSS_KEY_ID = 'LTAI5tTestKeyIdImchat'
OSS_SECRET = 'sEcReT-Test-Only-9f8e7d6c5b4a'
OSS_BUCKET = 'imchat-media'
OSS_REGION = 'cn-hangzhou'


def sample(name):
    with open(os.path.join(DATA, name), 'rb') as f:
        return f.read()


def wav_bytes():
    out = io.BytesIO()
    with wave.open(out, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b''.join(struct.pack('<h', int(8000 * math.sin(i / 4)))
                               for i in range(800)))
    return out.getvalue()


# Hand-built starts of files: a valid frame or page header, then payload.
MP3_ID3 = b'ID3\x04\x00\x00\x00\x00\x00\x00' + b'\xff\xfb\x90\x64' + bytes(413)
MP3_FRAME = b'\xff\xfb\x90\x64' + bytes(413)
AAC_ADTS = b'\xff\xf1\x50\x80\x02\x1f\xfc' + bytes(64)
OGG_OPUS = (b'OggS\x00\x02' + bytes(20) + b'\x01\x13' + b'OpusHead\x01\x01\x38\x01'
            + b'\x80\xbb\x00\x00\x00\x00\x00' + bytes(64))
HTML = b'<!doctype html><html><script>alert(document.domain)</script></html>'
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
       b'<script>alert(document.domain)</script></svg>')


def post_file(client, account, content, filename='photo.png', filetype=None, headers=None):
    data = {'file': (io.BytesIO(content), filename)}
    if filetype is not None:
        data['filetype'] = filetype
    return client.post('/attach/upload', data=data, content_type='multipart/form-data',
                       headers=account.headers if account else headers)


def assert_refused(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    assert response.json['code'] == -1
    if field is not None:
        assert response.json['field'] == field
        assert response.json['msg'].startswith(field + ': ')


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


@pytest.fixture
def small_limit(app_config):
    app_config['UPLOAD_MAX_BYTES'] = SMALL_LIMIT


# --- local storage, end to end ------------------------------------------------------

@pytest.mark.parametrize('content, filename, filetype, extension, mime', [
    (sample('python.png'), 'python.png', None, 'png', 'image/png'),
    (sample('python.jpg'), 'IMG_0001.JPEG', None, 'jpg', 'image/jpeg'),
    (sample('python.gif'), 'python.gif', None, 'gif', 'image/gif'),
    (sample('python.webp'), 'python.webp', None, 'webp', 'image/webp'),
    # A recorded voice note: a Blob named "blob", and the seed's filetype ".mp3".
    (sample('voice.webm'), 'blob', '.mp3', 'weba', 'audio/webm'),
    (sample('voice.m4a'), 'blob', '.m4a', 'm4a', 'audio/mp4'),
    (OGG_OPUS, 'note.ogg', None, 'ogg', 'audio/ogg'),
    (MP3_ID3, 'song.mp3', None, 'mp3', 'audio/mpeg'),
    (MP3_FRAME, 'blob', '.mp3', 'mp3', 'audio/mpeg'),
    (AAC_ADTS, 'note.aac', None, 'aac', 'audio/aac'),
    (wav_bytes(), 'note.wav', None, 'wav', 'audio/wav'),
    (sample('clip.webm'), 'clip.webm', None, 'webm', 'video/webm'),
    (sample('clip.mp4'), 'clip.mp4', None, 'mp4', 'video/mp4'),
])
def test_upload_then_fetch_back_byte_for_byte(client, auth, app_config, content, filename,
                                              filetype, extension, mime):
    alice = auth.register()
    response = post_file(client, alice, content, filename, filetype)
    assert response.status_code == 200, response.json
    assert response.json['code'] == 0
    url = response.json['data']
    match = LOCAL_URL.fullmatch(url)
    assert match, url
    # The extension comes from the content, whatever the client called the file.
    assert match.group(1) == extension

    fetched = client.get(url)
    assert fetched.status_code == 200
    assert fetched.data == content
    assert fetched.mimetype == mime
    assert fetched.headers['X-Content-Type-Options'] == 'nosniff'
    assert files_under(app_config['UPLOAD_DIR']) == [url[len('/mnt/'):]]


def test_upload_needs_a_token(client, app_config):
    response = client.post('/attach/upload', content_type='multipart/form-data',
                           data={'file': (io.BytesIO(sample('python.png')), 'python.png')})
    assert_refused(response, 401)
    response = client.post('/attach/upload', content_type='multipart/form-data',
                           headers={'Authorization': 'Bearer not-a-token'},
                           data={'file': (io.BytesIO(sample('python.png')), 'python.png')})
    assert_refused(response, 401)
    assert not os.path.exists(app_config['UPLOAD_DIR'])


def test_token_as_a_form_field_works(client, auth):
    alice = auth.register()
    response = client.post('/attach/upload', content_type='multipart/form-data',
                           data={'token': alice.token,
                                 'file': (io.BytesIO(sample('python.png')), 'python.png')})
    assert response.status_code == 200, response.json
    assert LOCAL_URL.fullmatch(response.json['data'])


def test_missing_file_is_refused(client, auth):
    alice = auth.register()
    response = client.post('/attach/upload', data={'filetype': '.png'},
                           content_type='multipart/form-data', headers=alice.headers)
    assert_refused(response, 400, field='file')
    response = client.post('/attach/upload', data={'file': 'just some text'},
                           headers=alice.headers)
    assert_refused(response, 400, field='file')
    assert 'multipart' in response.json['msg']


def test_empty_file_is_refused(client, auth):
    alice = auth.register()
    assert_refused(post_file(client, alice, b'', 'empty.png'), 400, field='file')


def test_file_at_the_limit_is_accepted_and_one_byte_more_is_413(small_limit, client, auth,
                                                                 app_config):
    alice = auth.register()
    png = sample('python.png')
    exact = png + bytes(SMALL_LIMIT - len(png))
    response = post_file(client, alice, exact, 'big.png')
    assert response.status_code == 200, response.json
    assert client.get(response.json['data']).data == exact

    response = post_file(client, alice, exact + b'\x00', 'big.png')
    assert_refused(response, 413, field='file')
    assert '8 KB' in response.json['msg']
    assert len(files_under(app_config['UPLOAD_DIR'])) == 1


def test_request_far_over_the_limit_is_413_json_before_parsing(small_limit, client, auth,
                                                               app_config):
    alice = auth.register()
    huge = sample('python.png') + bytes(SMALL_LIMIT * 20)
    response = post_file(client, alice, huge, 'huge.png')
    assert_refused(response, 413)
    assert not os.path.exists(app_config['UPLOAD_DIR'])


def read_http_reply(sock):
    reply = b''
    while b'\r\n\r\n' not in reply or not reply.rstrip().endswith(b'}'):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply


def assert_413_envelope(reply):
    status_line, _, rest = reply.partition(b'\r\n')
    assert status_line.split()[1] == b'413', reply
    assert b'application/json' in rest.split(b'\r\n\r\n')[0].lower()
    assert b'"code":-1' in rest.replace(b' ', b'')


MULTIPART_HEAD = (b'--imchatboundary\r\nContent-Disposition: form-data; name="file"; '
                  b'filename="a.png"\r\nContent-Type: image/png\r\n\r\n')


def test_real_server_refuses_a_huge_body_without_reading_it(small_limit, live_server, auth,
                                                            app_config):
    """A client announcing a gigabyte gets the 413 envelope at once: the server never
    waits for (or holds) the body."""
    alice = auth.register()
    with socket.create_connection(('127.0.0.1', live_server.port), timeout=10) as sock:
        sock.sendall(('POST /attach/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                      'Authorization: Bearer {}\r\n'
                      'Content-Type: multipart/form-data; boundary=imchatboundary\r\n'
                      'Content-Length: {}\r\n\r\n').format(alice.token, 1024 ** 3).encode()
                     + MULTIPART_HEAD + sample('python.png'))
        assert_413_envelope(read_http_reply(sock))
    assert not os.path.exists(app_config['UPLOAD_DIR'])


def test_real_server_stops_a_chunked_body_at_the_limit(small_limit, live_server, auth,
                                                       app_config):
    """Without a Content-Length the body is counted as it arrives and cut off at the
    limit."""
    alice = auth.register()
    body = MULTIPART_HEAD + sample('python.png') + bytes(SMALL_LIMIT * 40) + \
        b'\r\n--imchatboundary--\r\n'
    with socket.create_connection(('127.0.0.1', live_server.port), timeout=10) as sock:
        sock.sendall(('POST /attach/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                      'Authorization: Bearer {}\r\n'
                      'Content-Type: multipart/form-data; boundary=imchatboundary\r\n'
                      'Transfer-Encoding: chunked\r\n\r\n').format(alice.token).encode())
        try:
            for start in range(0, len(body), 4096):
                part = body[start:start + 4096]
                sock.sendall(b'%x\r\n' % len(part) + part + b'\r\n')
            sock.sendall(b'0\r\n\r\n')
        except OSError:
            pass  # The server may close the connection before the rest is sent.
        assert_413_envelope(read_http_reply(sock))
    assert not os.path.exists(app_config['UPLOAD_DIR'])


def _reply_before_the_body(port, head, sent=b''):
    """Send a request's head and a little of a 10 MB body; return the server's reply,
    which must come without the rest of the body ever being sent."""
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(head.format(length=10 * 1024 * 1024).encode() + sent)
        return read_http_reply(sock)


@pytest.mark.parametrize('authorization', ['', 'Authorization: Bearer not-a-token\r\n'])
def test_a_stranger_s_large_upload_is_refused_before_its_body_is_read(live_server, app_config,
                                                                      authorization):
    """Who is asking is settled before any of the body is read: parsing a 10 MB body
    for a stranger stalled the whole server for seconds."""
    reply = _reply_before_the_body(
        live_server.port,
        'POST /attach/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n' + authorization
        + 'Content-Type: multipart/form-data; boundary=imchatboundary\r\n'
        'Content-Length: {length}\r\n\r\n', MULTIPART_HEAD + sample('python.png'))
    assert reply.split(b' ', 2)[1] == b'401', reply
    assert b'"reason":"auth.token_' in reply
    assert not os.path.exists(app_config['UPLOAD_DIR'])


@pytest.mark.parametrize('content_type', ['application/x-www-form-urlencoded',
                                          'application/json', 'text/plain'])
def test_an_upload_that_is_not_multipart_is_refused_before_its_body_is_read(
        live_server, auth, app_config, content_type):
    alice = auth.register()
    reply = _reply_before_the_body(
        live_server.port,
        'POST /attach/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        'Authorization: Bearer ' + alice.token + '\r\nContent-Type: ' + content_type
        + '\r\nContent-Length: {length}\r\n\r\n', b'file=' + b'a' * 4096)
    assert reply.split(b' ', 2)[1] == b'400', reply
    assert b'"reason":"upload.not_multipart"' in reply and b'"field":"file"' in reply
    assert not os.path.exists(app_config['UPLOAD_DIR'])


def test_a_token_in_the_body_is_read_only_from_a_small_body(client, auth, app_config):
    """A form token still works for a small upload (the original client's way); a large
    body must name its token before the body, where it is checked first."""
    alice = auth.register()
    app_config_small = client.application.config['BODY_MAX_BYTES']
    padding = b'\0' * app_config_small
    response = client.post('/attach/upload', content_type='multipart/form-data',
                           data={'token': alice.token,
                                 'file': (io.BytesIO(sample('python.png') + padding),
                                          'python.png')})
    assert_refused(response, 401)
    assert response.json['reason'] == 'auth.token_missing'


@pytest.mark.parametrize('filename', ['page.html', 'drawing.svg', 'tool.exe', 'x.php',
                                      '.htaccess', 'photo.png.html'])
def test_disallowed_name_is_refused_even_with_image_content(client, auth, app_config,
                                                             filename):
    alice = auth.register()
    response = post_file(client, alice, sample('python.png'), filename)
    assert_refused(response, 415, field='file')
    assert not os.path.exists(app_config['UPLOAD_DIR'])


@pytest.mark.parametrize('filetype, status', [('.html', 415), ('svg', 415), ('.exe', 415),
                                              ('../x.png', 400), ('.png/../../a', 400),
                                              ('.a' + 'b' * 20, 400)])
def test_disallowed_filetype_is_refused(client, auth, app_config, filetype, status):
    alice = auth.register()
    response = post_file(client, alice, sample('python.png'), 'blob', filetype)
    assert_refused(response, status, field='filetype')
    assert not os.path.exists(app_config['UPLOAD_DIR'])


@pytest.mark.parametrize('content', [
    HTML, SVG, b'just text, not an image', b'%PDF-1.7\n' + bytes(64),
    b'MZ\x90\x00' + bytes(64),
    # Matroska and QuickTime: containers that are not on the list.
    b'\x1a\x45\xdf\xa3\x9f\x42\x86\x81'
    b'\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x88matroska\x42\x87\x81'
    b'\x04\x42\x85\x81\x02',
    b'\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ' + bytes(64),
], ids=['html', 'svg', 'text', 'pdf', 'exe', 'matroska', 'quicktime'])
def test_disallowed_content_is_refused_whatever_its_name(client, auth, app_config, content):
    alice = auth.register()
    for filename, filetype in (('photo.png', None), ('blob', '.mp3'), ('clip.webm', '.webm')):
        response = post_file(client, alice, content, filename, filetype)
        assert_refused(response, 415, field='file')
    assert not os.path.exists(app_config['UPLOAD_DIR']) or \
        files_under(app_config['UPLOAD_DIR']) == []


def test_client_name_cannot_choose_the_path(client, auth, app_config, tmp_path):
    alice = auth.register()
    png = sample('python.png')
    names = ['../../evil.png', '..\\..\\evil.png', '/etc/evil.png', 'evil.png\x00.html',
             'sub/dir/evil.png']
    urls = []
    for name in names:
        response = post_file(client, alice, png, name, '.png')
        if response.status_code != 200:
            assert_refused(response, 415, field='file')
            continue
        urls.append(response.json['data'])
        assert LOCAL_URL.fullmatch(response.json['data'])
        assert 'evil' not in response.json['data']
    assert len(urls) >= 4
    # Everything written is directly in the upload folder, under the server's names.
    assert files_under(app_config['UPLOAD_DIR']) == sorted(url[len('/mnt/'):] for url in urls)
    assert not [path for path in files_under(str(tmp_path)) if 'evil' in path]


def test_two_uploads_of_the_same_file_never_collide(client, auth, app_config):
    alice, bob = auth.register(), auth.register()
    png = sample('python.png')
    first = post_file(client, alice, png, 'same.png').json['data']
    second = post_file(client, bob, png, 'same.png').json['data']
    third = post_file(client, alice, png[:-1] + b'\x01', 'same.png').json['data']
    assert len({first, second, third}) == 3
    assert client.get(first).data == png
    assert client.get(second).data == png
    assert client.get(third).data == png[:-1] + b'\x01'
    assert len(files_under(app_config['UPLOAD_DIR'])) == 3


def test_served_files_cannot_run_as_a_page(client, auth):
    alice = auth.register()
    url = post_file(client, alice, sample('python.gif'), 'anim.gif').json['data']
    response = client.get(url)
    assert response.headers['Content-Type'] == 'image/gif'
    assert response.headers['X-Content-Type-Options'] == 'nosniff'
    assert 'sandbox' in response.headers['Content-Security-Policy']
    assert "default-src 'none'" in response.headers['Content-Security-Policy']
    assert 'attachment' not in response.headers.get('Content-Disposition', '')


def test_served_media_supports_ranges_and_revalidation(client, auth):
    alice = auth.register()
    clip = sample('clip.webm')
    url = post_file(client, alice, clip, 'clip.webm').json['data']
    partial = client.get(url, headers={'Range': 'bytes=0-99'})
    assert partial.status_code == 206
    assert partial.data == clip[:100]
    full = client.get(url)
    again = client.get(url, headers={'If-None-Match': full.headers['ETag']})
    assert again.status_code == 304


def test_html_planted_in_the_folder_is_never_served(client, auth, app_config):
    alice = auth.register()
    url = post_file(client, alice, sample('python.png'), 'python.png').json['data']
    folder = app_config['UPLOAD_DIR']
    for planted in ('index.html', 'x.svg', url[len('/mnt/'):-len('png')] + 'html'):
        with open(os.path.join(folder, planted), 'wb') as f:
            f.write(HTML)
        assert_refused(client.get('/mnt/' + planted), 404)


@pytest.mark.parametrize('path', [
    '/mnt/../imchat/config.py', '/mnt/..%2f..%2fetc%2fpasswd', '/mnt/%2e%2e/%2e%2e/etc/passwd',
    '/mnt/..', '/mnt/', '/mnt/' + '0' * 32 + '.png', '/mnt/' + '0' * 32 + '.png/..',
    '/mnt/%2e%2e%5cconfig.py',
])
def test_mnt_refuses_traversal_and_unknown_names(client, path):
    response = client.get(path)
    assert_refused(response, 404)


def test_unwritable_upload_folder_is_a_clear_json_error(app_config, tmp_path):
    blocker = tmp_path / 'not-a-folder'
    blocker.write_text('a file where the upload folder should be')
    app_config['UPLOAD_DIR'] = str(blocker / 'mnt')
    app = create_app(app_config)
    try:
        client = app.test_client()
        alice = client.post('/user/register', data={'mobile': '13900000001',
                                                    'passwd': 'secret-pass'}).json['data']
        response = client.post('/attach/upload', content_type='multipart/form-data',
                               headers={'Authorization': 'Bearer ' + alice['token']},
                               data={'file': (io.BytesIO(sample('python.png')), 'p.png')})
        assert_refused(response, 503)
        assert response.json['msg'].startswith('storage: ')
        assert 'Traceback' not in response.get_data(as_text=True)
    finally:
        app.extensions['imchat'].close()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KB tmpfs: a real file system that fills up (Linux, as root)."""
    folder = tmp_path / 'tiny'
    folder.mkdir()
    if not sys.platform.startswith('linux') or os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs Linux and root')
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip('cannot mount a tmpfs here: ' + mounted.stderr.decode(errors='replace'))
    yield folder
    subprocess.run(['umount', str(folder)], check=True)


def test_full_disk_is_a_clear_json_error(app_config, tiny_disk):
    app_config['UPLOAD_DIR'] = str(tiny_disk / 'mnt')
    app = create_app(app_config)
    try:
        client = app.test_client()
        alice = Auth(client).register()
        big = sample('python.png') + bytes(200 * 1024)
        response = post_file(client, alice, big, 'big.png')
        assert_refused(response, 503)
        assert response.json['msg'].startswith('storage: ')
        assert 'disk is full' in response.json['msg']
        # The partial file is gone, and a file that fits is still stored.
        assert files_under(str(tiny_disk / 'mnt')) == []
        response = post_file(client, alice, sample('python.png'), 'small.png')
        assert response.status_code == 200, response.json
        assert client.get(response.json['data']).data == sample('python.png')
    finally:
        app.extensions['imchat'].close()


def test_full_temporary_space_is_a_clear_json_error(client, auth, tiny_disk, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tiny_disk))
    alice = auth.register()
    response = post_file(client, alice, sample('python.png') + bytes(200 * 1024), 'big.png')
    assert_refused(response, 503)
    assert 'disk is full' in response.json['msg']


def test_storage_setting_errors_stop_the_start(app_config):
    with pytest.raises(ValueError, match='IMCHAT_STORAGE'):
        create_app(dict(app_config, STORAGE='ftp'))
    with pytest.raises(ValueError) as error:
        create_app(dict(app_config, STORAGE='oss', OSS_ENDPOINT='http://127.0.0.1:9',
                        OSS_ACCESS_KEY_SECRET=OSS_SECRET))
    assert 'IMCHAT_OSS_BUCKET' in str(error.value)
    assert 'IMCHAT_OSS_ACCESS_KEY_ID' in str(error.value)
    assert OSS_SECRET not in str(error.value)


# --- OSS ----------------------------------------------------------------------------

@pytest.fixture
def oss_server():
    server = FakeOss({OSS_KEY_ID: OSS_SECRET}, buckets={OSS_BUCKET}, region=OSS_REGION)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def oss_app(app_config, oss_server):
    """make(**settings) -> (client, auth) of an app storing in the test OSS."""
    apps = []

    def make(**settings):
        config = dict(app_config, STORAGE='oss', OSS_ENDPOINT=oss_server.endpoint,
                      OSS_BUCKET=OSS_BUCKET, OSS_ACCESS_KEY_ID=OSS_KEY_ID,
                      OSS_ACCESS_KEY_SECRET=OSS_SECRET)
        config.update(settings)
        app = create_app(config)
        app.config['TESTING'] = True
        apps.append(app)
        client = app.test_client()
        return client, Auth(client)

    yield make
    for app in apps:
        app.extensions['imchat'].close()


def oss_object(url, server):
    prefix = '{}/{}/'.format(server.endpoint, OSS_BUCKET)
    assert url.startswith(prefix), url
    return url[len(prefix):]


def assert_no_secret(text):
    assert OSS_SECRET not in text
    assert OSS_KEY_ID not in text


def test_oss_upload_signed_v1_then_fetch_back(oss_app, oss_server, app_config):
    client, auth = oss_app()
    alice = auth.register()
    voice = sample('voice.webm')
    response = post_file(client, alice, voice, 'blob', '.mp3')
    assert response.status_code == 200, response.json
    url = response.json['data']
    key = oss_object(url, oss_server)
    assert re.fullmatch(r'mnt/[0-9a-f]{32}\.weba', key)
    assert oss_server.requests[-1][2:] == ('v1', 200)
    assert oss_server.objects[(OSS_BUCKET, key)] == (voice, 'audio/webm')
    fetched = requests.get(url, timeout=10)
    assert fetched.content == voice
    assert fetched.headers['Content-Type'] == 'audio/webm'
    # Nothing is kept on local disk, and /mnt serves nothing.
    assert not os.path.exists(app_config['UPLOAD_DIR'])
    assert_refused(client.get('/mnt/' + key.split('/')[1]), 404)


def test_oss_upload_signed_v4_when_a_region_is_set(oss_app, oss_server):
    client, auth = oss_app(OSS_REGION=OSS_REGION)
    alice = auth.register()
    response = post_file(client, alice, sample('python.jpg'), 'me.jpg')
    assert response.status_code == 200, response.json
    key = oss_object(response.json['data'], oss_server)
    assert oss_server.requests[-1][2:] == ('v4', 200)
    assert oss_server.objects[(OSS_BUCKET, key)] == (sample('python.jpg'), 'image/jpeg')


def test_oss_public_url_setting_prefixes_the_key(oss_app, oss_server):
    client, auth = oss_app(OSS_PUBLIC_URL='https://cdn.example.test/')
    alice = auth.register()
    url = post_file(client, alice, sample('python.png'), 'p.png').json['data']
    assert re.fullmatch(r'https://cdn\.example\.test/mnt/[0-9a-f]{32}\.png', url)
    assert (OSS_BUCKET, url[len('https://cdn.example.test/'):]) in oss_server.objects


@pytest.mark.parametrize('region', ['', OSS_REGION], ids=['v1', 'v4'])
def test_oss_wrong_secret_is_a_clear_json_error(oss_app, oss_server, caplog, region):
    client, auth = oss_app(OSS_ACCESS_KEY_SECRET=OSS_SECRET + 'x', OSS_REGION=region)
    caplog.set_level(logging.DEBUG)
    alice = auth.register()
    response = post_file(client, alice, sample('python.png'), 'p.png')
    assert_refused(response, 502)
    assert 'SignatureDoesNotMatch' in response.json['msg']
    assert 'credentials' in response.json['msg']
    assert oss_server.requests[-1][3] == 403
    assert oss_server.objects == {}
    assert_no_secret(response.get_data(as_text=True))
    assert 'SignatureDoesNotMatch' in caplog.text
    assert_no_secret(caplog.text)
    assert (OSS_SECRET + 'x') not in caplog.text


def test_oss_unknown_key_id_is_a_clear_json_error(oss_app, caplog):
    client, auth = oss_app(OSS_ACCESS_KEY_ID=OSS_KEY_ID + 'Other')
    caplog.set_level(logging.DEBUG)
    alice = auth.register()
    response = post_file(client, alice, sample('python.png'), 'p.png')
    assert_refused(response, 502)
    assert 'InvalidAccessKeyId' in response.json['msg']
    assert_no_secret(response.get_data(as_text=True))
    assert_no_secret(caplog.text)


def test_oss_unknown_bucket_is_a_clear_json_error(oss_app):
    client, auth = oss_app(OSS_BUCKET='no-such-bucket')
    alice = auth.register()
    response = post_file(client, alice, sample('python.png'), 'p.png')
    assert_refused(response, 502)
    assert 'NoSuchBucket' in response.json['msg']


def test_oss_down_is_a_clear_json_error(oss_app, caplog):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        closed_port = probe.getsockname()[1]
    client, auth = oss_app(OSS_ENDPOINT='http://127.0.0.1:{}'.format(closed_port))
    caplog.set_level(logging.DEBUG)
    alice = auth.register()
    response = post_file(client, alice, sample('python.png'), 'p.png')
    assert_refused(response, 503)
    assert response.json['msg'].startswith('storage: ')
    assert 'cannot be reached' in response.json['msg']
    assert_no_secret(response.get_data(as_text=True))
    assert 'unreachable' in caplog.text
    assert_no_secret(caplog.text)


def test_oss_refusals_happen_before_any_request(oss_app, oss_server):
    client, auth = oss_app()
    alice = auth.register()
    assert_refused(post_file(client, alice, HTML, 'p.png'), 415, field='file')
    assert_refused(post_file(client, alice, sample('python.png'), 'p.html'), 415, field='file')
    assert oss_server.requests == []


def test_oss_url_is_virtual_hosted_for_a_named_endpoint():
    storage = OssStorage('oss-cn-hangzhou.aliyuncs.com', 'chat', OSS_KEY_ID, OSS_SECRET, 1024)
    assert storage.public_url == 'https://chat.oss-cn-hangzhou.aliyuncs.com'
    storage = OssStorage('http://oss-cn-hangzhou.aliyuncs.com', 'chat', OSS_KEY_ID,
                         OSS_SECRET, 1024, region='cn-hangzhou')
    assert storage.public_url == 'http://chat.oss-cn-hangzhou.aliyuncs.com'
