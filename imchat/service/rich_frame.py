"""Reading the frames of richer messages (docs/protocol.md, "Richer messages"): an edit
(cmd 18), a reaction (cmd 19), and the optional fields of a message (cmd 10, 11):
`replyto`, `mentions` and `forward`. Only their shape is checked here; who may do what
is decided in the writer's transaction (service.rich).
"""
import unicodedata
from typing import Optional, Tuple

from imchat.model.entities import CONTENT_MAX, EMOJI_MAX
from imchat.protocol import CMD_EDIT, CMD_ROOM_MSG
from imchat.service.fields import ClientId, FrameError, int_field, is_int
from imchat.util.jsonsafe import has_surrogate

# Member ids one message may mention.
MENTIONS_MAX = 50
EVERYONE = -1
# Code points one emoji may have: a family of four joined by ZWJ is seven.
EMOJI_POINTS_MAX = 10
_ZWJ, _VS15, _VS16, _KEYCAP = '\u200d', '\ufe0e', '\ufe0f', '\u20e3'


class Extras:
    """The optional fields of a message, and what the writer adds once it has checked
    them: `reply` (the quote of the answered message) and `forwarded`."""

    __slots__ = ('replyto', 'mentions', 'forward', 'reply', 'forwarded')

    def __init__(self, replyto: int = 0, mentions: Tuple[int, ...] = (), forward: int = 0):
        self.replyto = replyto
        self.mentions = mentions
        self.forward = forward
        self.reply = None
        self.forwarded = 0

    def stored_mentions(self) -> str:
        return ','.join(str(member) for member in self.mentions)


class TargetFrame:
    """An edit or a reaction: stored as a row of the message stream whose `media` is the
    target message's cmd and `amount` its id (service.writer reads these attributes)."""

    __slots__ = ('client_id', 'cmd', 'msgid', 'content', 'memo', 'pic', 'target', 'dstid')
    url = ''
    extra = None

    def __init__(self, client_id, cmd, msgid, content, memo=''):
        self.client_id = client_id
        self.cmd = cmd
        self.msgid = msgid
        self.content = content
        self.memo = memo
        self.pic = ''
        # The conversation, filled in by the writer's check from the target message.
        self.target = 0
        self.dstid = 0

    @property
    def media(self):
        return self.target

    @property
    def amount(self):
        return self.msgid


def parse_target_event(raw: dict, cmd: int, client_id: ClientId) -> TargetFrame:
    """A TargetFrame from a client's cmd 18 or 19 frame. Raises FrameError."""
    msgid = int_field(raw, 'msgid', client_id, minimum=1)
    if cmd == CMD_EDIT:
        content = raw.get('content')
        if not isinstance(content, str) or not content.strip():
            raise FrameError('content: an edit needs the new text', client_id)
        if len(content) > CONTENT_MAX:
            raise FrameError('content is too long: at most {} characters'.format(CONTENT_MAX),
                             client_id)
        if '\x00' in content or has_surrogate(content):
            raise FrameError('content must be valid Unicode text without NUL', client_id)
        return TargetFrame(client_id, cmd, msgid, content)
    emoji = raw.get('emoji')
    if not isinstance(emoji, str) or not is_one_emoji(emoji):
        raise FrameError('emoji must be one emoji', client_id)
    on = raw.get('on', 1)
    if on not in (0, 1) or type(on) is bool:
        raise FrameError('on must be 1 (set) or 0 (remove)', client_id)
    return TargetFrame(client_id, cmd, msgid, emoji, memo=str(on))


def parse_extras(raw: dict, cmd: int, client_id: ClientId) -> Optional[Extras]:
    """The optional fields of a message frame, or None when it has none (the usual case,
    checked with three lookups). Raises FrameError."""
    replyto, mentions, forward = raw.get('replyto'), raw.get('mentions'), raw.get('forward')
    if not replyto and not mentions and not forward:
        return None
    extras = Extras()
    if replyto:
        extras.replyto = int_field(raw, 'replyto', client_id, minimum=1)
    if forward:
        extras.forward = int_field(raw, 'forward', client_id, minimum=1)
    if mentions:
        if cmd != CMD_ROOM_MSG:
            raise FrameError('mentions: only community messages (cmd 11) mention members',
                             client_id)
        if not isinstance(mentions, list) or len(mentions) > MENTIONS_MAX:
            raise FrameError('mentions must be a list of at most {} member ids'.format(
                MENTIONS_MAX), client_id)
        if not all(is_int(m) and (m >= 1 or m == EVERYONE) for m in mentions):
            raise FrameError('mentions must hold member ids, or -1 for everyone', client_id)
        extras.mentions = (EVERYONE,) if EVERYONE in mentions else tuple(sorted(set(mentions)))
    return extras


def _is_pictograph(char):
    point = ord(char)
    return (unicodedata.category(char) == 'So' or 0x1F000 <= point <= 0x1FAFF
            or char in '\u00a9\u00ae\u203c\u2049\u2122\u2139\u3030\u303d')


def is_one_emoji(text: str) -> bool:
    """True when `text` is a single emoji (one grapheme): a pictograph with its variation
    selector, skin tone and tags, several joined by ZWJ, a flag of two regional
    indicators, or a keycap. Not a general grapheme segmenter: enough to refuse text."""
    if not text or len(text) > EMOJI_POINTS_MAX or len(text.encode('utf-8')) > EMOJI_MAX:
        return False
    if all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in text):
        return len(text) == 2
    if text[0] in '0123456789#*':
        return text[1:] in (_KEYCAP, _VS16 + _KEYCAP)
    expect_base = True
    for char in text:
        point = ord(char)
        if expect_base:
            if not _is_pictograph(char):
                return False
            expect_base = False
        elif char == _ZWJ:
            expect_base = True
        elif not (char in (_VS15, _VS16) or 0x1F3FB <= point <= 0x1F3FF
                  or 0xE0020 <= point <= 0xE007F):
            return False
    return not expect_base
