"""One load-generating process of bench/chat_bench.py: picows WebSockets on uvloop.

The orchestrator starts several of these pinned to the cores the server does not use,
writes one JSON job on stdin and talks to it by lines:

    worker -> {"ready": ...}   every connection of the job is open and set up
    orch   -> go               start sending (all workers at once)
    worker -> {"result": ...}  the phase is over (or stalled): counts, a latency
                               histogram, the worker's own CPU seconds
    orch   -> close            (idle job) close the sockets and exit

Jobs:
  chat: `conns` [{"uid", "token"}], `senders` [{"conn": index, "dstid", "cmd",
        "count", "local": [indexes of the recipients in this process]}], `expect`
        {index: {sender uid: count}}, `window`. A message is complete when it is
        acknowledged and delivered to every recipient in this process; a sender keeps
        at most `window` incomplete messages.
  idle: `conns`, `concurrency`: open them, report, hold them until "close". A
        connection counts as open (and frees its place among the `concurrency`
        being opened) once the server answers a ping on it, that is, once the server
        has set it up and reads it: the server answers the upgrade before it
        authenticates and sends the backlog, so without this the load would open
        connections as fast as the server upgrades them, and thousands would be in
        set-up at once (with IMCHAT_WS_HANDSHAKES=0, as here): the RSS figure would
        then be the allocator's high-water mark of that pile-up, not what a
        connection costs at rest.
  Chat connections are waited for the same way, so that a phase measures chat, not
  the set-up of the connections: a message sent to a group while members are still
  being set up reaches them only with their backlog, and its latency was the set-up's.

Message content is "<sender uid>:<seq>:<send time in ns>", so a recipient measures
latency on the shared monotonic clock and counts lost, duplicated and out-of-order
messages without asking anyone.
"""
import asyncio
import json
import resource
import sys
import time

import orjson
import uvloop
from picows import WSListener, WSMsgType, ws_connect

# Latency histogram buckets of 50 µs, up to 30 s.
BUCKET_NS = 50_000
BUCKETS = 600_000
STALL_SECONDS = 15
SETUP_SECONDS = 60  # a connection not set up in this long is tried again (job: setup)
PACE_SECONDS = 0.001  # libuv timers count whole milliseconds
TEXT = WSMsgType.TEXT
monotonic_ns = time.monotonic_ns


class Conn(WSListener):
    def __init__(self, gen, index):
        self.gen = gen
        self.index = index
        self.transport = None
        self.last_msgid = 0
        self.closed = None
        self.seen = {}  # sender uid (its digits, bytes) -> bytearray of the seqs received
        self.on_text = gen.on_text
        self.pong = None  # a future, while waiting for the answer to a ping
        self.sender = None  # the Sender on this connection, if it sends

    def on_ws_connected(self, transport):
        self.transport = transport

    def on_ws_frame(self, transport, frame):
        kind = frame.msg_type
        if kind is TEXT:
            self.on_text(self, frame.get_payload_as_bytes())
        elif kind is WSMsgType.PONG:
            if self.pong is not None and not self.pong.done():
                self.pong.set_result(None)
        elif kind is WSMsgType.CLOSE:
            self.closed = frame.get_close_code()
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        if self.closed is None:
            self.closed = 'disconnected'
        if self.pong is not None and not self.pong.done():
            self.pong.set_result(None)


class Sender:
    def __init__(self, conn, spec):
        self.conn = conn
        self.uid = spec['uid']
        self.dstid = spec['dstid']
        self.cmd = spec['cmd']
        self.count = spec['count']
        self.local = len(spec['local'])
        self.state = bytearray(self.count)  # deliveries seen locally, +1 per ack
        self.next = 0
        self.done = 0
        self.in_flight = 0
        self.ids = {}
        # Paced (`rate` messages/s): message `seq` is due at start + seq * interval, and
        # its latency counts from then, so a window that holds it back counts too
        # (no coordinated omission). Unpaced: sent as the window allows, timed from then.
        rate = spec.get('rate')
        self.interval_ns = int(1e9 / rate) if rate else 0
        self.start_ns = 0

    def complete(self, seq):
        self.in_flight -= 1
        self.done += 1


class Gen:
    def __init__(self, job):
        self.job = job
        self.url = job['url']
        self.window = job.get('window', 10)
        self.conns = []
        self.senders = {}
        self.hist = [0] * BUCKETS
        self.delivered = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.acked = 0
        self.refused = 0
        self.events = 0
        self.expected = 0
        self.progress = 0
        self.finished = None

    async def connect_all(self, concurrency):
        gate = asyncio.Semaphore(concurrency)

        setup = self.job.get('setup', SETUP_SECONDS)

        async def open_one(index, conn):
            _, listener = await ws_connect(
                lambda: Conn(self, index),
                '{}?id={}&token={}'.format(self.url, conn['uid'], conn['token']),
                websocket_handshake_timeout=setup)
            self.conns[index] = listener
            await self.served(listener)

        async def one(index, conn):
            async with gate:
                for attempt in range(5):
                    try:
                        # Upgraded and its ping answered within `setup` seconds, else
                        # tried again: a server out of files leaves it waiting.
                        await asyncio.wait_for(open_one(index, conn), setup)
                        return
                    except (OSError, asyncio.TimeoutError):
                        listener = self.conns[index]
                        if listener is not None and listener.transport is not None:
                            listener.transport.disconnect(graceful=False)
                        self.conns[index] = None
                        if attempt == 4:
                            raise
                        print('connection {} (user {}) not set up: tried again'.format(
                            index, conn['uid']), file=sys.stderr)
                        await asyncio.sleep(0.5 * (attempt + 1))

        self.conns = [None] * len(self.job['conns'])
        await asyncio.gather(*(one(i, c) for i, c in enumerate(self.job['conns'])))

    @staticmethod
    async def served(conn):
        """Wait until the server answers a ping: it has set the connection up.

        A close that came with the upgrade, before this ran (a bad token, say), has
        already ended the connection: it is open, and closed by the server."""
        if conn.closed is not None:
            return
        conn.pong = asyncio.get_running_loop().create_future()
        conn.transport.send_ping()
        try:
            await conn.pong
        finally:
            conn.pong = None

    # -- the chat phase -------------------------------------------------------------

    def prepare_chat(self):
        for spec in self.job['senders']:
            conn = self.conns[spec['conn']]
            spec['uid'] = self.job['conns'][spec['conn']]['uid']
            # Keyed by the uid's digits as a delivery carries them: no int() a delivery.
            conn.sender = self.senders[str(spec['uid']).encode()] = Sender(conn, spec)
        for index, by_sender in self.job['expect'].items():
            for uid, count in by_sender.items():
                self.conns[int(index)].seen[str(uid).encode()] = bytearray(count)
                self.expected += count

    def send_more(self, sender):
        transport = sender.conn.transport
        limit = sender.count
        interval = sender.interval_ns
        if interval:
            limit = min(limit, (monotonic_ns() - sender.start_ns) // interval + 1)
        while sender.in_flight < self.window and sender.next < limit:
            seq = sender.next
            sender.next += 1
            sender.in_flight += 1
            client_id = 'b{}-{}-{}'.format(sender.uid, seq, 'xxxxxxxx')
            sender.ids[client_id] = seq
            sent = sender.start_ns + seq * interval if interval else monotonic_ns()
            transport.send(WSMsgType.TEXT, orjson.dumps(
                {'id': client_id, 'cmd': sender.cmd, 'dstid': sender.dstid, 'media': 1,
                 'content': '{}:{}:{}'.format(sender.uid, seq, sent)}))

    async def pace(self):
        """Send the paced senders' messages as they fall due (every PACE_SECONDS)."""
        paced = [s for s in self.senders.values() if s.interval_ns]
        while paced and not self.finished.is_set():
            await asyncio.sleep(PACE_SECONDS)
            for sender in paced:
                self.send_more(sender)

    def on_text(self, conn, payload):
        now = monotonic_ns()
        self.progress += 1
        if not payload.startswith(b'{"msgid":'):
            self.on_other(conn, orjson.loads(payload))
            return
        # A delivery, laid out by the server as {"msgid":N,...,"content":"..."}: read
        # it without a full parse, to keep up with hundreds of thousands a second.
        msgid = int(payload[9:payload.find(b',', 9)])
        if msgid <= conn.last_msgid:
            self.out_of_order += 1
        conn.last_msgid = msgid
        # The content, last: from the quote that opens it (it holds none) to '"}'.
        uid, seq, sent = payload[payload.rfind(b'"', 0, -2) + 1:-2].split(b':')
        seen = conn.seen.get(uid)
        if seen is None:
            return
        seq = int(seq)
        if seen[seq]:
            self.duplicates += 1
            return
        seen[seq] = 1
        self.delivered += 1
        bucket = (now - int(sent)) // BUCKET_NS
        self.hist[bucket if bucket < BUCKETS else BUCKETS - 1] += 1
        sender = self.senders.get(uid)
        if sender is not None:
            self._advance(sender, seq)
        if self.delivered == self.expected and self._senders_done():
            self.finished.set()

    def on_other(self, conn, wire):
        if wire.get('cmd') != 1:
            self.events += 1  # presence and the like, on commits that send them
            return
        sender = conn.sender
        if sender is None or wire.get('id') not in sender.ids:
            return
        if wire.get('code') != 0:
            self.refused += 1
            print('refused: {}'.format(wire), file=sys.stderr)
            return
        self.acked += 1
        self._advance(sender, sender.ids.pop(wire['id']))

    def _advance(self, sender, seq):
        state = sender.state[seq] + 1
        sender.state[seq] = state
        if state == sender.local + 1:  # acknowledged and delivered here
            sender.complete(seq)
            self.send_more(sender)
            if sender.done == sender.count and self.delivered == self.expected \
                    and self._senders_done():
                self.finished.set()

    def _senders_done(self):
        return all(s.done == s.count for s in self.senders.values())

    async def run_chat(self):
        self.finished = asyncio.Event()
        if not self.expected and not self.senders:
            self.finished.set()
        cpu0, start = time.process_time(), time.monotonic()
        start_ns = monotonic_ns()
        senders = list(self.senders.values())
        for index, sender in enumerate(senders):
            # Paced senders are spread over one interval, not all due at the same instant.
            sender.start_ns = start_ns + index * sender.interval_ns // len(senders)
            self.send_more(sender)
        pacer = asyncio.ensure_future(self.pace())
        last_progress, last_change = -1, time.monotonic()
        while not self.finished.is_set():
            try:
                await asyncio.wait_for(self.finished.wait(), 1)
            except asyncio.TimeoutError:
                pass
            if self.progress != last_progress:
                last_progress, last_change = self.progress, time.monotonic()
            elif time.monotonic() - last_change > self.job.get('stall', STALL_SECONDS):
                break
        pacer.cancel()
        end = time.monotonic()
        cpu = time.process_time() - cpu0
        hist = {i: n for i, n in enumerate(self.hist) if n}
        closed = [c.closed for c in self.conns if c.closed is not None]
        return {'start': start, 'end': end, 'cpu': cpu, 'acked': self.acked,
                'sent': sum(s.next for s in self.senders.values()),
                'delivered': self.delivered, 'expected': self.expected,
                'duplicates': self.duplicates, 'out_of_order': self.out_of_order,
                'refused': self.refused, 'closed': len(closed), 'hist': hist}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


async def read_line():
    return (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()


async def main():
    job = json.loads(sys.stdin.readline())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gen = Gen(job)
    t0 = time.monotonic()
    await gen.connect_all(job.get('concurrency', 32))
    if job['kind'] == 'idle':
        emit({'ready': len(gen.conns), 'seconds': time.monotonic() - t0})
        await read_line()
        closed = sum(1 for c in gen.conns if c.closed is not None)
        for conn in gen.conns:
            conn.transport.disconnect(graceful=False)
        emit({'result': {'closed_by_server': closed}})
        return
    gen.prepare_chat()
    emit({'ready': len(gen.conns)})
    await read_line()
    result = await gen.run_chat()
    emit({'result': result})
    for conn in gen.conns:
        conn.transport.disconnect(graceful=False)


if __name__ == '__main__':
    uvloop.run(main())
