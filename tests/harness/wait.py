"""Waiting on state rather than on the clock, and addresses nobody holds."""
import socket
import time

# Generous: two cores shared by the server processes, chromium and other test runs.
DEFAULT_SECONDS = 30


def wait_for(condition, timeout=DEFAULT_SECONDS, what='the condition', interval=0.05):
    """Poll `condition()` until it returns something true, and return that. Under gevent
    the sleep yields, so greenlets of this process (a live server, a relay) go on."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('{} did not hold within {} s'.format(what, timeout))
        time.sleep(interval)


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 free right now (TCP, or UDP with socket.SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def free_udp_ports(count):
    """The first of `count` consecutive UDP ports on 127.0.0.1 free right now."""
    for _ in range(200):
        first = free_port(socket.SOCK_DGRAM)
        if first + count > 65535:
            continue
        held = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(('127.0.0.1', port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise AssertionError('no {} consecutive free UDP ports'.format(count))


def pid_alive(pid):
    """True while `pid` runs (a zombie nobody reaps counts as gone; Linux /proc)."""
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False
