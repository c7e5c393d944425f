"""A reconnect storm, run as its own process: `python tests/storm.py PORT SECONDS USERS.json`.

Each of the clients (one per line of the JSON list of [id, token], repeated to make
CLIENTS) opens a WebSocket to /chat, closes it as soon as the server answers, and opens
the next at once, for SECONDS. It prints a JSON count of the answers' status codes
("101", "503", ...; "error" for a connection that failed without a status line).
"""
from gevent import monkey

monkey.patch_all()

import collections  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

CLIENTS = 200


def status_of_handshake(port, user_id, token):
    with socket.create_connection(('127.0.0.1', port), timeout=30) as sock:
        sock.sendall(('GET /chat?id={}&token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
                      'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                      'Sec-WebSocket-Version: 13\r\n\r\n').format(user_id, token).encode())
        head = b''
        while b'\r\n' not in head:
            chunk = sock.recv(256)
            if not chunk:
                break
            head += chunk
    parts = head.split(b' ', 2)
    return parts[1].decode() if len(parts) > 1 else 'error'


def main(port, seconds, users_file):
    with open(users_file) as f:
        users = json.load(f)
    counts = collections.Counter()
    deadline = time.monotonic() + seconds

    def reconnect_forever(user_id, token):
        while time.monotonic() < deadline:
            try:
                counts[status_of_handshake(port, user_id, token)] += 1
            except OSError:
                counts['error'] += 1

    jobs = [gevent.spawn(reconnect_forever, *users[i % len(users)]) for i in range(CLIENTS)]
    gevent.joinall(jobs)
    print(json.dumps(counts))


if __name__ == '__main__':
    main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3])
