"""Issue 22's services (requests, blocks, mutes, community roles and joins, reports,
operators' actions, the ban watch), built in one place: `Services` builds them before
the services that take their rules (Permissions takes `roles.room_refusal`, UserService
`ban_refusal`) and connects their events in `_connect_events`. See docs/contacts.md.

Blocking ends a friendship through `contacts.unfriended` (relayed by the bus); a rule
change of a community (`roles.rules_changed`, relayed as `rules`) makes every node's
permission cache ask again; cmd 17 events go out through the delivery seam's `push`,
which reaches every node.
"""
from dataclasses import dataclass

from imchat.service.blocks import Blocks
from imchat.service.joins import CommunityJoins
from imchat.service.mutes import ChatMutes
from imchat.service.reports import Reports
from imchat.service.requests import FriendRequests
from imchat.service.roles import CommunityRoles


@dataclass
class Safety:
    blocks: Blocks
    friend_requests: FriendRequests
    mutes: ChatMutes
    roles: CommunityRoles
    joins: CommunityJoins
    reports: Reports


def build_safety(config, db, contacts, push) -> Safety:
    """The services of issue 22 over `contacts`; `push(user_ids, frame)` sends a cmd 17
    event to whoever is connected, on every node."""
    blocks = Blocks(db, contacts)
    roles = CommunityRoles(db, contacts, push, config['MAX_ADMINS'], config['DEFAULT_JOINMODE'])
    return Safety(
        blocks=blocks,
        friend_requests=FriendRequests(
            db, contacts, blocks, push, config['FRIEND_REQUESTS'], config['REQUESTS_PER_DAY'],
            config['REQUEST_REPEATS'], config['NEW_ACCOUNT_REQUESTS']),
        mutes=ChatMutes(db, push),
        roles=roles,
        joins=CommunityJoins(db, contacts, roles, push, config['JOINS_PER_HOUR']),
        reports=Reports(db, contacts))
