"""Reading stored messages back: a conversation's history page (/chat/history), the
backlog a (re)connecting client lacks, where its replay starts, and each user's resume
point. Every read is its own short transaction. See docs/architecture.md.
"""
from typing import Iterator, List, Optional, Tuple

import gevent
from pony.orm import db_session, desc, exists, select

from imchat.model.entities import CONTACT_COMMUNITY
from imchat.protocol import CMD_ROOM_MSG, CMD_SINGLE_MSG, STORED_EVENTS, encode
from imchat.service.errors import BadRequest, Forbidden, NotFound
from imchat.service.rich_read import decorate
from imchat.transport.codec import OutgoingFrame

# Stored messages read per query when a connection catches up: small pages, with a
# yield between them, so forty reconnects at once do not starve everyone else.
BACKLOG_PAGE = 100
HISTORY_DEFAULT = 30
HISTORY_MAX = 100


class MessageReader:
    def __init__(self, db) -> None:
        self.db = db

    def _visible_to(self, user_id):
        """A Pony query of the messages `user_id` may read."""
        Message, Contact = self.db.Message, self.db.Contact
        return select(
            m for m in Message
            if ((m.cmd == CMD_SINGLE_MSG or (m.cmd in STORED_EVENTS and m.media == CMD_SINGLE_MSG))
                and (m.dstid == user_id or m.userid == user_id))
            or ((m.cmd == CMD_ROOM_MSG or (m.cmd in STORED_EVENTS and m.media == CMD_ROOM_MSG))
                and exists(
                c for c in Contact if c.ownerid == user_id and c.cate == CONTACT_COMMUNITY
                and c.dstid == m.dstid and m.id > c.joined_msgid)))

    def backlog(self, user_id: int, since: int) -> Iterator[List[Tuple[int, OutgoingFrame]]]:
        """Yield pages of (msgid, OutgoingFrame) stored for `user_id` after `since`,
        in id order; each page in its own short transaction."""
        cursor = since
        while True:
            with db_session:
                rows = self._visible_to(user_id).filter(lambda m: m.id > cursor).order_by(
                    lambda m: m.id)[:BACKLOG_PAGE]
                wires = decorate(self.db, user_id, [row.to_wire() for row in rows])
                page = [(wire['msgid'], encode(wire)) for wire in wires]
            if not page:
                return
            yield page
            cursor = page[-1][0]
            if len(page) < BACKLOG_PAGE:
                return
            gevent.sleep(0)

    def replay_start(self, user_id: int, since: int, most: int) -> int:
        """Where a replay after `since` starts so that it holds at most `most` messages
        (the newest): `since` itself when there are no more than that (or `most` is 0)."""
        if not most:
            return since
        with db_session:
            skipped = self._visible_to(user_id).filter(lambda m: m.id > since).order_by(
                lambda m: desc(m.id))[most:most + 1]
            return skipped[0].id if skipped else since

    def resume_point(self, user_id: int) -> int:
        """The highest id the user's connections were written (0 for none, or no user)."""
        with db_session:
            user = self.db.User.get(id=user_id)
            return user.synced_msgid if user else 0

    def save_resume_point(self, user_id: int, msgid: int) -> None:
        """Raise the user's resume point to `msgid`, never lower it. One conditional
        UPDATE: a user's connections often close at once (a network drop, a logout), and
        a read-then-write would lose the race (Pony's OptimisticCheckError)."""
        with db_session:
            self.db.execute('UPDATE {} SET synced_msgid = $msgid WHERE id = $user_id '
                            'AND synced_msgid < $msgid'
                            .format(self.db.provider.quote_name('user')))

    def history(self, user_id: int, cmd: int, dstid: int, before: Optional[int] = None,
                limit: int = HISTORY_DEFAULT) -> List[dict]:
        """A page of a conversation, oldest first, with ids below `before`.
        Raises BadRequest, NotFound, Forbidden."""
        limit = max(1, min(limit or HISTORY_DEFAULT, HISTORY_MAX))
        with db_session:
            Message = self.db.Message
            if cmd == CMD_SINGLE_MSG:
                if not self.db.User.exists(id=dstid):
                    raise NotFound('no user {}'.format(dstid), field='dstid')
                query = select(m for m in Message if m.cmd == CMD_SINGLE_MSG and (
                    (m.userid == user_id and m.dstid == dstid)
                    or (m.userid == dstid and m.dstid == user_id)))
            elif cmd == CMD_ROOM_MSG:
                membership = self.db.Contact.get(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                                 dstid=dstid)
                if membership is None:
                    if not self.db.Community.exists(id=dstid):
                        raise NotFound('no community {}'.format(dstid), field='dstid')
                    raise Forbidden('you are not a member of community {}'.format(dstid))
                joined = membership.joined_msgid
                query = select(m for m in Message if m.cmd == CMD_ROOM_MSG and m.dstid == dstid
                               and m.id > joined)
            else:
                raise BadRequest('cmd: must be 10 (a user) or 11 (a community)', field='cmd')
            if before:
                query = query.filter(lambda m: m.id < before)
            rows = query.order_by(lambda m: desc(m.id))[:limit]
            return decorate(self.db, user_id, [row.to_wire() for row in reversed(rows)])
