"""Blocking (issue 22): a person I block can no longer message me, request me, see my
presence or typing, or my profile's `online`. Blocking a friend ends the friendship;
unblocking restores nothing but the possibility. The blocked person is never told:
nothing of this module sends them an event or an error naming the block."""
import logging

from pony.orm import db_session, select

from imchat.model.entities import CONTACT_FRIEND
from imchat.service.errors import BadRequest, NotFound
from imchat.util.clock import now_ms

log = logging.getLogger(__name__)


class Blocks:
    def __init__(self, db, contacts):
        self.db = db
        self.contacts = contacts

    def block(self, owner_id: int, dst_id: int) -> None:
        """Block `dst_id`; blocking twice is harmless. Raises BadRequest, NotFound."""
        if owner_id == dst_id:
            raise BadRequest('you cannot block yourself', field='dstid', reason='contact.self')
        with db_session:
            db = self.db
            if not db.User.exists(id=dst_id):
                raise NotFound('no user {}'.format(dst_id), field='dstid', reason='not_found.user')
            if not db.Block.exists(ownerid=owner_id, dstid=dst_id):
                db.Block(ownerid=owner_id, dstid=dst_id, createat=now_ms())
            ended = db.Contact.select(
                lambda c: c.cate == CONTACT_FRIEND and (
                    (c.ownerid == owner_id and c.dstid == dst_id)
                    or (c.ownerid == dst_id and c.dstid == owner_id))).delete(bulk=True)
            db.FriendRequest.select(
                lambda r: (r.fromid == owner_id and r.toid == dst_id)
                or (r.fromid == dst_id and r.toid == owner_id)).delete(bulk=True)
        if ended:
            # As an unfriending: permission caches and typing on every node (the bus
            # relays the event).
            self.contacts.unfriended.emit(owner_id, dst_id)
        log.info('user %s blocked user %s', owner_id, dst_id)

    def unblock(self, owner_id: int, dst_id: int) -> None:
        """Raises NotFound when `dst_id` is not blocked."""
        with db_session:
            row = self.db.Block.get(ownerid=owner_id, dstid=dst_id)
            if row is None:
                raise NotFound('you do not block user {}'.format(dst_id), field='dstid',
                               reason='contact.not_blocked')
            row.delete()

    def blocked_ids(self, owner_id: int) -> list:
        with db_session:
            return sorted(select(b.dstid for b in self.db.Block if b.ownerid == owner_id)[:])

    def blocks(self, owner_id: int, dst_id: int) -> bool:
        """Whether `owner_id` blocks `dst_id`."""
        with db_session:
            return self.db.Block.exists(ownerid=owner_id, dstid=dst_id)

    def hides_online(self, viewer_id, user_id) -> bool:
        """Whether `user_id`'s `online` is hidden from `viewer_id` (they are blocked)."""
        if viewer_id is None or viewer_id == user_id:
            return False
        return self.blocks(user_id, viewer_id)

    def blockers_among(self, viewer_id, user_ids) -> set:
        """Those of `user_ids` who block `viewer_id`."""
        ids = list(user_ids)
        if viewer_id is None or not ids:
            return set()
        with db_session:
            return set(select(b.ownerid for b in self.db.Block
                              if b.dstid == viewer_id and b.ownerid in ids)[:])
