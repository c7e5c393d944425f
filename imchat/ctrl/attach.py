"""Uploads: `/attach/upload` keeps an image, voice note or video and replies with its
URL, which the client then sends in a message; `/attach/file` keeps a file of an
allowed type (media 10); `/mnt/<name>` serves the files kept on
this machine's disk (IMCHAT_STORAGE=local)."""
import gevent
from flask import Blueprint, current_app, g, request, send_file

from imchat.ctrl import (authenticate, bind_request, cookie_token, ok, services,
                         token_outside_body)
from imchat.service.errors import BadRequest, NotFound
from imchat.service.mediatypes import check_client_extension, check_client_name, download_name
from imchat.util.bind import Field

bp = Blueprint('attach', __name__)

# A request may exceed the largest file by this much: the multipart boundaries and
# part headers, and the small fields beside the file (token, filetype).
MULTIPART_SLACK_BYTES = 64 * 1024
# Stored names are random and never reused, so a file never changes: cache it a year.
SERVED_MAX_AGE = 365 * 24 * 3600
# Served files are media, never a page: nothing in them may run in the app's origin,
# even if a browser were to try rendering one.
SERVED_FILE_CSP = "default-src 'none'; sandbox"

FILETYPE = Field('filetype', max_len=16, pattern=r'\.?[A-Za-z0-9]{1,10}',
                 pattern_hint='must be a file extension such as .mp3')


def request_limit(upload_max_bytes):
    """The largest request body (Flask's MAX_CONTENT_LENGTH) for a file limit."""
    return upload_max_bytes + MULTIPART_SLACK_BYTES


class _YieldingInput:
    """The request body, giving the event loop a turn before each read: parsing a large
    multipart body is pure Python, and without a turn between its chunks it would hold
    every other connection of the process until it is done."""

    def __init__(self, stream):
        self._stream = stream

    def read(self, *args):
        gevent.sleep(0)
        return self._stream.read(*args)

    def readline(self, *args):
        gevent.sleep(0)
        return self._stream.readline(*args)

    def __iter__(self):
        return iter(self.readline, b'')


def _authenticate_before_the_body():
    """Who is uploading and whether it is multipart, decided before any of the body is
    read: an upload may be large, and parsing one for a stranger was a way to stall the
    server. A token inside the body is taken only from a body as small as any other
    call's (IMCHAT_BODY_MAX_BYTES); larger uploads name it in a header or the URL."""
    if request.mimetype != 'multipart/form-data':
        raise BadRequest('file: must be a file sent as multipart/form-data, not text',
                         field='file', reason='upload.not_multipart')
    request.environ['wsgi.input'] = _YieldingInput(request.environ['wsgi.input'])
    token = token_outside_body() or cookie_token()
    if token is None:
        small = current_app.config['BODY_MAX_BYTES']
        if request.content_length is None or (small and request.content_length > small):
            # Unauthorized, as authenticate(None) says, without reading the body.
            return authenticate(None)
        token = request.form.get('token')
    authenticate(token)


@bp.route('/attach/upload', methods=['POST'])
def upload():
    _authenticate_before_the_body()
    fields = bind_request(FILETYPE)
    file = request.files.get('file')
    if file is None:
        if 'file' in request.form:
            raise BadRequest('file: must be a file part of the multipart body, not text',
                             field='file', reason='upload.not_a_file')
        raise BadRequest('file: is required (multipart/form-data)', field='file',
                         reason='upload.no_file')
    # The client's words must name an accepted type, but only the content decides
    # the type and the stored name.
    check_client_name('file', file.filename)
    if fields['filetype']:
        check_client_extension('filetype', fields['filetype'])
    return ok(services().uploads.store(g.user_id, file.stream))


@bp.route('/attach/file', methods=['POST'])
def upload_file():
    """A file of any allowed type (media 10): {url, name, size} to send in a message."""
    _authenticate_before_the_body()
    file = request.files.get('file')
    if file is None:
        raise BadRequest('file: is required (multipart/form-data)', field='file',
                         reason='upload.no_file')
    return ok(services().uploads.store_file(g.user_id, file.stream, file.filename))


@bp.route('/mnt/<name>', methods=['GET', 'HEAD'])
def serve_file(name):
    storage = services().storage
    if storage.kind != 'local':
        raise NotFound('no such file', reason='not_found.file')
    path, media = storage.path_of(name)
    if media.kind == 'file':
        # Only ever a download, saved under the name the link gives (display text).
        extension = media.extension[2:]
        return send_file(path, mimetype=media.mime, conditional=True, etag=True,
                         max_age=SERVED_MAX_AGE, as_attachment=True,
                         download_name=download_name(request.args.get('name'), extension))
    return send_file(path, mimetype=media.mime, conditional=True, etag=True,
                     max_age=SERVED_MAX_AGE)


@bp.after_request
def harden(response):
    response.headers['X-Content-Type-Options'] = 'nosniff'
    if request.path.startswith('/mnt/'):
        response.headers['Content-Security-Policy'] = SERVED_FILE_CSP
    return response
