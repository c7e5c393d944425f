"""Recognising uploaded media: the accepted types, what a file's first bytes show it
to be, and whether a client's file name or extension names an accepted type.

Pure functions of their arguments (no I/O): service.storage reads the bytes and keeps
the files. Only the content decides a file's type; the client's words are checked
against the same list and decide nothing else. Containers are walked only as deep as
a real file nests them (WebM to its track entries; MP4 refused past eight boxes deep),
so a crafted one costs a bounded amount of work.
"""
import os
import re
from typing import Optional

from imchat.service.errors import BadRequest, UnsupportedMediaType

# Enough of the start of a file to recognise it: a WebM's track list sits within the
# first few hundred bytes of what browsers record, 64 KiB leaves a wide margin.
SNIFF_BYTES = 64 * 1024


class MediaType:
    """An accepted type: its MIME type, the extension stored names get, and its kind
    (image, audio or video)."""

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


# Files (media 10): any of these the operator allows (IMCHAT_FILE_TYPES), kept as the
# client named them (no content check: they are only ever served as downloads).
DEFAULT_FILE_TYPES = ('pdf', 'doc', 'docx', 'xls', 'xlsx', 'ppt', 'pptx', 'odt', 'ods', 'odp',
                      'rtf', 'txt', 'csv', 'md', 'zip', '7z', 'gz', 'tar', 'mp3', 'm4a',
                      'wav', 'ogg', 'flac', 'aac', 'opus', 'mp4', 'webm', 'mov', 'mkv')
# Types a browser may be told, since it never runs them; the rest are octet-stream.
SAFE_FILE_MIMES = {'pdf': 'application/pdf', 'txt': 'text/plain; charset=utf-8',
                   'csv': 'text/plain; charset=utf-8', 'md': 'text/plain; charset=utf-8',
                   'zip': 'application/zip'}
_FILE_EXTENSION = re.compile(r'[a-z0-9]{1,10}')
# Characters of a file's display name kept.
FILE_NAME_MAX = 200


def file_types(setting: str) -> frozenset:
    """The allowed file extensions from IMCHAT_FILE_TYPES ('pdf,zip'; empty: the default
    list). Raises ValueError for one that is not 1-10 letters and digits."""
    names = [part.strip().lstrip('.').lower() for part in (setting or '').split(',')]
    names = [name for name in names if name] or list(DEFAULT_FILE_TYPES)
    for name in names:
        if not _FILE_EXTENSION.fullmatch(name):
            raise ValueError('IMCHAT_FILE_TYPES: {!r} is not a file extension'.format(name))
    return frozenset(names)


def file_media_type(extension: str) -> MediaType:
    """How a stored file of that extension is kept (`f.<ext>`) and served."""
    return MediaType(SAFE_FILE_MIMES.get(extension, 'application/octet-stream'),
                     'f.' + extension, 'file')


def display_name(name: Optional[str]) -> str:
    """A client's file name as display text: the last part of any path, without control
    characters, at most FILE_NAME_MAX characters; never used as a path."""
    base = (name or '').replace('\\', '/').rsplit('/', 1)[-1]
    base = ''.join(c for c in base if c.isprintable()).strip().strip('.')
    return base[-FILE_NAME_MAX:] or 'file'


def file_type_of_name(field: str, name: Optional[str], allowed: frozenset) -> MediaType:
    """The MediaType a file upload named `name` is kept as. Raises UnsupportedMediaType
    (415, `upload.file_type`) when its extension is not allowed."""
    base = display_name(name)
    extension = base.rsplit('.', 1)[1].lower() if '.' in base else ''
    if extension not in allowed:
        raise UnsupportedMediaType('{}: .{} files are not accepted; send one of {}'.format(
            field, extension[:16], ', '.join(sorted(allowed))), field=field,
            reason='upload.file_type')
    return file_media_type(extension)


def download_name(name: Optional[str], extension: str) -> str:
    """The name a download is saved under: the display name, ending in its extension."""
    base = ''.join(c for c in display_name(name) if c not in '"\\;')
    if not base.lower().endswith('.' + extension):
        base = (base if base != 'file' else 'file') + '.' + extension
    return base


def check_client_name(field: str, name: Optional[str]) -> None:
    """Refuse (UnsupportedMediaType, 415) a client file name whose extension is not on
    the list; a name without one (a recorded blob is sent as "blob") passes."""
    base = os.path.basename((name or '').replace('\\', '/'))
    if '.' in base:
        check_client_extension(field, base.rsplit('.', 1)[1])


def check_client_extension(field: str, extension: str) -> None:
    """Refuse (UnsupportedMediaType, 415) an extension (`png`, `.mp3`) that is not on
    the list."""
    extension = extension.strip().lstrip('.').lower()
    if extension and extension not in CLIENT_EXTENSIONS:
        raise UnsupportedMediaType('{}: .{} files are not accepted; {}'.format(
            field, extension[:16], ACCEPTED_HINT), field=field)


def sniff_media_type(head: bytes) -> Optional[MediaType]:
    """The MediaType that the first bytes of a file show, or None. Raises BadRequest
    when its MP4 boxes nest deeper than any real file's."""
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
