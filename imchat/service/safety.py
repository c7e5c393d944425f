"""Issue 22's services, built and hooked into the app's in one place, so the hooks into
existing code are all listed here (Services calls `install` once, after the bus):

- `messages.room_refusal`: the writer asks roles before storing a community message
  (a muted member, announcements only); `roles.rules_listeners` then make every node's
  permission cache forget (relayed as `rules` on the bus).
- `users.login_refusal`: a banned user's login is refused with the reason.
- `users.online_hidden`: a blocked viewer never sees `online` in /user/find.
- `contacts.leave_listeners`: a member's role goes when they leave.
- `hub.presence_listeners`: the ban watch runs while this node has connections.
Blocking ends a friendship through `contacts.unfriend_listeners` (already relayed);
cmd 17 events go through `hub.push`, which the bus carries to every node.
"""
from imchat.model import CONTACT_COMMUNITY
from imchat.service.admin import Admin
from imchat.service.banwatch import BanWatch
from imchat.service.blocks import Blocks
from imchat.service.joins import CommunityJoins
from imchat.service.mutes import ChatMutes
from imchat.service.reports import Reports
from imchat.service.requests import FriendRequests
from imchat.service.roles import CommunityRoles


def install(services) -> None:
    config = services.config

    def push(user_ids, frame):
        # Late-bound: the bus replaces hub.push to reach every node.
        services.hub.push(list(user_ids), frame)

    contacts, messages = services.contacts, services.messages
    services.blocks = Blocks(services.db, contacts)
    services.friend_requests = FriendRequests(
        services.db, contacts, services.blocks, push, config['FRIEND_REQUESTS'],
        config['REQUESTS_PER_DAY'], config['REQUEST_REPEATS'], config['NEW_ACCOUNT_REQUESTS'])
    services.mutes = ChatMutes(services.db)
    services.roles = CommunityRoles(services.db, contacts, push, config['MAX_ADMINS'],
                                    config['DEFAULT_JOINMODE'])
    services.joins = CommunityJoins(services.db, contacts, services.roles, push,
                                    config['JOINS_PER_HOUR'])
    services.reports = Reports(services.db, contacts)
    services.admin = Admin(services.db, services.users, contacts, messages, push)
    # An operator's ban from another process, without a bus (service/banwatch.py).
    services.ban_watch = BanWatch(services.db, services.hub, config['BAN_POLL'])
    services.hub.presence_listeners.append(services.ban_watch.presence_changed)

    messages.room_refusal = services.roles.room_refusal
    services.users.login_refusal = services.admin.login_refusal
    services.users.online_hidden = services.blocks.hides_online
    contacts.leave_listeners.append(services.roles.left)

    def rules_changed(user_id, community_id):
        member_ids = ([user_id] if user_id else
                      contacts.member_ids_of(community_id))
        for member_id in member_ids:
            messages.forget_permission(CONTACT_COMMUNITY, member_id, community_id)

    services.roles.rules_listeners.append(rules_changed)
    if services.bus is not None:
        services.bus.relay('rules', services.roles.rules_listeners)
