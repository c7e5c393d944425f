"""A TCP proxy on 127.0.0.1 that a test puts in front of MariaDB, then cuts, stalls and
restores: the database faults an operator meets (a crash, a network partition, a
server that accepts but never answers), made on purpose."""
import socket

import gevent
from gevent.event import Event
from gevent.server import StreamServer

PASS, STALL, CUT = 'pass', 'stall', 'cut'


class TcpProxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.mode = PASS
        self._flowing = Event()
        self._flowing.set()
        self._sockets = set()
        self.accepted = 0
        self._server = StreamServer(('127.0.0.1', 0), self._handle)
        self._server.start()
        self.port = self._server.server_port

    # -- what a test does -------------------------------------------------------------

    def stall(self):
        """Accept connections but pass nothing either way, on old and new ones alike."""
        self.mode = STALL
        self._flowing.clear()

    def cut(self):
        """Drop every open connection and close new ones at once."""
        self.mode = CUT
        self._flowing.set()
        for sock in list(self._sockets):
            self._close(sock)

    def restore(self):
        """Pass traffic again. Connections held during a stall are dropped: the client
        gave up on them long ago."""
        was = self.mode
        self.mode = PASS
        if was == STALL:
            for sock in list(self._sockets):
                self._close(sock)
        self._flowing.set()

    def close(self):
        self._server.stop(timeout=1)
        for sock in list(self._sockets):
            self._close(sock)

    # -- the proxy itself ------------------------------------------------------------

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
        pumps = [gevent.spawn(self._pump, client, upstream),
                 gevent.spawn(self._pump, upstream, client)]
        gevent.joinall(pumps)
        self._close(client)
        self._close(upstream)

    def _pump(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                generation = self._flowing
                generation.wait()  # held here while stalled
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
