"""Relays a test puts between a server and what it depends on (MariaDB, Redis, a bus
peer), then cuts or stalls: the faults an operator meets (a crash, a partition, a
server that accepts but never answers, a publish stuck on its way), made on purpose.
They run as greenlets of the test process (gevent is patched in by conftest.py)."""
import socket

import gevent
from gevent.event import Event
from gevent.server import StreamServer

PASS, STALL, STALL_UPSTREAM, CUT = 'pass', 'stall', 'stall upstream', 'cut'


class TcpRelay:
    """127.0.0.1:`port` forwarded to `target_host`:`target_port`."""

    def __init__(self, target_port, target_host='127.0.0.1'):
        self.target = (target_host, target_port)
        self.mode = PASS
        self.accepted = 0
        # Both directions wait on `_flowing`; what clients send waits on `_upstream` too.
        self._flowing = Event()
        self._flowing.set()
        self._upstream = Event()
        self._upstream.set()
        self._sockets = set()
        self._server = StreamServer(('127.0.0.1', 0), self._handle)
        self._server.start()
        self.port = self._server.server_port

    # -- what a test does -------------------------------------------------------------

    def stall(self):
        """A hung server: accept connections but pass nothing either way, on old and
        new ones alike. `restore()` then drops them: their clients gave up long ago."""
        self.mode = STALL
        self._flowing.clear()

    def stall_upstream(self):
        """One way: what clients send is held, in order and not lost, until `restore()`;
        what the target sends still flows."""
        self.mode = STALL_UPSTREAM
        self._upstream.clear()

    def cut(self):
        """Drop every open connection and close new ones at once."""
        self.mode = CUT
        self._flowing.set()
        self._upstream.set()
        for sock in list(self._sockets):
            self._close(sock)

    def restore(self):
        """Pass traffic again."""
        was = self.mode
        self.mode = PASS
        if was == STALL:
            for sock in list(self._sockets):
                self._close(sock)
        self._upstream.set()
        self._flowing.set()

    def close(self):
        self._server.stop(timeout=1)
        for sock in list(self._sockets):
            self._close(sock)

    # -- the relay itself ------------------------------------------------------------

    def _handle(self, client, address):
        self.accepted += 1
        if self.mode == CUT:
            client.close()
            return
        self._sockets.add(client)
        if self.mode == STALL:
            # Hold the connection open without a word, like a hung server.
            self._flowing.wait()
            if self.mode != PASS or client not in self._sockets:
                self._close(client)
                return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._close(client)
            return
        upstream.settimeout(None)
        self._sockets.add(upstream)
        pumps = [gevent.spawn(self._pump, client, upstream, self._upstream),
                 gevent.spawn(self._pump, upstream, client, None)]
        gevent.joinall(pumps)
        self._close(client)
        self._close(upstream)

    def _pump(self, source, sink, direction):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # held here while stalled
                if direction is not None:
                    direction.wait()
                if source not in self._sockets or sink not in self._sockets:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(sink)

    def _close(self, sock):
        self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


class UdpRelay:
    """Datagrams forwarded to 127.0.0.1:`target_port`; while `drop` is true the bus's
    messages are lost (its hellos pass: the peer is alive) and counted in `dropped`."""

    def __init__(self, target_port):
        self.target = ('127.0.0.1', target_port)
        self.drop = False
        self.dropped = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            data, _ = self.sock.recvfrom(65536)
            if self.drop and b'"e":[]' not in data:
                self.dropped += 1
                continue
            self.out.sendto(data, self.target)

    def close(self):
        self.greenlet.kill(block=False)
        self.sock.close()
        self.out.close()
