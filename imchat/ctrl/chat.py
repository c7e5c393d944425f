"""The /chat WebSocket, /chat/history and /chat/conversations.

Each connection: authenticate, register a Client, send the stored backlog the
connection lacks, then read its frames: under the production server the request ends
there and the connection reads in the background, a greenlet only while frames come
(GeventConnection.read_in_background); under the Flask dev server, in a loop in the
request's thread. Every frame that needs the database gets its own short transaction
(inside the services); nothing holds a db_session across reads. `_Session.end`
unregisters once, whatever ended the connection.
"""
import logging

from flask import Blueprint, Response, current_app, g, request

from imchat.ctrl import bind_request, login_required, ok_rows, reply, request_token, services
from imchat.protocol import (CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_GOING_AWAY,
                             CLOSE_SERVER_ERROR, CLOSE_TRY_AGAIN_LATER, CLOSE_UNAUTHORIZED,
                             CMD_HEART, CMD_REACTION, WS_SUBPROTOCOL, ack_refused,
                             backlog_skipped, subprotocol_token)
from imchat.service.availability import unavailable_cause
from imchat.service.errors import ServiceError
from imchat.service.event_frame import UNSTORED_CMDS
from imchat.service.frame import FrameError, parse_frame
from imchat.service.history_window import history_window
from imchat.service.client import Client
from imchat.service.limits import after_connected_work, release_handshake
from imchat.service.conversation import CONVERSATIONS_MAX
from imchat.service.reader import HISTORY_MAX
from imchat.util import resp
from imchat.util.bind import BindError, Field, bind
from imchat.util.token import token_key
from imchat.transport import open_connection

bp = Blueprint('chat', __name__, url_prefix='/chat')
log = logging.getLogger(__name__)

# Messages bigger than the accepted size are read, refused with an ack and dropped;
# past this multiple of it the connection is closed (1009) without reading the rest.
HARD_LIMIT_FACTOR = 16

# Frames of one connection being stored at once; past this, reading waits for the oldest.
MAX_UNACKED = 64

CONNECT_FIELDS = (Field('id', int, minimum=1), Field('since', int, minimum=0))


@bp.route('', methods=['GET', 'POST'])
def chat_over_http():
    return reply(resp.fail('/chat is a WebSocket: connect with '
                           'ws://host/chat?id=<userid>&token=<token>', 'websocket_only'), 400)


# werkzeug routes WebSocket upgrades only to rules marked websocket=True.
@bp.route('', methods=['GET'], websocket=True)
def chat():
    config = current_app.config
    max_frame = config['WS_MAX_FRAME']
    conn = open_connection(request.environ, max_frame * HARD_LIMIT_FACTOR,
                           config['WS_PING_INTERVAL'], subprotocols=[WS_SUBPROTOCOL])
    if conn is None:
        return chat_over_http()
    svc = services()
    try:
        session = _connect(svc, conn, max_frame)
    except Exception as error:
        _close_for_error(svc, conn, error)
        session = None
    finally:
        # A handshake refused or failed before registering gives its slot back too
        # (release is idempotent: a registered one gave it back already).
        release_handshake(request.environ)
    if session is None:
        conn.close()
    elif not conn.read_in_background(session):
        # The Flask dev server: read in this request's thread until the connection ends
        # (or the thread is stopped: it still unregisters).
        try:
            while session.read(conn.receive()):
                pass
        finally:
            session.end()
    # The socket is closed or handed over by now: gevent-websocket ignores this reply,
    # and werkzeug's write of it fails quietly, as under flask-sock.
    return Response()


def _close_for_error(svc, conn, error):
    cause = unavailable_cause(error)
    if cause is not None:
        # Logged once per outage; the client reconnects with back-off.
        svc.db_watch.refuse(cause)
        conn.close(CLOSE_TRY_AGAIN_LATER, 'the database is unavailable, try again later')
    else:
        log.exception('chat connection failed', exc_info=error)
        conn.close(CLOSE_SERVER_ERROR, 'server error, please reconnect')


def _connect(svc, conn, max_frame):
    """Authenticate, register the client and send its backlog: the `_Session` to read
    its frames, or None when the connection was refused (and closed with a code)."""
    hub = svc.hub
    # Until it registers, a node that stops closes it going away with the rest.
    if not hub.opening(conn):
        conn.close(CLOSE_GOING_AWAY, 'server going away')
        return None
    try:
        return _authenticate_and_register(svc, conn, max_frame)
    finally:
        hub.opened(conn)


def _authenticate_and_register(svc, conn, max_frame):
    after_connected_work()
    try:
        token = (subprotocol_token(request.headers.get('Sec-WebSocket-Protocol'))
                 or request_token())
        user_id, expires_at = svc.users.session(token)
        fields = bind(CONNECT_FIELDS, request.args)
    except ServiceError as error:
        conn.close(CLOSE_UNAUTHORIZED, error.msg)
        return None
    except BindError as error:
        conn.close(CLOSE_BAD_REQUEST, str(error))
        return None
    if fields['id'] is not None and fields['id'] != user_id:
        conn.close(CLOSE_FORBIDDEN, 'id {} is not the token\'s user'.format(fields['id']))
        return None
    hub, reader = svc.hub, svc.reader
    since = fields['since']
    if since is None:
        since = reader.resume_point(user_id)
    client = Client(hub, user_id, conn, since, token_key(token), expires_at)
    community_ids = svc.contacts.community_ids(user_id)
    session = _Session(svc, client, max_frame)
    try:
        if not hub.register(client, community_ids):
            conn.close(CLOSE_GOING_AWAY, 'server going away')
            return None
        svc.ws_cap.admit(client)
        # The handshake is over: the backlog is catch-up, and a reader slow to take it
        # must not hold a slot new connections wait for.
        release_handshake(request.environ)
        # One reconnect replays at most WS_BACKLOG_MAX messages (the newest); the client
        # is told what it skipped, to read with /chat/history.
        replay_after = reader.replay_start(user_id, since, current_app.config['WS_BACKLOG_MAX'])
        if replay_after > since:
            client.send(backlog_skipped(since, replay_after))
        for page in reader.backlog(user_id, replay_after):
            client.send_backlog(page)
            after_connected_work()
        client.finish_sync()
    except BaseException:
        session.forget()
        raise
    return session


class _Session:
    """A connected client's incoming frames, after its backlog: `read` each message,
    then `end` once, whatever ended the connection. Holds no request or Flask object,
    so it can outlive the request (GeventConnection.read_in_background)."""

    __slots__ = ('svc', 'client', 'max_frame', 'error')

    def __init__(self, svc, client, max_frame):
        self.svc = svc
        self.client = client
        self.max_frame = max_frame
        self.error = None

    def read(self, data):
        """Handle one incoming message (None: the peer is gone); False once the
        connection is over."""
        if data is None:
            return False
        client = self.client
        try:
            client.touch()
            _handle_frame(self.svc, client, data, self.max_frame)
        except Exception as error:
            self.error = error
            return False
        return not client.closed

    def forget(self):
        """Unregister the client (saving its resume point first)."""
        self.svc.ws_cap.release(self.client)
        self.svc.hub.unregister(self.client)

    def end(self):
        """Forget the client, then close: with 1013 or 1011 when a frame failed (or
        forgetting did), else politely (unless already closed)."""
        conn = self.client.conn
        try:
            self.forget()
        except Exception as error:
            self.error = self.error or error
        if self.error is not None:
            _close_for_error(self.svc, conn, self.error)
        conn.close()


def _handle_frame(svc, client, data, max_frame):
    try:
        frame = parse_frame(data, max_frame)
    except FrameError as error:
        svc.metrics.inc('imchat_messages_refused_total')
        client.reply(ack_refused(error.client_id, error.msg, error.reason))
        return
    if frame.cmd == CMD_HEART:
        return
    if not svc.message_rate.allows(client.user_id):
        svc.metrics.inc('imchat_messages_refused_total')
        client.reply(ack_refused(frame.client_id, 'too many messages: at most {} a second, '
                                 'send it again shortly'.format(client.hub.message_rate),
                                 'rate_limited.message'))
        return
    if frame.cmd == CMD_REACTION and not svc.reaction_rate.allows(client.user_id):
        svc.metrics.inc('imchat_messages_refused_total')
        client.reply(ack_refused(frame.client_id, 'too many reactions: wait a moment',
                                 'rate_limited.reaction'))
        return
    if frame.cmd in UNSTORED_CMDS:
        ack = svc.events.handle(client, frame)
        if ack is not None:
            client.reply(ack)
        return
    # Read on while it is stored: the ack goes out after the commit, in frame order.
    client.acknowledge_when(svc.writer.submit(client.user_id, frame, origin=client),
                            frame.client_id, limit=MAX_UNACKED)


@bp.route('/history', methods=['GET', 'POST'])
@login_required
def history():
    fields = bind_request(Field('cmd', int, required=True),
                          Field('dstid', int, required=True, minimum=1),
                          Field('before', int, minimum=1),
                          Field('after', int, minimum=0),
                          Field('around', int, minimum=1),
                          Field('limit', int, minimum=1, maximum=HISTORY_MAX))
    reader = services().reader
    if fields['after'] is not None or fields['around'] is not None:
        return ok_rows(history_window(reader.conversation_query, g.user_id,
                                      most=HISTORY_MAX, **fields))
    del fields['after'], fields['around']
    return ok_rows(reader.history(g.user_id, **fields))


@bp.route('/conversations', methods=['GET', 'POST'])
@login_required
def conversations():
    fields = bind_request(Field('limit', int, minimum=1, maximum=CONVERSATIONS_MAX))
    rows = services().conversations.conversations(g.user_id, fields['limit'])
    return ok_rows(services().mutes.annotate(g.user_id, rows))  # issue 22: `muteuntil`
