"""Checking a client's WebSocket frame against docs/protocol.md.

`parse_frame` returns a `Frame` the server may store, or raises `FrameError` with the
reason sent back in a `code: -1` acknowledgement (and the client's `id`, when the frame
was readable enough to carry one). Event frames (cmd 12-15) are read by
`service.event_frame`, edits and reactions (cmd 18, 19) and a message's optional
fields by `service.rich_frame`, on the same field rules (`service.fields`).
"""
import json

import orjson

from imchat.model.entities import CONTENT_MAX, MEMO_MAX, URL_MAX
from imchat.protocol import (CMD_ACK, CMD_EDIT, CMD_HEART, CMD_PRESENCE, CMD_REACTION,
                             CMD_READ, CMD_ROOM_MSG, CMD_SINGLE_MSG, MEDIA_CONTACT, MEDIA_CUSTOM,
                             MEDIA_EMOJI, MEDIA_FILE, MEDIA_IMAGE, MEDIA_LINK, MEDIA_NEWS,
                             MEDIA_RED_PACKET, MEDIA_TEXT, MEDIA_VIDEO, MEDIA_VOICE)
from imchat.service.event_frame import parse_event
from imchat.service.rich_frame import parse_extras, parse_target_event
from imchat.service.fields import DIGITS, MAX_ID, FrameError, int_field, is_int
from imchat.util.jsonsafe import MAX_DEPTH, has_surrogate, nesting_exceeds
from imchat.util.urls import URL_HINT, is_safe_url

# media: (fields that must be present, the URL fields it uses)
MEDIA_RULES = {
    MEDIA_TEXT: (('content',), ()),
    MEDIA_NEWS: (('content', 'url'), ('url', 'pic')),
    MEDIA_VOICE: (('url', 'amount'), ('url',)),
    MEDIA_IMAGE: (('url',), ('url', 'pic')),
    MEDIA_RED_PACKET: (('amount',), ('url',)),
    MEDIA_EMOJI: (('content',), ('url', 'pic')),
    MEDIA_LINK: (('url',), ('url', 'pic')),
    MEDIA_VIDEO: (('url',), ('url', 'pic')),
    MEDIA_CONTACT: (('content',), ('pic',)),
    MEDIA_FILE: (('url', 'content'), ('url',)),
    MEDIA_CUSTOM: ((), ('url', 'pic')),
}
MEDIA_NAMES = {MEDIA_TEXT: 'text', MEDIA_NEWS: 'news', MEDIA_VOICE: 'voice',
               MEDIA_IMAGE: 'image', MEDIA_RED_PACKET: 'red packet', MEDIA_EMOJI: 'emoji',
               MEDIA_LINK: 'link', MEDIA_VIDEO: 'video', MEDIA_CONTACT: 'contact card',
               MEDIA_FILE: 'file', MEDIA_CUSTOM: 'application-defined'}
TEXT_LIMITS = {'content': CONTENT_MAX, 'pic': URL_MAX, 'url': URL_MAX, 'memo': MEMO_MAX}
# Voice notes in seconds; red packets in cents (at most 10 million yuan).
AMOUNT_LIMITS = {MEDIA_VOICE: (1, 3600), MEDIA_RED_PACKET: (1, 10 ** 9)}
AMOUNT_MAX = 10 ** 12
CLIENT_ID_MAX = 64
# The reason of a refusal for an `id` no acknowledgement can echo (docs/protocol.md).
ID_INVALID = 'frame.id_invalid'
# A client id this long or longer, and a string, is taken as unique to its message: a
# frame sent again with it (after a connection dropped before the ack) is acknowledged
# with the stored message instead of being stored twice. Short and numeric ids, like
# the original client's constant `id: 1`, repeat, so they are never matched.
IDEMPOTENCY_KEY_MIN = 8
# Every media's `url` and `pic` are checked alike, under the one rule of util.urls:
# http(s), or a path on this server such as /mnt/x.png; never javascript:, data:, //host.
URL_FIELDS = ('url', 'pic')


def _loads(data):
    """json.loads, at C speed for the usual frame. orjson refuses what the standard
    library reads (NaN, lone surrogates) and reads integers past 64 bits as floats, so
    such frames, and any with a float at the top, are read again by json for the same
    answers as before."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
    if type(raw) is dict and float in map(type, raw.values()):
        return json.loads(data)
    return raw


def idempotency_key(client_id):
    if isinstance(client_id, str) and len(client_id) >= IDEMPOTENCY_KEY_MIN:
        return client_id
    return None


class Frame:
    __slots__ = ('client_id', 'cmd', 'dstid', 'media', 'content', 'pic', 'url', 'memo',
                 'amount', 'extra')

    def __init__(self, client_id, cmd, dstid=0, media=0, content='', pic='', url='', memo='',
                 amount=0, extra=None):
        self.client_id = client_id
        self.cmd = cmd
        self.dstid = dstid
        self.media = media
        self.content = content
        self.pic = pic
        self.url = url
        self.memo = memo
        self.amount = amount
        # service.rich_frame.Extras: replyto, mentions, forward; None for most messages.
        self.extra = extra


def _client_id(raw):
    """The frame's `id`, None when it has none. An `id` that cannot be echoed in its
    acknowledgement (a fraction, an object, an integer past 64 bits, text too long) is
    refused before anything is stored: a frame stored that no ack names would be sent
    again, and stored again, by a client waiting for one."""
    value = raw.get('id')
    if value is None or value == '':
        return None
    if is_int(value) and -MAX_ID <= value <= MAX_ID:
        return value
    if isinstance(value, str) and len(value) <= CLIENT_ID_MAX:
        if has_surrogate(value):
            # It could not be echoed in the refusal: refuse without it.
            raise FrameError('id must be valid Unicode text (a lone surrogate is not)',
                             reason=ID_INVALID)
        return value
    raise FrameError('id must be a whole number of at most 63 bits or text of at most {} '
                     'characters'.format(CLIENT_ID_MAX), reason=ID_INVALID)


def parse_frame(data, max_bytes):
    """Parse one text frame into a Frame (an EventFrame for cmd 12-15). Raises FrameError."""
    if isinstance(data, (bytes, bytearray)):
        raise FrameError('send messages as JSON text frames, not binary')
    too_large = len(data) > max_bytes and len(data.encode('utf-8')) > max_bytes
    if nesting_exceeds(data):
        raise FrameError('the frame is nested too deeply: at most {} levels'.format(MAX_DEPTH))
    try:
        raw = _loads(data)
    except (ValueError, RecursionError):
        raise FrameError('the frame is not valid JSON'
                         if not too_large else 'the frame is too large')
    if not isinstance(raw, dict):
        raise FrameError('the frame must be a JSON object')
    client_id = _client_id(raw)
    if too_large:
        raise FrameError('the frame is too large: at most {} bytes'.format(max_bytes), client_id)
    if 'cmd' not in raw:
        raise FrameError('cmd is required', client_id)
    cmd = raw['cmd']
    if isinstance(cmd, str) and DIGITS.fullmatch(cmd.strip()):
        cmd = int(cmd)
    whole = is_int(cmd)
    if cmd == CMD_HEART and whole:
        return Frame(client_id, CMD_HEART)
    if cmd == CMD_ACK and whole:
        raise FrameError('cmd 1 (acknowledgement) is sent by the server only', client_id)
    if whole and CMD_READ <= cmd <= CMD_PRESENCE:
        return parse_event(raw, cmd, client_id)
    if whole and cmd in (CMD_EDIT, CMD_REACTION):
        return parse_target_event(raw, cmd, client_id)
    if not whole or cmd not in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
        raise FrameError('unknown cmd {!r}: use 10 (to a user), 11 (to a community), 12 '
                         '(read), 13 (typing), 14 (recall), 18 (edit), 19 (reaction) or 0 '
                         '(heartbeat)'.format(cmd), client_id)
    dstid = int_field(raw, 'dstid', client_id, minimum=1)
    extra = parse_extras(raw, cmd, client_id)
    if extra is not None and extra.forward:
        # The forwarded message's media and body are copied by the writer (service.rich).
        return Frame(client_id, cmd, dstid, extra=extra)
    media = int_field(raw, 'media', client_id, minimum=0)
    if media not in MEDIA_RULES:
        raise FrameError('unknown media {}: use 1-10 or 100'.format(media), client_id)
    required, url_fields = MEDIA_RULES[media]
    values = {}
    for name, limit in TEXT_LIMITS.items():
        value = raw.get(name)
        if value is None or value == '':
            values[name] = ''  # nothing to check (most fields of most frames)
            continue
        if is_int(value):
            value = str(value)
        if not isinstance(value, str):
            raise FrameError('{} must be text'.format(name), client_id)
        if len(value) > limit:
            raise FrameError('{} is too long: at most {} characters'.format(name, limit),
                             client_id)
        if '\x00' in value:
            raise FrameError('{} must not contain NUL characters'.format(name), client_id)
        if has_surrogate(value):
            raise FrameError('{} must be valid Unicode text (a lone surrogate is not)'
                             .format(name), client_id)
        if value and name in URL_FIELDS and not is_safe_url(value):
            raise FrameError('{} {}'.format(name, URL_HINT), client_id)
        values[name] = value
    amount = 0
    if raw.get('amount') not in (None, ''):
        low, high = AMOUNT_LIMITS.get(media, (0, AMOUNT_MAX))
        amount = int_field(raw, 'amount', client_id, minimum=low, maximum=high)
    for name in required:
        present = amount if name == 'amount' else values[name].strip()
        if not present:
            raise FrameError('a {} message needs {}'.format(MEDIA_NAMES[media], name), client_id)
    if media == MEDIA_CUSTOM and not (values['content'] or values['url']):
        raise FrameError('an application-defined message needs content or url', client_id)
    return Frame(client_id, cmd, dstid, media, values['content'], values['pic'], values['url'],
                 values['memo'], amount, extra)
