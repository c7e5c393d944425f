"""What a push carries (docs/push.md, "Notifications" in PROTOCOL.md): JSON under
PAYLOAD_MAX bytes, so with RFC 8291's overhead it fits any push service's 4 KB. A
long text is cut; nothing secret (token, password, key) is ever put in."""
import orjson

from imchat.protocol import MEDIA_EMOJI, MEDIA_TEXT

PAYLOAD_MAX = 2900
# Characters of a message's text shown at most (a notification shows a few lines).
PREVIEW_CHARS = 500
KIND_MESSAGE = 'message'
KIND_READ = 'read'
KIND_REQUEST = 'request'


def _fit(payload: dict, text_field: str = 'text') -> bytes:
    data = orjson.dumps(payload)
    while len(data) > PAYLOAD_MAX and payload.get(text_field):
        text = payload[text_field]
        payload[text_field] = text[:max(0, len(text) - (len(data) - PAYLOAD_MAX) - 1)] + '…' \
            if len(text) > 1 else ''
        data = orjson.dumps(payload)
    if len(data) > PAYLOAD_MAX and payload.get('from'):
        payload['from'] = dict(payload['from'], avatar='')
        data = orjson.dumps(payload)
    return data


def sender_view(user) -> dict:
    return {'id': user.id, 'nickname': user.nickname, 'avatar': user.avatar or ''}


def message_payload(wire: dict, target: int, dstid: int, sender: dict, preview: bool,
                    count: int) -> bytes:
    """A notification of `wire` in the conversation (target, dstid) as its recipient
    sees it; `count` messages merged into it. Without `preview`, no name and no text."""
    text = ''
    if preview and wire.get('media') in (MEDIA_TEXT, MEDIA_EMOJI):
        text = wire.get('content') or ''
        if len(text) > PREVIEW_CHARS:
            text = text[:PREVIEW_CHARS - 1] + '…'
    payload = {'kind': KIND_MESSAGE, 'target': target, 'dstid': dstid,
               'msgid': wire['msgid'], 'media': wire.get('media', 0),
               'from': sender if preview else {'id': sender['id'], 'nickname': '',
                                               'avatar': ''},
               'text': text, 'count': count}
    return _fit(payload)


def read_payload(target: int, dstid: int, msgid: int) -> bytes:
    return orjson.dumps({'kind': KIND_READ, 'target': target, 'dstid': dstid, 'msgid': msgid})


def request_payload(sender: dict, preview: bool) -> bytes:
    return _fit({'kind': KIND_REQUEST,
                 'from': sender if preview else dict(sender, nickname='', avatar='')})


def topic(target: int, dstid: int) -> str:
    """RFC 8030 Topic (at most 32 base64url characters): a newer push about the same
    conversation replaces one the push service has not delivered yet."""
    return 'c{}-{}'.format(target, dstid)
