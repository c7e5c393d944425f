"""Configuration: defaults here, then the environment (`IMCHAT_*`), then what a
caller of `create_app(config)` passes in. Every variable is listed in the README."""
import os
import secrets

_ENV_PREFIX = 'IMCHAT_'


def _int(value):
    return int(value)


def _bool(value):
    return str(value).strip().lower() in ('1', 'true', 'yes', 'on')


# name: (default, parser). The key in app.config is the name without the prefix.
SETTINGS = {
    'DATABASE_URL': ('sqlite:///data/imchat.db', str),
    'HOST': ('127.0.0.1', str),
    'PORT': (8080, _int),
    # Server processes on this machine sharing PORT (imchat/process/supervisor.py); above 1
    # needs IMCHAT_BUS.
    'WORKERS': (1, _int),
    'SECRET_KEY': (None, str),
    'LOG_LEVEL': ('INFO', str),
    # One log line per HTTP request (gevent's access log); off when nginx logs them.
    'ACCESS_LOG': (True, _bool),
    # On SIGTERM/SIGINT: seconds to close WebSockets and finish storing messages.
    'SHUTDOWN_TIMEOUT': (5, _int),
    # Login tokens expire after this many seconds (30 days).
    'TOKEN_TTL': (30 * 24 * 3600, _int),
    # scrypt cost as a power of two (14 is OWASP's interactive setting).
    'PASSWD_COST': (14, _int),
    # Database connections (MySQL or SQLite) shared by all greenlets; MariaDB allows 151 by default.
    'DB_POOL_SIZE': (20, _int),
    # Seconds a database call may take (connecting, each read and write on MySQL,
    # SQLite's busy timeout) before it fails: a stalled database then refuses requests
    # instead of holding them. 0: no limit.
    'DB_TIMEOUT': (5, _int),
    'MAX_COMMUNITIES': (5, _int),
    # Logins allowed per mobile and per client address in LOGIN_WINDOW seconds.
    'LOGIN_ATTEMPTS': (10, _int),
    'LOGIN_WINDOW': (300, _int),
    # Logins, right or wrong, per mobile and per client address a minute; registrations
    # per client address an hour. Each costs a deliberately slow password hash.
    'LOGIN_RATE': (30, _int),
    'REGISTER_RATE': (20, _int),
    # The HTTP status of a refused call: 0 answers with the real status (401, 404, ...);
    # 200 answers every refusal with 200 and `code: -1`, as the original server did, for
    # deployments that keep its client (whose request helper reads only 200 replies).
    'ERROR_STATUS': (0, _int),
    # Largest request body anywhere but /attach/upload: parsing a huge form is slow.
    'BODY_MAX_BYTES': (64 * 1024, _int),
    # At the door (imchat.process.door): a request whose headers have not all arrived in this many
    # seconds is dropped; a body gets BODY_TIMEOUT seconds after its headers (and one more
    # per 16 KiB), then 408; connections open at once, and new connections a second, per
    # client address; WebSocket handshakes (up to the registration: the backlog is after
    # it) in progress, and new ones a second in the whole process.
    'HEADER_TIMEOUT': (10, _int),
    'BODY_TIMEOUT': (30, _int),
    'CONNECTIONS_PER_ADDRESS': (256, _int),
    'CONNECT_RATE': (50, _int),
    'WS_HANDSHAKES': (64, _int),
    'WS_HANDSHAKE_RATE': (200, _int),
    # WebSockets one user may hold; a new one past this closes the oldest (4429).
    'WS_PER_USER': (10, _int),
    # Stored messages one (re)connection replays at most; older ones are left to
    # /chat/history, and the client is told so.
    'WS_BACKLOG_MAX': (2000, _int),
    # Reverse proxies in front of the server (1 behind the nginx sample) whose
    # X-Forwarded-For / -Proto / -Host to trust; 0 trusts none, for a direct start.
    'PROXY_COUNT': (0, _int),
    # WebSocket: server pings this often, and closes a connection silent for longer
    # than WS_IDLE_TIMEOUT (a ping a client answers counts as a sign of life).
    'WS_PING_INTERVAL': (25, _int),
    'WS_IDLE_TIMEOUT': (75, _int),
    # Frames queued for one connection before it counts as stalled and is cut off.
    'WS_QUEUE_SIZE': (1024, _int),
    # Seconds a write may wait for a peer to read (live or catching up) before the
    # connection is cut off as stalled.
    'WS_SEND_TIMEOUT': (10, _int),
    # Largest frame accepted as a message; larger ones are refused with an ack.
    'WS_MAX_FRAME': (64 * 1024, _int),
    # Messages one user (all connections together) may send: WS_RATE a second on average,
    # WS_BURST at once (a token bucket). 0 turns the limit off. People type far slower; this stops a
    # runaway or hostile client from filling the database.
    'WS_RATE': (20, _int),
    'WS_BURST': (100, _int),
    # Seconds after sending in which a message may be recalled (0: no limit).
    'RECALL_SECONDS': (120, _int),
    # Seconds after sending in which a text message may be edited (0: no limit; 2 days).
    'EDIT_SECONDS': (2 * 24 * 3600, _int),
    # Reactions one user may set or remove: REACTION_RATE a second, REACTION_BURST at
    # once (on top of WS_RATE, which counts them too). 0 turns the limit off.
    'REACTION_RATE': (5, _int),
    'REACTION_BURST': (30, _int),
    # Milliseconds between the search follower's looks for new messages to index (a
    # message is found this long after it is stored, at most about); 0: this process
    # does not index (another node's follower does).
    'SEARCH_POLL_MS': (200, _int),
    # Seconds a user may be away before friends see them offline, so a reconnect
    # does not flap (0: at once).
    'PRESENCE_GRACE': (5, _int),
    # The bus joining several processes (see imchat/service/bus/): none, redis://...
    # or udp://...; this process's name on it (default host and pid); seconds a node's
    # users stay `online` after it stops refreshing them (a node that died).
    'BUS': ('none', str),
    # A udp bus signs every datagram with this secret (HMAC-SHA256), the same on every
    # node, at least 32 bytes; datagrams not signed with it are dropped.
    'BUS_SECRET': ('', str),
    'NODE_ID': ('', str),
    'PRESENCE_TTL': (30, _int),
    # Web Push (docs/push.md): the contact push services may reach the operator at (a
    # mailto: or https: URL; push is off without it); the VAPID private key (base64url;
    # default: made at first start and kept in the database); whether a notification
    # shows the sender and text (0: only "new message"); http:// and private addresses
    # allowed as endpoints (a push service on the LAN, tests); pushes waiting at most;
    # greenlets sending; seconds a push service has to answer; seconds before the first
    # retry (doubling); seconds a push service keeps an undelivered push; seconds within
    # which pushes about one conversation to one person are merged.
    'VAPID_SUBJECT': ('', str),
    'VAPID_PRIVATE_KEY': ('', str),
    'PUSH_PREVIEW': (True, _bool),
    'PUSH_ALLOW_PRIVATE': (False, _bool),
    'PUSH_QUEUE': (10000, _int),
    'PUSH_SENDERS': (4, _int),
    'PUSH_TIMEOUT': (10, _int),
    'PUSH_RETRY_SECONDS': (1.0, float),
    'PUSH_TTL': (24 * 3600, _int),
    'PUSH_MERGE_SECONDS': (3.0, float),
    # Who may reach whom (docs/contacts.md): friend requests (0: the original's
    # instant add); how new communities are joined (open, approval, invite); admins a
    # community may have; requests one user sends a day, and repeats of one request a
    # day; strangers an account may request in its first hour; communities joined an hour.
    'FRIEND_REQUESTS': (True, _bool),
    'DEFAULT_JOINMODE': ('approval', str),
    'MAX_ADMINS': (10, _int),
    'REQUESTS_PER_DAY': (50, _int),
    'REQUEST_REPEATS': (3, _int),
    'NEW_ACCOUNT_REQUESTS': (5, _int),
    'JOINS_PER_HOUR': (20, _int),
    # Seconds between looks for bans made by `admin ban` in another process (0: never;
    # a bus carries them at once anyway).
    'BAN_POLL': (2, float),
    # Uploads
    'STORAGE': ('local', str),
    'UPLOAD_DIR': ('mnt', str),
    'UPLOAD_MAX_BYTES': (10 * 1024 * 1024, _int),
    # Bytes one user may upload in any 24 hours.
    'UPLOAD_QUOTA_BYTES': (200 * 1024 * 1024, _int),
    # File extensions a file message (media 10) may carry, comma separated; served
    # only as downloads (imchat.service.mediatypes has the default list).
    'FILE_TYPES': ('', str),
    'OSS_ENDPOINT': ('', str),
    'OSS_BUCKET': ('', str),
    'OSS_ACCESS_KEY_ID': ('', str),
    'OSS_ACCESS_KEY_SECRET': ('', str),
    'OSS_REGION': ('', str),
    'OSS_PUBLIC_URL': ('', str),
}


def load_config(environ=None, overrides=None):
    """Return the settings as a dict of app.config keys."""
    environ = os.environ if environ is None else environ
    config = {}
    for name, (default, parse) in SETTINGS.items():
        raw = environ.get(_ENV_PREFIX + name)
        if raw is None or raw == '':
            config[name] = default
            continue
        try:
            config[name] = parse(raw)
        except ValueError:
            raise ValueError('{}{}={!r} is not valid'.format(_ENV_PREFIX, name, raw))
    config.update(overrides or {})
    if config['ERROR_STATUS'] not in (0, 200):
        raise ValueError('{}ERROR_STATUS={!r} is not valid: 0 (the real statuses) or 200'
                         .format(_ENV_PREFIX, config['ERROR_STATUS']))
    if not config.get('SECRET_KEY'):
        # Only Flask's own signing uses it (imchat's tokens live in the database), so a
        # per-process key is safe; set IMCHAT_SECRET_KEY to keep it across restarts.
        config['SECRET_KEY'] = secrets.token_hex(32)
    return config
