"""What the tests share to drive real servers: one launcher of a server process, the
app served in this process, one TCP relay (and a UDP one) to make faults, waits on
state, free ports, and HTTP with accounts.

    server = ServerProcess(tmp_path, database_url, IMCHAT_WORKERS=2).start()
    alice = server.api.register('13800000001')
    relay = TcpRelay(3306); relay.stall(); ...; relay.restore()
    wait_for(lambda: server.health()['bus'] == 'up', what='the bus back up')

The WebSocket client is tests/wsclient.py; the browser's kit is tests/browserkit.py.
"""
from tests.harness.http import Api, User, fetch, healthy, http, unique_mobiles
from tests.harness.relay import TcpRelay, UdpRelay
from tests.harness.server import (ROOT, START_SECONDS, WSGI, ServerProcess, clean_environ,
                                  server_pid_of)
from tests.harness.wait import free_port, free_udp_ports, pid_alive, wait_for

__all__ = ['Api', 'User', 'fetch', 'healthy', 'http', 'unique_mobiles', 'TcpRelay',
           'UdpRelay', 'ROOT', 'START_SECONDS', 'WSGI', 'ServerProcess', 'clean_environ',
           'server_pid_of', 'free_port', 'free_udp_ports', 'pid_alive', 'wait_for']
