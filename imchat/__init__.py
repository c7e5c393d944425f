"""imchat: a self-hostable instant-messaging server and web client."""
import logging
import os

import click
from flask import Flask

from imchat.config import load_config
from imchat.model.entities import define_database
from imchat.model.engine import (bind_database, describe_database_url, make_probe,
                                 multirow_insert_ids_are_consecutive)
from imchat.model.migrate import applied, migrate
from imchat.service.availability import PROBE_TIMEOUT, DatabaseWatch, unavailable_cause
from imchat.service.contact import ContactService
from imchat.service.conversation import ConversationService
from imchat.service.events import EventService
from imchat.service.hub import Hub
from imchat.service.limits import (ConnectionCap, HandshakeSlots, LoginGuard, MemoryStore,
                                   MessageRate)
from imchat.service.message import MessageService
from imchat.service.search import SearchService
from imchat.service.search_index import SearchIndexer
from imchat.protocol import CLOSE_TOO_MANY, encode
from imchat.service.bus import default_node_id, make_bus, prepare_streams
from imchat.service.shared_limits import shared_store
from imchat.service.metrics import Metrics
from imchat.service.storage import make_storage
from imchat.service.uploads import UploadService
from imchat.service.user import UserService

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
log = logging.getLogger('imchat')


class Services:
    """Everything one app instance owns: its database and the services over it."""

    def __init__(self, config):
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
        # Abuse limits (imchat.service.limits); the in-memory store counts per process.
        self.limit_store = MemoryStore()
        guard = LoginGuard(self.limit_store, config['LOGIN_ATTEMPTS'], config['LOGIN_WINDOW'],
                           config['LOGIN_RATE'], config['REGISTER_RATE'], config['PROXY_COUNT'])
        self.users = UserService(self.db, config['TOKEN_TTL'], config['PASSWD_COST'],
                                 config['LOGIN_ATTEMPTS'], config['LOGIN_WINDOW'], guard=guard)
        self.contacts = ContactService(self.db, config['MAX_COMMUNITIES'])
        self.hub = Hub(self.metrics, config['WS_QUEUE_SIZE'], config['WS_PING_INTERVAL'],
                       config['WS_IDLE_TIMEOUT'], save_resume_point=self._save_resume_point,
                       message_rate=config['WS_RATE'], message_burst=config['WS_BURST'],
                       send_timeout=config['WS_SEND_TIMEOUT'])
        self.messages = MessageService(self.db, self.hub, self.metrics,
                                       multirow_insert_ids_are_consecutive(self.db))
        self.messages.db_watch = self.db_watch
        self.message_rate = MessageRate(self.hub)
        self.ws_cap = ConnectionCap(config['WS_PER_USER'], close=lambda client: (
            client.close_politely(CLOSE_TOO_MANY, 'too many connections of this user: '
                                  'the oldest is closed')))
        self.handshakes = HandshakeSlots(config['WS_HANDSHAKES'])
        self.uploads = UploadService(self.db, self.storage, config['UPLOAD_QUOTA_BYTES'])
        self.messages.recall_seconds = config['RECALL_SECONDS']
        self.conversations = ConversationService(self.db)
        self.conversations.rebuild_if_missing()
        # Search: a follower indexes what the writer stores (docs/search.md).
        self.search_index = SearchIndexer(self.db, config['SEARCH_POLL_MS'] / 1000)
        self.search = SearchService(self.db)
        if config['SEARCH_POLL_MS']:
            self.search_index.start()
        self.events = EventService(self.hub, self.conversations, self.messages, self.contacts,
                                   config['PRESENCE_GRACE'])
        self.users.is_online = self.hub.is_online
        self.contacts.join_listeners.append(self.hub.join_community)
        self.users.logout_listeners.append(self.hub.end_session)
        # Several nodes: the bus joins them (None for one process).
        self.bus = make_bus(config, self.db, self.hub, self.metrics, encode)
        if self.bus is not None:
            self.hub.bus = self.messages.bus = self.bus
            self.users.is_online = self.bus.is_online
            self.events.is_online, self.events.online_among = (self.bus.is_online,
                                                               self.bus.online_among)
            self.events.local_only = False
            # A join reaches connections (here too) at its place in the id order.
            self.contacts.join_listeners.remove(self.hub.join_community)
            self.contacts.join_listeners.append(self.bus.joined)
            self.users.logout_listeners.append(self.bus.logged_out)
            self.bus.carry_pushes()
            # Unfriending, leaving and kicks act on every node (permission caches, the
            # hub's registries), as they do here.
            self.bus.relay('unfriend', self.contacts.unfriend_listeners)
            self.bus.relay('leave', self.contacts.leave_listeners)
            # Login and registration limits count once for the deployment.
            self.users.guard = LoginGuard(shared_store(self.bus), config['LOGIN_ATTEMPTS'],
                                          config['LOGIN_WINDOW'], config['LOGIN_RATE'],
                                          config['REGISTER_RATE'], config['PROXY_COUNT'])

    def _save_resume_point(self, user_id, msgid):
        try:
            self.messages.save_resume_point(user_id, msgid)
        except Exception as error:
            cause = unavailable_cause(error)
            if cause is None:
                raise
            # Logged once for the whole outage; the client resumes with `since`.
            self.db_watch.failed(cause)

    def shutdown(self, timeout=5):
        """Stop gracefully: close every WebSocket with 1001 (going away) and finish
        storing the messages in flight, within about `timeout` seconds."""
        self.messages.stop(timeout=timeout / 2)
        self.hub.close_all(timeout=timeout / 2)
        self.close()

    def close(self):
        if getattr(self, 'bus', None) is not None:
            self.bus.stop()
        self.db_watch.stop()
        if getattr(self, 'search_index', None) is not None:
            self.search_index.stop()
        self.db.disconnect()
        provider = self.db.provider
        if provider is not None:
            provider.pool.disconnect()


def configure_logging(level):
    root = logging.getLogger()
    if not root.handlers:
        # One line per event: time, level, message (the seed's log.log, now with levels).
        logging.basicConfig(format='%(asctime)s %(levelname)s %(message)s')
    logging.getLogger('imchat').setLevel(level.upper())


def create_app(config=None):
    settings = load_config(overrides=config)
    app = Flask(__name__, static_folder=os.path.join(ROOT, 'asset'), static_url_path='/asset',
                template_folder=os.path.join(ROOT, 'view'))
    app.config.update(settings)
    if app.config['PROXY_COUNT']:
        # Behind nginx the peer is the proxy: take the client's address (login limits,
        # logs) and scheme from the headers the trusted proxies set.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config['PROXY_COUNT']
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    configure_logging(app.config['LOG_LEVEL'])

    app.extensions['imchat'] = Services(app.config)
    log.info('database: %s', describe_database_url(app.config['DATABASE_URL']))

    from imchat import cli, ctrl
    from imchat.ctrl import attach, chat, contact, guard, ops, search, user, view
    ctrl.register_error_handlers(app)
    guard.install(app)
    # Refuse a body larger than the largest upload before parsing it.
    app.config['MAX_CONTENT_LENGTH'] = attach.request_limit(app.config['UPLOAD_MAX_BYTES'])
    for blueprint in (user.bp, contact.bp, attach.bp, chat.bp, search.bp, ops.bp):
        app.register_blueprint(blueprint)
    app.after_request(ops.count_response)
    # The original's RegisterView: a page for every template under view/.
    view.register_views(app, app.template_folder,
                        app.extensions['imchat'].storage.media_origin)

    cli.register_commands(app)

    @app.cli.command('init-db')
    def init_db():
        """Create any missing table (the server also does this at start)."""
        click.echo('tables ready in ' + describe_database_url(app.config['DATABASE_URL']))

    @app.cli.command('migrate')
    def migrate_command():
        """Apply pending schema migrations (the server also does this at start)."""
        services = app.extensions['imchat']
        for migration_id in services.applied_migrations:
            click.echo('applied ' + migration_id)
        click.echo('schema up to date in {}: {}'.format(
            describe_database_url(app.config['DATABASE_URL']),
            ', '.join(applied(app.config['DATABASE_URL']))))

    @app.cli.command('backup')
    @click.argument('dest')
    def backup_command(dest):
        """Copy the SQLite database, consistently, to the new file DEST while the server
        runs."""
        from imchat.model.backup import BackupError, backup_sqlite

        try:
            pages = backup_sqlite(app.config['DATABASE_URL'], dest)
        except BackupError as error:
            raise click.ClickException(str(error))
        click.echo('backed up {} to {} ({} pages)'.format(
            describe_database_url(app.config['DATABASE_URL']), dest, pages))

    return app
