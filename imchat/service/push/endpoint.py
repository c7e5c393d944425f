"""Where a push may go. A subscription's endpoint is a URL a client chose, so the
server must not become a way to reach inside the operator's network: by default only
https:// endpoints whose every resolved address is public. The address is checked when
the push is sent (DNS may change after subscribing) and the connection goes to the very
address checked, so a second lookup cannot point it elsewhere; redirects are never
followed. IMCHAT_PUSH_ALLOW_PRIVATE=1 lifts this for a push service on the LAN and for
tests.
"""
import ipaddress
import socket
from typing import NamedTuple
from urllib.parse import urlsplit

ENDPOINT_MAX = 1000


class EndpointRefused(ValueError):
    """The endpoint may not be used; the message says why (no secret in it)."""


class Target(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str       # path and query, as sent in the request line
    audience: str   # scheme://host[:port], the JWT's `aud`


def parse_endpoint(url: str, allow_private: bool) -> Target:
    """Check an endpoint's form (not its address). Raises EndpointRefused."""
    if not isinstance(url, str) or not url or len(url) > ENDPOINT_MAX:
        raise EndpointRefused('the endpoint must be a URL of at most {} characters'
                              .format(ENDPOINT_MAX))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointRefused('the endpoint is not a valid URL')
    schemes = ('https', 'http') if allow_private else ('https',)
    if parts.scheme not in schemes or not parts.hostname:
        raise EndpointRefused('the endpoint must be an https:// URL')
    if parts.username or parts.password or any(c in url for c in ' \r\n\t'):
        raise EndpointRefused('the endpoint must be a plain https:// URL')
    port = port or (443 if parts.scheme == 'https' else 80)
    default = (parts.scheme == 'https' and port == 443) or (parts.scheme == 'http' and port == 80)
    host = '[{}]'.format(parts.hostname) if ':' in parts.hostname else parts.hostname
    audience = '{}://{}{}'.format(parts.scheme, host, '' if default else ':{}'.format(port))
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    return Target(parts.scheme, parts.hostname, port, path, audience)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split('%')[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(target: Target, allow_private: bool) -> str:
    """The address to connect to: every address the host resolves to must be public
    (unless allowed). Raises EndpointRefused."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise EndpointRefused('the endpoint\'s host does not resolve: {}'.format(error))
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise EndpointRefused('the endpoint\'s host has no address')
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise EndpointRefused('the endpoint resolves to a private address ({})'
                                      .format(address))
    return addresses[0]
