from pony.orm import commit, db_session, select

from imchat.model import CONTACT_COMMUNITY, CONTACT_FRIEND, take_ids
from imchat.service.errors import BadRequest, Conflict, Forbidden, NotFound
from imchat.util.clock import now_ms


class ContactService:
    def __init__(self, db, max_communities):
        self.db = db
        self.max_communities = max_communities
        # Called with (user_id, community_id) after a join commits; the chat hub
        # listens so the user's open connections get the group's messages at once.
        self.join_listeners = []

    def add_friend(self, owner_id, dst_id):
        """Make two users friends, both directions in one transaction.
        Raises BadRequest (oneself), NotFound, Conflict (already friends)."""
        if owner_id == dst_id:
            raise BadRequest('you cannot add yourself as a friend', field='dstid')
        with db_session:
            if not self.db.User.exists(id=dst_id):
                raise NotFound('no user {}'.format(dst_id), field='dstid')
            Contact = self.db.Contact
            if Contact.exists(ownerid=owner_id, cate=CONTACT_FRIEND, dstid=dst_id):
                raise Conflict('user {} is already your friend'.format(dst_id), field='dstid')
            now = now_ms()
            Contact(ownerid=owner_id, dstid=dst_id, cate=CONTACT_FRIEND, createat=now)
            if not Contact.exists(ownerid=dst_id, cate=CONTACT_FRIEND, dstid=owner_id):
                Contact(ownerid=dst_id, dstid=owner_id, cate=CONTACT_FRIEND, createat=now)

    def friend_ids(self, owner_id):
        with db_session:
            return select(c.dstid for c in self.db.Contact
                          if c.ownerid == owner_id and c.cate == CONTACT_FRIEND)[:]

    def is_friend(self, owner_id, dst_id):
        with db_session:
            return self.db.Contact.exists(ownerid=owner_id, cate=CONTACT_FRIEND, dstid=dst_id)

    def create_community(self, owner_id, name, icon='', memo='', cate=0):
        """Create a community owned and joined by `owner_id`; returns it.
        Raises Conflict when the owner already has the maximum."""
        with db_session:
            owned = self.db.Community.select(lambda c: c.ownerid == owner_id).count()
            if owned >= self.max_communities:
                raise Conflict('you already own {} communities, the most allowed'
                               .format(self.max_communities))
            community = self.db.Community(name=name, ownerid=owner_id, icon=icon or '',
                                          memo=memo or '', cate=cate or 0, createat=now_ms())
            community.flush()
            self.db.Contact(ownerid=owner_id, dstid=community.id, cate=CONTACT_COMMUNITY,
                            createat=community.createat, joined_msgid=self._last_msgid())
            view = community.to_dict()
        self._notify_join(owner_id, view['id'])
        return view

    def join_community(self, user_id, community_id):
        """Join a community; joining twice is harmless. Raises NotFound."""
        with db_session:
            if not self.db.Community.exists(id=community_id):
                raise NotFound('no community {}'.format(community_id), field='dstid')
            Contact = self.db.Contact
            if not Contact.exists(ownerid=user_id, cate=CONTACT_COMMUNITY, dstid=community_id):
                Contact(ownerid=user_id, dstid=community_id, cate=CONTACT_COMMUNITY,
                        createat=now_ms(), joined_msgid=self._last_msgid())
                commit()
        self._notify_join(user_id, community_id)

    def load_communities(self, user_id):
        """The communities `user_id` belongs to, oldest first."""
        with db_session:
            ids = select(c.dstid for c in self.db.Contact
                         if c.ownerid == user_id and c.cate == CONTACT_COMMUNITY)[:]
            communities = select(c for c in self.db.Community if c.id in ids).order_by(
                lambda c: c.id)[:]
            return [c.to_dict() for c in communities]

    def community_ids(self, user_id):
        with db_session:
            return select(c.dstid for c in self.db.Contact
                          if c.ownerid == user_id and c.cate == CONTACT_COMMUNITY)[:]

    def is_member(self, user_id, community_id):
        with db_session:
            return self.db.Contact.exists(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                          dstid=community_id)

    def member_ids(self, viewer_id, community_id):
        """Ids of a community's members; only members may ask. Raises NotFound, Forbidden."""
        with db_session:
            if not self.db.Community.exists(id=community_id):
                raise NotFound('no community {}'.format(community_id), field='dstid')
            ids = select(c.ownerid for c in self.db.Contact
                         if c.cate == CONTACT_COMMUNITY and c.dstid == community_id)[:]
        if viewer_id not in ids:
            raise Forbidden('only members of community {} may list its members'
                            .format(community_id))
        return sorted(ids)

    def _last_msgid(self):
        """The join's own place in the message stream: messages after it are the
        member's. Taken like a message id (it locks the stream until the commit), so
        every message below it committed before the join and every one above after; the
        bus delivers the join in that order on every node."""
        return take_ids(self.db, 'message', 1)[0]

    def _notify_join(self, user_id, community_id):
        for listener in self.join_listeners:
            listener(user_id, community_id)
