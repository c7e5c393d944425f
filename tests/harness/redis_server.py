"""Redis for the bus tests: the machine's (one channel prefix per test), or a
redis-server of the test's own that it may stop."""
import os
import socket
import subprocess
import uuid
from urllib.parse import urlsplit

import pytest

from tests.harness.wait import free_port, wait_for

REDIS_URL = os.environ.get('IMCHAT_TEST_REDIS', 'redis://127.0.0.1:6379/0')


def redis_answers():
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or '127.0.0.1', parts.port or 6379),
                                 timeout=2).close()
        return True
    except OSError:
        return False


def require_redis():
    """Skips when the machine's Redis does not answer, except under CI=true, where it
    fails."""
    if not redis_answers():
        message = 'Redis at {} is not reachable'.format(REDIS_URL)
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)


def redis_bus_url():
    """IMCHAT_BUS for a Redis bus of this test alone (pub/sub ignores the db number, so
    each deployment gets its own channel prefix)."""
    require_redis()
    return '{}?prefix=ops-test-{}'.format(REDIS_URL, uuid.uuid4().hex[:12])


class RedisServer:
    """A redis-server of the test's own on a free port, so it may be stopped."""

    def __init__(self, directory):
        self.port = free_port()
        self.directory = str(directory)
        self.process = None
        self.start()

    @property
    def url(self):
        return 'redis://127.0.0.1:{}/0'.format(self.port)

    def start(self):
        self.process = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--dir', self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers():
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=1) as sock:
                    sock.sendall(b'PING\r\n')
                    return sock.recv(16).startswith(b'+PONG')
            except OSError:
                return False
        wait_for(answers, 10, 'redis-server answering')

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
