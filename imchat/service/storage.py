"""Uploaded files: receiving one, naming it, and where it is kept.

An upload is accepted only when its content is an allowed image, audio or video
format, recognised by its first bytes (service.mediatypes). The stored name is
random (`secrets`) with the extension of the detected format, so a client can neither
choose a path nor overwrite another file, and what is served back is always the
media type that was detected.

Two places to keep files, with one interface (`save` returns the public URL):
`LocalStorage` (a folder, served back at `/mnt/<name>` by `ctrl.attach`) and
`OssStorage` (an Aliyun OSS bucket through oss2, as the original's UploadOss).
"""
import errno
import logging
import os
import re
import secrets
import shutil
import tempfile
from urllib.parse import urlsplit

import oss2
import oss2.exceptions

from imchat.service.errors import BadGateway as StorageRefused
from imchat.service.errors import BadRequest, NotFound, TooLarge, UnsupportedMediaType
from imchat.service.errors import Unavailable as StorageUnavailable
from imchat.service.mediatypes import (ACCEPTED_HINT, BY_EXTENSION, SNIFF_BYTES, file_media_type,
                                      sniff_media_type)

log = logging.getLogger(__name__)

# Copy in blocks of this size, so an upload never sits whole in memory.
CHUNK_BYTES = 64 * 1024
# Stored names: 128 random bits in hex, then the extension of the detected type.
NAME_BYTES = 16
# OSS keys live under this folder, as in the original (`mnt/<name>`).
OSS_FOLDER = 'mnt'
# A file (media 10) is `<random>.f.<ext>`, whatever its extension: it is never served
# as media, only as a download.
STORED_NAME = re.compile(r'[0-9a-f]{%d}\.(?:(%s)|f\.([a-z0-9]{1,10}))(?![.a-z0-9])' % (
    NAME_BYTES * 2, '|'.join(BY_EXTENSION)))


def media_type_of_name(name):
    """The media type a stored name (`<random>.<ext>`, or a file's `<random>.f.<ext>`)
    is served as; NotFound otherwise."""
    match = STORED_NAME.fullmatch(name or '')
    if not match:
        raise NotFound('no such file')
    if match.group(2):
        return file_media_type(match.group(2))
    return BY_EXTENSION[match.group(1)]


def new_name(media):
    return '{}.{}'.format(secrets.token_hex(NAME_BYTES), media.extension)


class Upload:
    """A checked upload: its content in a temporary file, its size and its type."""

    def __init__(self, file, size, media):
        self.file = file
        self.size = size
        self.media = media

    def close(self):
        self.file.close()


def spool_upload(stream, max_bytes, as_file=None):
    """Copy `stream` to a temporary file in blocks, refusing as soon as it passes
    `max_bytes`, and recognise its type (`as_file`: a file's MediaType, kept as it is).
    Raises BadRequest (empty), TooLarge, UnsupportedMediaType."""
    spool = tempfile.TemporaryFile()
    try:
        size = 0
        head = b''
        while True:
            block = stream.read(CHUNK_BYTES)
            if not block:
                break
            size += len(block)
            if size > max_bytes:
                raise TooLarge('file: larger than the limit of {}'.format(
                    describe_size(max_bytes)), field='file')
            if len(head) < SNIFF_BYTES:
                head += block[:SNIFF_BYTES - len(head)]
            _write_spool(spool, block)
        if size == 0:
            raise BadRequest('file: is empty', field='file')
        media = as_file or sniff_media_type(head)
        if media is None:
            raise UnsupportedMediaType('file: the content is not an accepted format; {}'.format(
                ACCEPTED_HINT), field='file')
        spool.seek(0)
        return Upload(spool, size, media)
    except BaseException:
        spool.close()
        raise


def _write_spool(spool, block):
    try:
        spool.write(block)
    except OSError as error:
        log.error('upload: cannot write a temporary file: %s', error.strerror or error)
        raise StorageUnavailable('storage: the file could not be received ({}); please try '
                                 'again later'.format(_disk_trouble(error)))


def _disk_trouble(error):
    if error.errno in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC)):
        return 'the disk is full'
    return 'the disk cannot be written'


class Storage:
    """Where uploads are kept. A backend implements `save(upload) -> url`."""

    kind = None
    # The scheme://host[:port] files are served from when it is not the app's own
    # (pages must allow it, and the web client must trust it, to show media inline).
    media_origin = None

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes

    def store(self, stream):
        """Check the file read from `stream` and keep it; return its URL. Raises
        BadRequest, TooLarge, UnsupportedMediaType, StorageUnavailable, StorageRefused."""
        upload = spool_upload(stream, self.max_bytes)
        try:
            return self.save(upload)
        finally:
            upload.close()

    def save(self, upload):
        raise NotImplementedError

    def stored_files(self):
        """Yield (stored name, modified time in seconds since the epoch) of every file."""
        raise NotImplementedError

    def remove(self, name):
        """Delete one stored file (gone already is fine)."""
        raise NotImplementedError


def name_of_url(url):
    """The stored name at the end of a URL this storage handed out, or None."""
    name = (url or '').rsplit('/', 1)[-1]
    return name if STORED_NAME.fullmatch(name) else None


def describe_size(count):
    for unit, scale in (('MB', 1024 * 1024), ('KB', 1024)):
        if count >= scale and count % scale == 0:
            return '{} {}'.format(count // scale, unit)
    return '{} bytes'.format(count)


class LocalStorage(Storage):
    """Files in one folder on this machine, served back at `<url_prefix>/<name>`."""

    kind = 'local'

    def __init__(self, folder, max_bytes, url_prefix='/mnt'):
        super().__init__(max_bytes)
        self.folder = os.path.abspath(folder)
        self.url_prefix = url_prefix

    def save(self, upload):
        """Store the upload under a new random name and return its URL.
        Raises StorageUnavailable when the folder cannot be written (disk full)."""
        name = new_name(upload.media)
        path = os.path.join(self.folder, name)
        created = False
        try:
            os.makedirs(self.folder, exist_ok=True)
            # 'x': never replace a file, however unlikely a repeated name is.
            with open(path, 'xb') as target:
                created = True
                shutil.copyfileobj(upload.file, target, CHUNK_BYTES)
        except OSError as error:
            if created:
                _remove_quietly(path)
            log.error('upload: cannot write %s: %s', path, error.strerror or error)
            raise StorageUnavailable('storage: the file could not be stored ({}); '
                                     'please try again later'.format(_disk_trouble(error)))
        return '{}/{}'.format(self.url_prefix, name)

    def stored_files(self):
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if STORED_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                yield entry.name, entry.stat(follow_symlinks=False).st_mtime

    def remove(self, name):
        media_type_of_name(name)  # never anything but a stored name
        _remove_quietly(os.path.join(self.folder, name))

    def path_of(self, name):
        """The file behind a stored name, and its media type. Raises NotFound."""
        media = media_type_of_name(name)
        path = os.path.join(self.folder, name)
        if not os.path.isfile(path):
            raise NotFound('no such file')
        return path, media


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


class OssStorage(Storage):
    """Objects in an Aliyun OSS bucket, at `mnt/<name>`, read publicly from the bucket."""

    kind = 'oss'

    def __init__(self, endpoint, bucket, access_key_id, access_key_secret, max_bytes,
                 region='', public_url='', connect_timeout=30):
        super().__init__(max_bytes)
        if '://' not in endpoint:
            endpoint = 'https://' + endpoint
        self.endpoint = endpoint.rstrip('/')
        self.bucket_name = bucket
        # oss2 logs each request's headers (the access key id among them) at DEBUG and
        # error bodies at INFO: keep it at WARNING so a verbose root logger never shows them.
        logging.getLogger('oss2').setLevel(logging.WARNING)
        if region:
            # Signature v4 binds each request to its region; OSS asks for it in new regions.
            auth = oss2.AuthV4(access_key_id, access_key_secret)
        else:
            auth = oss2.Auth(access_key_id, access_key_secret)
        self.bucket = oss2.Bucket(auth, self.endpoint, bucket, connect_timeout=connect_timeout,
                                  region=region or None)
        self.public_url = public_url.rstrip('/') if public_url else self._bucket_url()
        parts = urlsplit(self.public_url)
        self.media_origin = '{}://{}'.format(parts.scheme, parts.netloc)

    def _bucket_url(self):
        parts = urlsplit(self.endpoint)
        if oss2.utils.is_ip_or_localhost(parts.netloc):
            # An address has no per-bucket host name: the bucket goes in the path.
            return '{}://{}/{}'.format(parts.scheme, parts.netloc, self.bucket_name)
        return '{}://{}.{}'.format(parts.scheme, self.bucket_name, parts.netloc)

    def save(self, upload):
        """Put the upload in the bucket under a new random key and return its URL.
        Raises StorageUnavailable (OSS unreachable) or StorageRefused (OSS said no)."""
        key = '{}/{}'.format(OSS_FOLDER, new_name(upload.media))
        try:
            headers = {'Content-Type': upload.media.mime}
            if upload.media.kind == 'file':
                headers['Content-Disposition'] = 'attachment'
            self.bucket.put_object(key, upload.file, headers=headers)
        except oss2.exceptions.RequestError as error:
            # The wrapped requests exception names only the host and the cause.
            log.error('upload: OSS at %s unreachable: %s', self.endpoint,
                      type(error.exception).__name__)
            raise StorageUnavailable('storage: the file store cannot be reached; '
                                     'please try again later')
        except oss2.exceptions.OssError as error:
            # Log the code and request id only: OSS error bodies can quote the key id.
            log.error('upload: OSS refused %s: status %s, code %s, request id %s',
                      key, error.status, error.code or '-', error.request_id or '-')
            code = re.sub(r'[^A-Za-z0-9]', '', str(error.code or ''))[:64]
            raise StorageRefused('storage: the file store refused the file ({}); {}'.format(
                code or 'status {}'.format(error.status), _refusal_hint(code)))
        return '{}/{}'.format(self.public_url, key)

    def stored_files(self):
        prefix = OSS_FOLDER + '/'
        for info in oss2.ObjectIterator(self.bucket, prefix=prefix):
            name = info.key[len(prefix):]
            if STORED_NAME.fullmatch(name):
                yield name, info.last_modified

    def remove(self, name):
        media_type_of_name(name)  # never anything but a stored name
        self.bucket.delete_object('{}/{}'.format(OSS_FOLDER, name))


def _refusal_hint(code):
    if code in ('SignatureDoesNotMatch', 'InvalidAccessKeyId', 'AccessDenied',
                'RequestTimeTooSkewed'):
        return "the server's OSS credentials or clock need checking"
    if code == 'NoSuchBucket':
        return "the server's OSS bucket setting needs checking"
    return 'please try again later'


def make_storage(config):
    """The storage that `config` (STORAGE and its settings) asks for.
    Raises ValueError naming the setting that is missing or wrong."""
    kind = (config.get('STORAGE') or 'local').strip().lower()
    if kind == 'local':
        return LocalStorage(config['UPLOAD_DIR'], config['UPLOAD_MAX_BYTES'])
    if kind == 'oss':
        missing = [name for name in ('OSS_ENDPOINT', 'OSS_BUCKET', 'OSS_ACCESS_KEY_ID',
                                     'OSS_ACCESS_KEY_SECRET') if not config.get(name)]
        if missing:
            raise ValueError('IMCHAT_STORAGE=oss needs ' + ', '.join(
                'IMCHAT_' + name for name in missing))
        return OssStorage(config['OSS_ENDPOINT'], config['OSS_BUCKET'],
                          config['OSS_ACCESS_KEY_ID'], config['OSS_ACCESS_KEY_SECRET'],
                          config['UPLOAD_MAX_BYTES'], region=config.get('OSS_REGION') or '',
                          public_url=config.get('OSS_PUBLIC_URL') or '')
    raise ValueError('IMCHAT_STORAGE={!r} is not valid: use local or oss'.format(kind))
