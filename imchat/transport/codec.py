"""The RFC 6455 codec: opcodes, the standard close codes, and the bytes of a frame.

Pure functions and values, no socket: what the adapters (`gevent_adapter`,
`simple_adapter`) write and read is built and taken apart here. The application's own
close codes (4000-4999) are `imchat.protocol`'s.
"""
import struct

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
# Codes a peer may never send in a close frame (RFC 6455 7.4.1: no status, abnormal
# closure, TLS failure); a close echoing one says 1000 instead.
CLOSE_RESERVED = (1005, 1006, 1015)


def frame_header(opcode: int, length: int) -> bytes:
    """The header of a final, unmasked frame (what a server sends)."""
    first = 0x80 | opcode
    if length < 126:
        return struct.pack('!BB', first, length)
    if length < 1 << 16:
        return struct.pack('!BBH', first, 126, length)
    return struct.pack('!BBQ', first, 127, length)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR a client frame's payload with its 4-byte mask, at C speed via big integers."""
    n = len(payload)
    if not n:
        return b''
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, 'little') ^ int.from_bytes(key, 'little')).to_bytes(
        n, 'little')


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the code, then at most 120 bytes of the reason."""
    data = (reason or '').encode('utf-8')[:120]
    return struct.pack('!H', code) + data


def close_code(payload: bytes) -> int:
    """The code a peer's close frame carries (1000 when it has none)."""
    if len(payload) >= 2:
        return struct.unpack('!H', payload[:2])[0]
    return CLOSE_NORMAL


class OutgoingFrame:
    """One text message encoded once; the same bytes go to every recipient."""

    __slots__ = ('payload', '_frame')

    def __init__(self, payload: bytes):
        self.payload = payload
        self._frame = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = frame_header(OPCODE_TEXT, len(self.payload)) + self.payload
        return self._frame


class RawFrame:
    """Bytes that are already a whole frame (a pong, a ping, a close)."""

    __slots__ = ('frame', 'payload')

    def __init__(self, frame: bytes):
        self.frame = frame
        self.payload = None


def control_frame(opcode: int, payload: bytes = b'') -> RawFrame:
    """A whole control frame (ping, pong, close) ready to write."""
    return RawFrame(frame_header(opcode, len(payload)) + payload)
