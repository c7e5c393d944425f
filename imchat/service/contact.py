"""Friends and communities: befriending, joining, leaving, kicking, handing a
community over. Each change that open connections must feel at once is a named event
(`joined`, `unfriended`, `left`) the wiring in imchat.services connects. See
docs/architecture.md.
"""
from pony.orm import commit, db_session, select

from imchat.model.entities import CONTACT_COMMUNITY, CONTACT_FRIEND
from imchat.model.stream import take_ids
from imchat.service.conversation import close_group_conversation, open_group_conversation
from imchat.service.errors import BadRequest, Conflict, Forbidden, NotFound
from imchat.util.clock import now_ms
from imchat.util.signal import Signal


class ContactService:
    def __init__(self, db, max_communities):
        self.db = db
        self.max_communities = max_communities
        # (user_id, community_id) after a join commits: the user's open connections get
        # the group's messages at once (service.delivery, at the join's place in the ids).
        self.joined = Signal('joined')
        # (user_id, friend_id) after an unfriending, (user_id, community_id) after a
        # leave or kick commits: open connections lose the permission at once (on every
        # node, relayed by the bus).
        self.unfriended = Signal('unfriended')
        self.left = Signal('left')

    def add_friend(self, owner_id, dst_id):
        """Make two users friends, both directions in one transaction.
        Raises BadRequest (oneself), NotFound, Conflict (already friends)."""
        if owner_id == dst_id:
            raise BadRequest('you cannot add yourself as a friend', field='dstid',
                             reason='contact.self')
        with db_session:
            if not self.db.User.exists(id=dst_id):
                raise NotFound('no user {}'.format(dst_id), field='dstid', reason='not_found.user')
            Contact = self.db.Contact
            if Contact.exists(ownerid=owner_id, cate=CONTACT_FRIEND, dstid=dst_id):
                raise Conflict('user {} is already your friend'.format(dst_id), field='dstid',
                               reason='contact.already_friends')
            now = now_ms()
            Contact(ownerid=owner_id, dstid=dst_id, cate=CONTACT_FRIEND, createat=now)
            if not Contact.exists(ownerid=dst_id, cate=CONTACT_FRIEND, dstid=owner_id):
                Contact(ownerid=dst_id, dstid=owner_id, cate=CONTACT_FRIEND, createat=now)

    def delete_friend(self, owner_id, dst_id):
        """End a friendship, both directions; the history stays. Raises NotFound."""
        with db_session:
            deleted = self.db.Contact.select(
                lambda c: c.cate == CONTACT_FRIEND and (
                    (c.ownerid == owner_id and c.dstid == dst_id)
                    or (c.ownerid == dst_id and c.dstid == owner_id))).delete(bulk=True)
            if not deleted:
                raise NotFound('user {} is not your friend'.format(dst_id), field='dstid',
                               reason='contact.not_friends')
        self.unfriended.emit(owner_id, dst_id)

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
                               .format(self.max_communities), reason='community.too_many_owned')
            community = self.db.Community(name=name, ownerid=owner_id, icon=icon or '',
                                          memo=memo or '', cate=cate or 0, createat=now_ms())
            community.flush()
            joined = self._last_msgid()
            self.db.Contact(ownerid=owner_id, dstid=community.id, cate=CONTACT_COMMUNITY,
                            createat=community.createat, joined_msgid=joined)
            open_group_conversation(self.db, owner_id, community.id, joined)
            view = community.to_dict()
        self.joined.emit(owner_id, view['id'])
        return view

    def join_community(self, user_id, community_id):
        """Join a community; joining twice is harmless. Raises NotFound."""
        with db_session:
            if not self.db.Community.exists(id=community_id):
                raise NotFound('no community {}'.format(community_id), field='dstid',
                               reason='not_found.community')
            Contact = self.db.Contact
            if not Contact.exists(ownerid=user_id, cate=CONTACT_COMMUNITY, dstid=community_id):
                joined = self._last_msgid()
                Contact(ownerid=user_id, dstid=community_id, cate=CONTACT_COMMUNITY,
                        createat=now_ms(), joined_msgid=joined)
                open_group_conversation(self.db, user_id, community_id, joined)
                commit()
        self.joined.emit(user_id, community_id)

    def quit_community(self, user_id, community_id):
        """Leave a community; its owner may only when no one else is left (the community
        then goes). Raises NotFound, Conflict."""
        with db_session:
            community = self._community(community_id)
            self._membership(user_id, community_id, 'you are', 'dstid')
            if community.ownerid == user_id:
                if self.db.Contact.exists(lambda c: c.cate == CONTACT_COMMUNITY
                                          and c.dstid == community_id and c.ownerid != user_id):
                    raise Conflict('you own community {}: transfer it to another member '
                                   'before leaving'.format(community_id), field='dstid',
                                   reason='community.owner_must_transfer')
                community.delete()
            self._remove_member(user_id, community_id)
        self.left.emit(user_id, community_id)

    def kick(self, owner_id, community_id, member_id):
        """The owner removes a member. Raises NotFound, Forbidden, BadRequest."""
        with db_session:
            self._owned(owner_id, community_id)
            if member_id == owner_id:
                raise BadRequest('you cannot kick yourself: transfer the community, then '
                                 'leave it', field='memberid', reason='community.kick_self')
            self._membership(member_id, community_id, 'user {} is'.format(member_id),
                             'memberid')
            self._remove_member(member_id, community_id)
        self.left.emit(member_id, community_id)

    def transfer(self, owner_id, community_id, member_id):
        """The owner hands the community to a member.
        Raises NotFound, Forbidden, BadRequest, Conflict (they own the most allowed)."""
        with db_session:
            community = self._owned(owner_id, community_id)
            if member_id == owner_id:
                raise BadRequest('you already own community {}'.format(community_id),
                                 field='memberid', reason='community.already_owner')
            self._membership(member_id, community_id, 'user {} is'.format(member_id),
                             'memberid')
            owned = self.db.Community.select(lambda c: c.ownerid == member_id).count()
            if owned >= self.max_communities:
                raise Conflict('user {} already owns {} communities, the most allowed'
                               .format(member_id, self.max_communities), field='memberid',
                               reason='community.too_many_owned')
            community.ownerid = member_id

    def _community(self, community_id):
        community = self.db.Community.get(id=community_id)
        if community is None:
            raise NotFound('no community {}'.format(community_id), field='dstid',
                               reason='not_found.community')
        return community

    def _owned(self, owner_id, community_id):
        community = self._community(community_id)
        if community.ownerid != owner_id:
            raise Forbidden('only the owner of community {} may do that'.format(community_id),
                            reason='community.owner_only')
        return community

    def _membership(self, user_id, community_id, who, field):
        membership = self.db.Contact.get(ownerid=user_id, cate=CONTACT_COMMUNITY,
                                         dstid=community_id)
        if membership is None:
            raise NotFound('{} not a member of community {}'.format(who, community_id),
                           field=field, reason='community.not_member')
        return membership

    def _remove_member(self, user_id, community_id):
        self._membership(user_id, community_id, '', '').delete()
        close_group_conversation(self.db, user_id, community_id)

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
                raise NotFound('no community {}'.format(community_id), field='dstid',
                               reason='not_found.community')
            ids = select(c.ownerid for c in self.db.Contact
                         if c.cate == CONTACT_COMMUNITY and c.dstid == community_id)[:]
        if viewer_id not in ids:
            raise Forbidden('only members of community {} may list its members'
                            .format(community_id), reason='community.not_member')
        return sorted(ids)

    def co_member_ids(self, user_id):
        """Everyone who shares a community with `user_id` (them excluded)."""
        with db_session:
            mine = select(c.dstid for c in self.db.Contact
                          if c.ownerid == user_id and c.cate == CONTACT_COMMUNITY)[:]
            if not mine:
                return []
            return select(c.ownerid for c in self.db.Contact
                          if c.cate == CONTACT_COMMUNITY and c.dstid in mine
                          and c.ownerid != user_id)[:]

    def member_ids_of(self, community_id):
        """Ids of a community's members, for the server's own use (no viewer check)."""
        with db_session:
            return select(c.ownerid for c in self.db.Contact
                          if c.cate == CONTACT_COMMUNITY and c.dstid == community_id)[:]

    def _last_msgid(self):
        """The join's own place in the message stream: messages after it are the
        member's. Taken like a message id (it locks the stream until the commit), so
        every message below it committed before the join and every one above after; the
        bus delivers the join in that order on every node."""
        return take_ids(self.db, 'message', 1)[0]
