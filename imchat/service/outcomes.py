"""What became of a frame handed to the message writer, and the acknowledgement it
earns (protocol.ack_ok, protocol.ack_refused). The sender's connection (service.client.Client)
renders it once the outcome is in, in frame order; ctrl only hands the frame over.
See docs/architecture.md.
"""
from typing import Optional, Union

from imchat.protocol import ack_ok, ack_refused
from imchat.service.fields import ClientId
from imchat.transport.codec import OutgoingFrame


class Stored:
    """The frame is committed: its message's id and time."""

    __slots__ = ('msgid', 'createat')

    def __init__(self, msgid: int, createat: int) -> None:
        self.msgid = msgid
        self.createat = createat


class Refused:
    """The frame was not stored, for the reason `msg`."""

    __slots__ = ('msg',)

    def __init__(self, msg: str) -> None:
        self.msg = msg


Outcome = Union[Stored, Refused]


def acknowledgement(outcome: Outcome, client_id: ClientId) -> Optional[OutgoingFrame]:
    """The ack of a frame's outcome; None for a frame stored that carried no id."""
    if isinstance(outcome, Refused):
        return ack_refused(client_id, outcome.msg, getattr(outcome.msg, 'reason', None))
    if client_id is not None:
        return ack_ok(client_id, outcome)
    return None
