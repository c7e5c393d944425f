"""Everything one app instance owns, built in dependency order and wired where it can
be read: each service gets what it needs in its constructor, and the named events
between them (util.signal) are connected in `_connect_events`. See
docs/architecture.md.

The seams with two implementations are chosen here, once: `Delivery`
(service.delivery: this process's hub, or the bus) and `Presence` (service.presence:
the hub's connections, or the deployment's).
"""
import logging
from types import SimpleNamespace

from functools import partial

from imchat.model.entities import CONTACT_COMMUNITY, define_database
from imchat.model.engine import bind_database, make_probe, multirow_insert_ids_are_consecutive
from imchat.model.migrate import migrate
from imchat.protocol import CLOSE_TOO_MANY
from imchat.service.availability import PROBE_TIMEOUT, DatabaseWatch, unavailable_cause
from imchat.service.bus import default_node_id, make_bus, prepare_streams
from imchat.service.admin import Admin, ban_refusal
from imchat.service.banwatch import BanWatch
from imchat.service.contact import ContactService
from imchat.service.conversation import ConversationService
from imchat.service.delivery import Delivery, LocalDelivery
from imchat.service.events import EventService
from imchat.service.hub import Hub
from imchat.service.limits import (ConnectionCap, HandshakeSlots, LoginGuard, MemoryStore,
                                   MessageRate)
from imchat.service.mediatypes import file_types
from imchat.service.metrics import Metrics
from imchat.service.permissions import Permissions
from imchat.service.presence import HubPresence, Presence
from imchat.service.push import PushService
from imchat.service.reader import MessageReader
from imchat.service.safety import build_safety
from imchat.service.search import SearchService
from imchat.service.search_index import SearchIndexer
from imchat.service.shared_limits import shared_store
from imchat.service.storage import make_storage
from imchat.service.uploads import UploadService
from imchat.service.user import UserService
from imchat.service.writer import MessageWriter

log = logging.getLogger(__name__)


class Services:
    """Everything one app instance owns: its database and the services over it."""

    def __init__(self, config) -> None:
        self.config = config
        # First: a storage setting that is missing or wrong stops the start at once.
        self.storage = make_storage(config)
        self.metrics = Metrics(node=config.get('NODE_ID') or default_node_id())
        self.db = define_database()
        db_timeout = config['DB_TIMEOUT'] or None
        self.db_kind = bind_database(self.db, config['DATABASE_URL'],
                                     pool_size=config['DB_POOL_SIZE'], timeout=db_timeout)
        pool = self.db.provider.pool
        self.db_watch = DatabaseWatch(
            make_probe(config['DATABASE_URL'], min(db_timeout or PROBE_TIMEOUT, PROBE_TIMEOUT)),
            on_outage=pool.disconnect)
        pool.watch = self.db_watch
        # Versioned changes to existing tables first (imchat/model/migrate.py says how).
        self.applied_migrations = migrate(config['DATABASE_URL'])
        # The original's Sync2: create any missing table at start.
        self.db.generate_mapping(create_tables=True)
        prepare_streams(self.db)

        # Who is connected here, then (several nodes) the bus that joins this node to
        # the others: None for one process.
        self.reader = MessageReader(self.db)
        self.hub = Hub(self.metrics, config['WS_QUEUE_SIZE'], config['WS_PING_INTERVAL'],
                       config['WS_IDLE_TIMEOUT'], save_resume_point=self._save_resume_point,
                       message_rate=config['WS_RATE'], message_burst=config['WS_BURST'],
                       send_timeout=config['WS_SEND_TIMEOUT'])
        self.bus = make_bus(config, self.db, self.hub, self.metrics)
        self.delivery: Delivery = (LocalDelivery(self.hub) if self.bus is None
                                   else self.bus.delivery)
        self.presence: Presence = (HubPresence(self.hub) if self.bus is None
                                   else self.bus.presence)

        # Abuse limits (imchat.service.limits): counted per process, or once for the
        # whole deployment when a bus joins several nodes.
        self.limit_store = MemoryStore()
        guard = LoginGuard(self.limit_store if self.bus is None else shared_store(self.bus),
                           config['LOGIN_ATTEMPTS'], config['LOGIN_WINDOW'],
                           config['LOGIN_RATE'], config['REGISTER_RATE'], config['PROXY_COUNT'])
        self.users = UserService(self.db, config['TOKEN_TTL'], config['PASSWD_COST'],
                                 config['LOGIN_ATTEMPTS'], config['LOGIN_WINDOW'],
                                 presence=self.presence, guard=guard,
                                 login_refusal=partial(ban_refusal, self.db))
        self.contacts = ContactService(self.db, config['MAX_COMMUNITIES'])
        # Who may reach whom (issue 22): requests, blocks, mutes, community roles and
        # joins, reports; their cmd 17 events go wherever the person is connected.
        safety = build_safety(config, self.db, self.contacts, self.delivery.push)
        (self.blocks, self.friend_requests, self.mutes, self.roles, self.joins,
         self.reports) = (safety.blocks, safety.friend_requests, safety.mutes, safety.roles,
                          safety.joins, safety.reports)
        self.permissions = Permissions(self.db, config['RECALL_SECONDS'],
                                       room_refusal=self.roles.room_refusal,
                                       edit_seconds=config['EDIT_SECONDS'])
        self.writer = MessageWriter(self.db, self.delivery, self.permissions, self.metrics,
                                    self.db_watch, multirow_insert_ids_are_consecutive(self.db))
        self.message_rate = MessageRate(self.hub)
        self.reaction_rate = MessageRate(SimpleNamespace(
            message_rate=config['REACTION_RATE'], message_burst=config['REACTION_BURST']))
        self.ws_cap = ConnectionCap(config['WS_PER_USER'], close=lambda client: (
            client.close_politely(CLOSE_TOO_MANY, 'too many connections of this user: '
                                  'the oldest is closed')))
        self.handshakes = HandshakeSlots(config['WS_HANDSHAKES'])
        self.uploads = UploadService(self.db, self.storage, config['UPLOAD_QUOTA_BYTES'],
                                     file_types(config['FILE_TYPES']))
        self.conversations = ConversationService(self.db)
        self.conversations.rebuild_if_missing()
        # Search: a follower indexes what the writer stores (docs/search.md).
        self.search_index = SearchIndexer(self.db, config['SEARCH_POLL_MS'] / 1000)
        self.search = SearchService(self.db)
        if config['SEARCH_POLL_MS']:
            self.search_index.start()
        self.events = EventService(self.hub, self.delivery, self.presence, self.conversations,
                                   self.permissions, self.contacts, config['PRESENCE_GRACE'])
        self.admin = Admin(self.db, self.users, self.contacts, self.writer, self.permissions,
                           self.delivery.push)
        # An operator's ban from another process, without a bus (service/banwatch.py).
        self.ban_watch = BanWatch(self.db, self.hub, config['BAN_POLL'])
        # Web Push (issue 21, docs/push.md): notifications to people not looking, sent
        # by the node that stored the message.
        self.push = PushService(self.db, self.hub, self.metrics, config, self.mutes,
                                node=None if self.bus is None else self.bus.node)
        self._connect_events()

    def _connect_events(self) -> None:
        hub, bus = self.hub, self.bus
        hub.presence_changed.connect(self.events.presence_changed)
        # A join reaches connections (on every node) at its place in the id order.
        self.contacts.joined.connect(self.delivery.join)
        self.contacts.unfriended.connect(self.permissions.unfriended)
        self.contacts.left.connect(self.permissions.left_community)
        self.contacts.left.connect(hub.leave_community)
        self.users.logged_out.connect(hub.end_session)
        self.users.profile_changed.connect(self.events.profile_changed)
        self.contacts.left.connect(self.roles.left)
        self.roles.rules_changed.connect(self._community_rules_changed)
        hub.presence_changed.connect(self.ban_watch.presence_changed)
        # Web Push: what was stored, who looks, what was read, who asked, who left.
        push = self.push
        self.writer.batch_delivered.connect(push.messages_stored)
        hub.connected.connect(push.attention.connected)
        hub.disconnected.connect(push.attention.disconnected)
        self.events.visibility_changed.connect(push.attention.visibility_changed)
        self.events.conversation_read.connect(push.conversation_read)
        self.friend_requests.requested.connect(push.friend_requested)
        # Only where the logout happened: the subscriptions are in the shared database.
        self.users.logged_out.connect(push.login_ended, relayed=False)
        # The community subscriptions the planner keeps: read again after a membership
        # or a logout, here or (relayed) on another node.
        self.contacts.joined.connect(push.subscriptions.forget)
        self.contacts.left.connect(push.subscriptions.forget)
        self.users.logged_out.connect(push.subscriptions.forget)
        if bus is not None:
            # This node hears the channels its connections need.
            hub.connected.connect(bus.attach)
            hub.disconnected.connect(bus.detach)
            # Unfriending, leaving, kicks and logouts act on every node (permission
            # caches, the hub's registries, open connections), as they do here.
            bus.relay('unfriend', self.contacts.unfriended)
            bus.relay('leave', self.contacts.left)
            bus.relay('logout', self.users.logged_out)
            bus.relay('rules', self.roles.rules_changed)
            self.contacts.left.connect(bus.left_community)

    def _community_rules_changed(self, user_id: int, community_id: int) -> None:
        # A member's (or, with 0, every member's) right to post may have changed.
        member_ids = [user_id] if user_id else self.contacts.member_ids_of(community_id)
        for member_id in member_ids:
            self.permissions.forget_permission(CONTACT_COMMUNITY, member_id, community_id)

    def _save_resume_point(self, user_id: int, msgid: int) -> None:
        try:
            self.reader.save_resume_point(user_id, msgid)
        except Exception as error:
            cause = unavailable_cause(error)
            if cause is None:
                raise
            # Logged once for the whole outage; the client resumes with `since`.
            self.db_watch.failed(cause)

    def shutdown(self, timeout: float = 5) -> None:
        """Stop gracefully: close every WebSocket with 1001 (going away) and finish
        storing the messages in flight, within about `timeout` seconds."""
        self.writer.stop(timeout=timeout / 2)
        self.hub.close_all(timeout=timeout / 2)
        self.close()

    def close(self) -> None:
        # Every watcher of this app stops with it: one left polling a database that is
        # gone would log its errors into whatever runs next in this process.
        if getattr(self, 'ban_watch', None) is not None:
            self.ban_watch.stop()
        if getattr(self, 'writer', None) is not None:
            # Its watcher of commits that may have come late, among the rest (a second
            # stop after shutdown's finds nothing left to do).
            self.writer.stop(timeout=1)
        if getattr(self, 'push', None) is not None:
            self.push.stop()
        if getattr(self, 'bus', None) is not None:
            self.bus.stop()
        self.db_watch.stop()
        if getattr(self, 'search_index', None) is not None:
            self.search_index.stop()
        self.db.disconnect()
        provider = self.db.provider
        if provider is not None:
            provider.pool.disconnect()
