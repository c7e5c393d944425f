"""A real WebSocket client for the tests (websocket-client), with JSON helpers."""
import json
import socket
import time

import websocket


class ChatClient:
    def __init__(self, url, timeout=5, ignore=(13, 15)):
        self.ws = websocket.create_connection(url, timeout=timeout)
        self.next_id = 1
        # Typing and presence come whenever friends type or come and go: like a client
        # that does not know them, skip them unless a test asks (ignore=()).
        self.ignore = set(ignore)

    def send(self, **frame):
        if 'id' not in frame:
            frame['id'] = self.next_id
            self.next_id += 1
        self.ws.send(json.dumps(frame))
        return frame['id']

    def send_raw(self, data):
        if isinstance(data, bytes):
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def text(self, dstid, content, cmd=10, **extra):
        return self.send(cmd=cmd, dstid=dstid, media=1, content=content, **extra)

    def send_texts(self, dstid, contents, cmd=10):
        """Send text messages one after another; return their acknowledged msgids."""
        msgids = []
        for content in contents:
            self.text(dstid, content, cmd=cmd)
            ack = self.recv_ack()
            assert ack['code'] == 0, ack
            msgids.append(ack['msgid'])
        return msgids

    def recv(self, timeout=5):
        self.ws.settimeout(timeout)
        while True:
            # websocket-client answers a ping itself, then hands it to us: skip it.
            opcode, frame = self.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._answer_close(frame.data)
                raise ConnectionClosed(frame.data)
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                message = json.loads(frame.data.decode('utf-8'))
                if message.get('cmd') not in self.ignore:
                    return message

    def recv_ack(self, timeout=5):
        message = self.recv(timeout)
        assert message.get('cmd') == 1, message
        return message

    def recv_messages(self, count, timeout=5):
        return [self.recv(timeout) for _ in range(count)]

    def expect_nothing(self, wait=0.3):
        """No message arrives for `wait` seconds (pings are answered and ignored)."""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.ws.settimeout(remaining)
            try:
                opcode, frame = self.ws.recv_data_frame(True)
            except (websocket.WebSocketTimeoutException, socket.timeout):
                return
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY) and \
                    json.loads(frame.data.decode('utf-8')).get('cmd') in self.ignore:
                continue
            if opcode not in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                raise AssertionError('unexpected frame {} {!r}'.format(opcode, frame.data))

    def close_code(self, timeout=5):
        """Wait for the server's close frame; return (code, reason)."""
        self.ws.settimeout(timeout)
        while True:
            frame = self.ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data
                self._answer_close(data)
                code = int.from_bytes(data[:2], 'big') if len(data) >= 2 else None
                return code, data[2:].decode('utf-8', 'replace')

    def _answer_close(self, data):
        """Answer the server's close frame as a browser does (RFC 6455 5.5.1: echo its
        code) and end the connection: a server waits a while for that answer before it
        lets the connection go, and a test would wait with it."""
        try:
            self.ws.send_close(int.from_bytes(data[:2], 'big') if len(data) >= 2
                               else websocket.STATUS_NORMAL)
        except Exception:
            pass  # the server already went
        self.ws.shutdown()

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def raw_handshake(port, account, rcvbuf=None, since=None, local_port=None):
    """Open a WebSocket by hand and return the plain socket: a client that can stall,
    send half a frame, or vanish without a close frame. `local_port` reuses a client
    port (SO_REUSEADDR)."""
    sock = socket.socket()
    if local_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', local_port))
    sock.connect(('127.0.0.1', port))
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    query = 'id={}&token={}'.format(account.id, account.token)
    if since is not None:
        query += '&since={}'.format(since)
    sock.sendall(('GET /chat?{} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
                  'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                  'Sec-WebSocket-Version: 13\r\n\r\n').format(query).encode())
    response = b''
    while b'\r\n\r\n' not in response:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionClosed(response)
        response += chunk
    assert response.startswith(b'HTTP/1.1 101'), response
    return sock


class ConnectionClosed(Exception):
    pass
