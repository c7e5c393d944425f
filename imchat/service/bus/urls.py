"""IMCHAT_BUS, read once for the server and the supervisor. See docs/scaling.md.

    none                                   one process, no bus (the default)
    redis://[[user]:password@]host:port/db[?prefix=name]
    rediss://...                           Redis pub/sub (rediss: over TLS)
    udp://bind-host:port?peers=h:p,h:p     datagrams to every peer (the seed's LAN bus);
                                           needs IMCHAT_BUS_SECRET (bus.udp signs them)

A Redis bus's channels carry a prefix naming the deployment: `?prefix=name`, or by
default the id the database made for itself when it was created (bus.node), so two
deployments on one Redis never hear each other whatever their settings say.
"""
import os
import socket
from typing import Tuple
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit


class BusURLError(ValueError):
    """IMCHAT_BUS cannot be read; the message says what it should look like."""


def default_node_id() -> str:
    """This process's name on the bus (and in metrics) when NODE_ID is not set."""
    return '{}-{}'.format(socket.gethostname(), os.getpid())


def parse_bus_url(url: str) -> Tuple[str, dict]:
    """('none', {}) | ('redis', {url, prefix}) | ('udp', {bind, peers}); `prefix` is
    None when the URL names none (the database's deployment id then). Raises
    BusURLError."""
    url = (url or 'none').strip()
    if url == 'none':
        return 'none', {}
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme in ('redis', 'rediss'):
        if not parts.hostname:
            raise BusURLError('a redis bus reads redis://[:password@]host:port/db '
                              '(rediss:// over TLS)')
        prefix = (query.pop('prefix', None) or [''])[0]
        db = parts.path.lstrip('/') or '0'
        if not db.isdigit():
            raise BusURLError('a redis bus names its database by number: redis://host:port/0')
        # Credentials and TLS options (?ssl_cert_reqs=..., ?ssl_ca_certs=...) stay in
        # the URL the transport connects with; only the prefix is ours.
        credentials = parts.netloc.rpartition('@')[0]
        netloc = '{}{}:{}'.format(credentials + '@' if credentials else '', parts.hostname,
                                  parts.port or 6379)
        return 'redis', {'url': urlunsplit((parts.scheme, netloc, '/' + db,
                                            urlencode(query, doseq=True), '')),
                         'prefix': 'imchat:{}:'.format(prefix) if prefix else None}
    if parts.scheme == 'udp':
        if not parts.hostname or not parts.port:
            raise BusURLError('a udp bus reads udp://bind-host:port?peers=host:port,host:port')
        peers = []
        for item in ','.join(query.get('peers') or []).split(','):
            item = item.strip()
            if not item:
                continue
            host, _, port = item.rpartition(':')
            if not host or not port.isdigit():
                raise BusURLError('udp peer {!r} should read host:port'.format(item))
            peers.append((host, int(port)))
        return 'udp', {'bind': (parts.hostname, parts.port), 'peers': peers}
    raise BusURLError('unsupported bus {!r}: use none, redis://..., rediss://... or udp://...'
                      .format(redact(url)))


def redact(url: str) -> str:
    """`url` with its password hidden, for the log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition('@')
    user = netloc[0].partition(':')[0]
    return urlunsplit(parts._replace(netloc='{}:***@{}'.format(user, netloc[2])))


def bus_url_for_worker(bus_url: str, index: int, count: int) -> str:
    """The bus of worker `index` (from 1) of `count` under the supervisor. A udp bus
    gives each process its own address: the worker listens on the configured port +
    index - 1 and has its sibling workers as peers besides the configured ones. Other
    buses are returned unchanged."""
    parts = urlsplit(bus_url)
    if parts.scheme != 'udp' or not parts.port:
        return bus_url
    host = parts.hostname
    query = parse_qs(parts.query)
    peers = [p for p in ','.join(query.pop('peers', [])).split(',') if p.strip()]
    sibling_host = '127.0.0.1' if host in ('0.0.0.0', '') else host
    own_port = parts.port + index - 1
    peers += ['{}:{}'.format(sibling_host, parts.port + other)
              for other in range(count) if other != index - 1]
    query['peers'] = [','.join(peers)]
    return urlunsplit(('udp', '{}:{}'.format(host, own_port),
                       parts.path, urlencode(query, doseq=True, safe=':,'), ''))
