"""Reading a client's event frame (cmd 12-15): read positions, typing and recalls.
Read and typing are answered at once and never stored (service.events); a recall is
stored through the message writer as a message row with no body (service.recall)."""
from imchat.protocol import (CMD_PRESENCE, CMD_READ, CMD_RECALL, CMD_ROOM_MSG, CMD_SINGLE_MSG,
                             CMD_TYPING)
from imchat.service.fields import ClientId, FrameError, int_field

# Event cmds a client may send; read and typing are answered at once, never stored.
EVENT_CMDS = (CMD_READ, CMD_TYPING, CMD_RECALL, CMD_PRESENCE)
UNSTORED_CMDS = (CMD_READ, CMD_TYPING)


class EventFrame:
    __slots__ = ('client_id', 'cmd', 'target', 'dstid', 'msgid')
    # A recall is stored as a message row with no body (see service.recall).
    content = pic = url = memo = ''
    extra = None

    def __init__(self, client_id, cmd, target=0, dstid=0, msgid=0):
        self.client_id = client_id
        self.cmd = cmd
        self.target = target
        self.dstid = dstid
        self.msgid = msgid

    @property
    def media(self):
        return self.target

    @property
    def amount(self):
        return self.msgid


def parse_event(raw: dict, cmd: int, client_id: ClientId) -> EventFrame:
    """An EventFrame from a client's cmd 12-15 frame. Raises FrameError."""
    if cmd == CMD_PRESENCE:
        raise FrameError('cmd 15 (presence) is sent by the server only', client_id)
    if cmd == CMD_RECALL:
        return EventFrame(client_id, cmd, msgid=int_field(raw, 'msgid', client_id, minimum=1))
    if cmd == CMD_TYPING:
        return EventFrame(client_id, cmd, CMD_SINGLE_MSG,
                          int_field(raw, 'dstid', client_id, minimum=1))
    target = int_field(raw, 'target', client_id, minimum=0)
    if target not in (CMD_SINGLE_MSG, CMD_ROOM_MSG):
        raise FrameError('target must be 10 (a user) or 11 (a community)', client_id)
    return EventFrame(client_id, cmd, target, int_field(raw, 'dstid', client_id, minimum=1),
                      int_field(raw, 'msgid', client_id, minimum=1))
