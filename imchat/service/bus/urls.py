"""IMCHAT_BUS, read once for the server and the supervisor. See docs/scaling.md.

    none                                   one process, no bus (the default)
    redis://host:port/db[?prefix=name]     Redis pub/sub
    udp://bind-host:port?peers=h:p,h:p     datagrams to every peer (the seed's LAN bus)
"""
import hashlib
import os
import socket
from typing import Tuple
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit


class BusURLError(ValueError):
    """IMCHAT_BUS cannot be read; the message says what it should look like."""


def default_node_id() -> str:
    """This process's name on the bus (and in metrics) when NODE_ID is not set."""
    return '{}-{}'.format(socket.gethostname(), os.getpid())


def parse_bus_url(url: str, database_url: str = '') -> Tuple[str, dict]:
    """('none', {}) | ('redis', {url, prefix}) | ('udp', {bind, peers}).
    Raises BusURLError."""
    url = (url or 'none').strip()
    if url == 'none':
        return 'none', {}
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == 'redis':
        if not parts.hostname:
            raise BusURLError('a redis bus reads redis://host:port/db')
        prefix = (query.get('prefix') or [''])[0]
        if not prefix:
            # One deployment is one database: nodes on the same database share channels,
            # others (test deployments on the one Redis) never hear them.
            prefix = hashlib.sha1(database_url.encode()).hexdigest()[:12]
        db = parts.path.lstrip('/') or '0'
        return 'redis', {'url': 'redis://{}:{}/{}'.format(parts.hostname, parts.port or 6379, db),
                         'prefix': 'imchat:{}:'.format(prefix)}
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
    raise BusURLError('unsupported bus {!r}: use none, redis://... or udp://...'.format(url))


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
