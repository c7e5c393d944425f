"""Uploaded files: what is accepted, and where it is kept.

An upload is accepted only when its content is an allowed image, audio or video
format, recognised by its first bytes; the client's file name and `filetype` are
checked against the same list but never decide anything else. The stored name is
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

log = logging.getLogger('imchat')

# Copy in blocks of this size, so an upload never sits whole in memory.
CHUNK_BYTES = 64 * 1024
# Enough of the start of a file to recognise it: a WebM's track list sits within the
# first few hundred bytes of what browsers record, 64 KiB leaves a wide margin.
SNIFF_BYTES = 64 * 1024
# Stored names: 128 random bits in hex, then the extension of the detected type.
NAME_BYTES = 16
# OSS keys live under this folder, as in the original (`mnt/<name>`).
OSS_FOLDER = 'mnt'


class MediaType:
    def __init__(self, mime, extension, kind):
        self.mime = mime
        self.extension = extension
        self.kind = kind

    def __repr__(self):
        return 'MediaType({!r})'.format(self.mime)


PNG = MediaType('image/png', 'png', 'image')
JPEG = MediaType('image/jpeg', 'jpg', 'image')
GIF = MediaType('image/gif', 'gif', 'image')
WEBP = MediaType('image/webp', 'webp', 'image')
MP3 = MediaType('audio/mpeg', 'mp3', 'audio')
OGG = MediaType('audio/ogg', 'ogg', 'audio')
WEBM_AUDIO = MediaType('audio/webm', 'weba', 'audio')
WAV = MediaType('audio/wav', 'wav', 'audio')
M4A = MediaType('audio/mp4', 'm4a', 'audio')
AAC = MediaType('audio/aac', 'aac', 'audio')
MP4 = MediaType('video/mp4', 'mp4', 'video')
WEBM_VIDEO = MediaType('video/webm', 'webm', 'video')

MEDIA_TYPES = (PNG, JPEG, GIF, WEBP, MP3, OGG, WEBM_AUDIO, WAV, M4A, AAC, MP4, WEBM_VIDEO)
BY_EXTENSION = {media.extension: media for media in MEDIA_TYPES}
# Extensions a client's file name or `filetype` may carry: the stored ones and their
# common spellings. Anything else (.html, .svg, .exe) is refused before the content is read.
CLIENT_EXTENSIONS = frozenset(BY_EXTENSION) | {'jpeg', 'jpe', 'oga', 'opus', 'm4v'}
ACCEPTED_HINT = ('send an image (png, jpeg, gif, webp), audio (mp3, ogg, webm, wav, m4a, aac) '
                 'or video (mp4, webm)')
STORED_NAME = re.compile(r'[0-9a-f]{%d}\.(%s)' % (NAME_BYTES * 2, '|'.join(BY_EXTENSION)))


def media_type_of_name(name):
    """The media type a stored name (`<random>.<ext>`) is served as; NotFound otherwise."""
    match = STORED_NAME.fullmatch(name or '')
    if not match:
        raise NotFound('no such file')
    return BY_EXTENSION[match.group(1)]


def check_client_name(field, name):
    """Refuse (415) a client file name whose extension is not on the list; a name
    without one (a recorded blob is sent as "blob") passes."""
    base = os.path.basename((name or '').replace('\\', '/'))
    if '.' in base:
        check_client_extension(field, base.rsplit('.', 1)[1])


def check_client_extension(field, extension):
    """Refuse (415) an extension (`png`, `.mp3`) that is not on the list."""
    extension = extension.strip().lstrip('.').lower()
    if extension and extension not in CLIENT_EXTENSIONS:
        raise UnsupportedMediaType('{}: .{} files are not accepted; {}'.format(
            field, extension[:16], ACCEPTED_HINT), field=field)


def sniff_media_type(head):
    """The MediaType that the first bytes of a file show, or None."""
    if head.startswith(b'\x89PNG\r\n\x1a\n'):
        return PNG
    if head.startswith(b'\xff\xd8\xff'):
        return JPEG
    if head[:6] in (b'GIF87a', b'GIF89a'):
        return GIF
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return WEBP
    if head[:4] == b'RIFF' and head[8:12] == b'WAVE':
        return WAV
    if head[:4] == b'OggS':
        return _sniff_ogg(head)
    if head[:4] == b'\x1a\x45\xdf\xa3':
        return _sniff_webm(head)
    if head[4:8] == b'ftyp':
        return _sniff_iso_media(head)
    if head[:3] == b'ID3':
        return MP3
    if len(head) >= 4 and head[0] == 0xff and head[1] & 0xe0 == 0xe0:
        return _sniff_mpeg_audio_frame(head)
    return None


def _sniff_ogg(head):
    # The first page carries the codec's identification header; only audio codecs
    # are on the list (an Ogg with Theora video is not).
    first_page = head[:512]
    if b'OpusHead' in first_page or b'\x01vorbis' in first_page or b'\x7fFLAC' in first_page:
        return OGG
    return None


def _sniff_iso_media(head):
    brand = head[8:12]
    if brand in (b'M4A ', b'M4B '):
        return M4A
    if brand in (b'qt  ', b'heic', b'heix', b'mif1', b'msf1', b'avif', b'crx '):
        return None  # QuickTime and still-image containers are not on the list.
    # Recorders (MediaRecorder's audio/mp4, phones' voice memos) write an ISO brand
    # for sound alone too: the track handlers tell audio from video.
    handlers = set()
    _collect_mp4_handlers(head, 0, len(head), handlers)
    if b'soun' in handlers and b'vide' not in handlers:
        return M4A
    # No video handler seen may mean the index sits at the end of the file: still MP4.
    return MP4


# Boxes on the way from the top of an MP4 to a track's handler (moov/trak/mdia/hdlr).
_MP4_CONTAINERS = (b'moov', b'trak', b'mdia')
# A real file nests them three deep; a crafted one could nest thousands (a box header is
# 8 bytes), so the walk stops well before Python's recursion limit.
_MP4_MAX_DEPTH = 8


def _collect_mp4_handlers(data, start, end, handlers, depth=0):
    if depth > _MP4_MAX_DEPTH:
        raise BadRequest('file: its MP4 boxes nest deeper than any real file', field='file')
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos:pos + 4], 'big')
        box_type = data[pos + 4:pos + 8]
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = int.from_bytes(data[pos + 8:pos + 16], 'big'), 16
        elif size == 0:
            size = end - pos  # The box runs to the end of the file.
        if size < header:
            return
        box_end = min(pos + size, end)
        if box_type in _MP4_CONTAINERS:
            _collect_mp4_handlers(data, pos + header, box_end, handlers, depth + 1)
        elif box_type == b'hdlr' and pos + header + 12 <= box_end:
            # version and flags (4), pre_defined (4), then the handler type.
            handlers.add(data[pos + header + 8:pos + header + 12])
        pos += size


def _sniff_mpeg_audio_frame(head):
    # The 11-bit frame sync, then version and layer; ADTS (AAC) is layer 0.
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    if layer == 0:
        return AAC if head[1] & 0xf6 == 0xf0 else None
    bitrate_index = head[2] >> 4
    sample_rate_index = (head[2] >> 2) & 0b11
    if version == 0b01 or bitrate_index == 0b1111 or sample_rate_index == 0b11:
        return None
    return MP3


# Matroska/WebM element ids (with their length marker bits, as they appear on disk).
_EBML = 0x1A45DFA3
_DOC_TYPE = 0x4282
_SEGMENT = 0x18538067
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_TYPE = 0x83
_CLUSTER = 0x1F43B675
_VIDEO_TRACK, _AUDIO_TRACK = 1, 2


def _read_vint(data, pos, keep_marker):
    """An EBML variable-length integer at `pos`: (value, length, all value bits set)."""
    if pos >= len(data) or data[pos] == 0:
        raise ValueError('not an EBML number')
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if pos + length > len(data):
        raise ValueError('truncated')
    value = first if keep_marker else first & (0xff >> length)
    for byte in data[pos + 1:pos + length]:
        value = (value << 8) | byte
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _ebml_children(data, start, end):
    """(id, payload start, payload end) of each element in data[start:end]; an element
    of unknown size (live recordings have one) reaches to `end`."""
    pos = start
    while pos < end:
        element_id, id_length, _ = _read_vint(data, pos, keep_marker=True)
        size, size_length, unknown = _read_vint(data, pos + id_length, keep_marker=False)
        payload = pos + id_length + size_length
        payload_end = end if unknown else min(payload + size, end)
        yield element_id, payload, payload_end
        if unknown:
            return
        pos = payload + size


def _sniff_webm(head):
    try:
        elements = _ebml_children(head, 0, len(head))
        element_id, start, end = next(elements)
        if element_id != _EBML:
            return None
        doc_type = b''
        for child_id, child_start, child_end in _ebml_children(head, start, end):
            if child_id == _DOC_TYPE:
                doc_type = head[child_start:child_end]
    except (ValueError, StopIteration):
        return None
    if doc_type != b'webm':
        return None  # Matroska (.mkv) is not on the list.
    track_types = set()
    try:
        for element_id, start, end in elements:
            if element_id == _SEGMENT:
                _collect_track_types(head, start, end, track_types)
                break
    except ValueError:
        pass  # The sniffed bytes end inside an element: judge by what was read.
    if _AUDIO_TRACK in track_types and _VIDEO_TRACK not in track_types:
        return WEBM_AUDIO
    # A WebM whose tracks are past the sniffed bytes is still a WebM: serve it as video,
    # which browsers also play in an <audio> element.
    return WEBM_VIDEO


def _collect_track_types(data, start, end, track_types):
    for child_id, child_start, child_end in _ebml_children(data, start, end):
        if child_id == _CLUSTER:
            return  # The track list always comes before the first cluster of media.
        if child_id != _TRACKS:
            continue
        for entry_id, entry_start, entry_end in _ebml_children(data, child_start, child_end):
            if entry_id != _TRACK_ENTRY:
                continue
            for field_id, field_start, field_end in _ebml_children(data, entry_start,
                                                                  entry_end):
                if field_id == _TRACK_TYPE:
                    track_types.add(int.from_bytes(data[field_start:field_end], 'big'))


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


def spool_upload(stream, max_bytes):
    """Copy `stream` to a temporary file in blocks, refusing as soon as it passes
    `max_bytes`, and recognise its type. Raises BadRequest (empty), TooLarge,
    UnsupportedMediaType."""
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
        media = sniff_media_type(head)
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
            self.bucket.put_object(key, upload.file, headers={'Content-Type': upload.media.mime})
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
