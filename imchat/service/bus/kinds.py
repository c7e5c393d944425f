"""What nodes say to each other on the bus: one class per kind, each with its NAME and
its line format (Synapse's replication/tcp/commands.py). See docs/architecture.md.

Every kind travels as one JSON object (UTF-8, no spaces); `t` is the kind's NAME and
`n` the sending node (a node ignores what it sent itself):

    m       {"t":"m","n":node,"i":msgid,"w":message_wire}
            a committed message, on the channels of its recipients (u:<user> for
            both people of a 1:1 conversation, c:<community> for a group). Without "w"
            (UDP, too big for a datagram) it is a reference: read it from the database.
    r       {"t":"r","n":node,"a":first,"b":last}
            every id of first..last was published (on `all`, after the messages).
    j       {"t":"j","n":node,"i":msgid,"u":user,"c":community}
            a join, at its place in the id order (on u:<user>).
    logout  {"t":"logout","k":token_key,"n":node}
            a login ended: close the connections opened with it (on `all`).
    relay   {"t":"relay","k":event,"a":[args],"n":node}
            a named service event (unfriend, leave) raised on another node (on `all`).
    push    {"t":"push","u":[user ids],"f":frame text,"n":node}
            an event never stored (typing, receipt, presence) for those users' connections.

UDP packs several messages into one datagram, {"n":node,"e":[kinds],"a":first,"b":last},
where "a".."b" is the range it covers (a hello has only "n" and an empty "e"); see
bus.udp.
"""
import json
from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, Optional, Type


def dumps(obj: dict) -> bytes:
    """A kind's line: compact JSON in UTF-8."""
    return json.dumps(obj, ensure_ascii=False, separators=(',', ':')).encode('utf-8')


@dataclass
class Message:
    NAME: ClassVar[str] = 'm'
    node: str
    msgid: int
    wire: Optional[dict] = None  # None: a reference, read from the database

    def to_wire(self) -> dict:
        line = {'t': self.NAME, 'n': self.node, 'i': self.msgid}
        if self.wire is not None:
            line['w'] = self.wire
        return line

    @classmethod
    def from_wire(cls, line: dict) -> 'Message':
        return cls(line['n'], line['i'], line.get('w'))


@dataclass
class Range:
    NAME: ClassVar[str] = 'r'
    node: str
    first: int
    last: int

    def to_wire(self) -> dict:
        return {'t': self.NAME, 'n': self.node, 'a': self.first, 'b': self.last}

    @classmethod
    def from_wire(cls, line: dict) -> 'Range':
        return cls(line['n'], line['a'], line['b'])


@dataclass
class Join:
    NAME: ClassVar[str] = 'j'
    node: str
    msgid: int
    user_id: int
    community_id: int

    def to_wire(self) -> dict:
        return {'t': self.NAME, 'n': self.node, 'i': self.msgid, 'u': self.user_id,
                'c': self.community_id}

    @classmethod
    def from_wire(cls, line: dict) -> 'Join':
        return cls(line['n'], line['i'], line['u'], line['c'])


@dataclass
class Logout:
    NAME: ClassVar[str] = 'logout'
    node: str
    token_key: str

    def to_wire(self) -> dict:
        return {'t': self.NAME, 'k': self.token_key, 'n': self.node}

    @classmethod
    def from_wire(cls, line: dict) -> 'Logout':
        return cls(line['n'], line['k'])


@dataclass
class Relay:
    NAME: ClassVar[str] = 'relay'
    node: str
    event: str
    args: List = field(default_factory=list)

    def to_wire(self) -> dict:
        return {'t': self.NAME, 'k': self.event, 'a': list(self.args), 'n': self.node}

    @classmethod
    def from_wire(cls, line: dict) -> 'Relay':
        return cls(line['n'], line['k'], line['a'])


@dataclass
class Push:
    NAME: ClassVar[str] = 'push'
    node: str
    user_ids: List[int]
    frame: str  # the frame's text, as the connections get it

    def to_wire(self) -> dict:
        return {'t': self.NAME, 'u': list(self.user_ids), 'f': self.frame, 'n': self.node}

    @classmethod
    def from_wire(cls, line: dict) -> 'Push':
        return cls(line['n'], line['u'], line['f'])


KINDS: Dict[str, Type] = {kind.NAME: kind for kind in (Message, Range, Join, Logout, Relay,
                                                       Push)}


def parse(line: dict):
    """The kind a received line is, or None for one this node does not know (a newer
    node's: ignored, as before)."""
    kind = KINDS.get(line.get('t'))
    return None if kind is None else kind.from_wire(line)


def to_bytes(kind) -> bytes:
    """The bytes of one kind on the bus."""
    return dumps(kind.to_wire())
