"""The bus's ordering core: a node releases messages to its connections in id order,
and only past ids that are all accounted for. See docs/architecture.md.

THE INVARIANT (order and no loss with several writers)

1. Message ids are dense and commit in id order. Every inserting transaction moves the
   `message` stream's row on (model.take_ids); that row stays locked until the commit,
   so a second writer waits, a rolled-back batch gives its ids back, and when id N is
   committed every id below N is committed too. (This is Synapse's "stream" with one
   position, made safe for several writers by the row lock instead of per-writer
   positions.)
2. Each node delivers to its connections in id order, and only up to `done`: the
   highest id such that every id at or below it has either reached this node (and been
   delivered) or is known to concern nobody here. A writer, after publishing a batch's
   messages to their targets, publishes the batch's id range ("covered"); a message
   above `done` waits (held) until the ids below it are covered.
3. A gap (an id range nobody covered: a writer died between commit and publish, a
   datagram was lost, the bus was down) is filled from the database after GAP_WAIT
   (bus.gaps): the node reads the rows of the gap, delivers those that concern its
   connections in id order, and moves `done` past them. Each node also reads the
   stream's position every POLL seconds, so a gap at the very end (the last writer
   died) is found too.
4. A connection registers (and this node hears its channels) before it reads its
   backlog from the database. Whatever this node did not hear was published before, so
   was committed before, so is in the backlog; whatever it hears later is delivered in
   id order above what the backlog gave (service.client.Client drops ids it already has).

So every connection sees increasing ids, and `since` = the highest id it saw never
skips one: every id below it was committed, and either delivered or not its own.

The sequencer knows ids only: what it holds for an id (an item) is its caller's, handed
back to `deliver(item)` in order; `deliver` returning True pauses the release (a join
waiting for its channel) until `resume`.
"""
import bisect
import logging
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

log = logging.getLogger(__name__)

Rows = Iterable[Tuple[int, object]]


class Sequencer:
    """Releases held items to `deliver` in id order, only past ids all accounted for."""

    def __init__(self, start: int, deliver: Callable[[object], Optional[bool]]) -> None:
        self.done = start          # every id <= done is delivered or not ours
        self.top = start           # highest id known to be committed
        self.ranges: List[List[int]] = []  # sorted [first, last] covered above done
        self.held: Dict[int, object] = {}  # msgid -> item waiting for done
        self.stuck_since: Optional[float] = None
        self.paused = False        # a join waits for its channel (bus.delivery)
        self._deliver = deliver

    def hold(self, msgid: int, item: object, preferred: bool = False) -> None:
        """Keep `item` until its id is released. A `preferred` item (this node's own
        publish, which knows the sender's connection) replaces a copy held before."""
        if msgid <= self.done:
            return  # already filled from the database
        if msgid not in self.held or preferred:
            self.held[msgid] = item
        self.top = max(self.top, msgid)

    def cover(self, first: int, last: int) -> None:
        """Every id of first..last has been published (held here if it is ours)."""
        if last <= self.done:
            return
        bisect.insort(self.ranges, [max(first, self.done + 1), last])
        self.top = max(self.top, last)
        self.advance()

    def saw_position(self, pos: int) -> None:
        """The stream's position read from the database: ids up to it are committed."""
        if pos > self.top:
            self.top = pos
            self.advance()

    def advance(self) -> None:
        if self.paused:
            return
        done = self.done
        while self.ranges and self.ranges[0][0] <= done + 1:
            done = max(done, self.ranges.pop(0)[1])
        self._release_to(done)
        self.stuck_since = None if self.done >= self.top else (
            self.stuck_since or time.monotonic())

    def _release_to(self, upto: int, rows: Rows = ()) -> None:
        """Deliver what is held up to `upto` (with `rows` from the database), in order;
        stops early (paused) after an item whose delivery asks to wait. Never yields
        (`deliver` only queues frames), so greenlets never interleave in here."""
        if upto <= self.done:
            return
        ready = dict(rows)
        for msgid in [m for m in self.held if m <= upto]:
            ready[msgid] = self.held.pop(msgid)
        order = sorted(ready)
        for n, msgid in enumerate(order):
            try:
                wait = self._deliver(ready[msgid])
            except Exception:
                log.exception('delivering message %s failed', msgid)
                wait = False
            if wait and msgid < upto:
                # Everything up to `upto` is accounted for: keep the rest for later.
                for later in order[n + 1:]:
                    self.held[later] = ready[later]
                self.done = msgid
                bisect.insort(self.ranges, [msgid + 1, upto])
                self.paused = True
                return
            self.paused = bool(wait)
        self.done = upto
        while self.ranges and self.ranges[0][1] <= upto:
            self.ranges.pop(0)

    def resume(self, rows: Rows) -> None:
        """Go on after a pause, with more of the database's rows to hold."""
        for msgid, item in rows:
            if msgid > self.done:
                self.held.setdefault(msgid, item)
                self.top = max(self.top, msgid)
        self.paused = False
        self.advance()

    def fill(self, upto: int, rows: Rows) -> None:
        """The database's rows (msgid, item) for (done, upto]: every committed id in
        that range."""
        if self.paused:
            return
        self._release_to(upto, rows)
        self.advance()

    def gap_age(self) -> float:
        """Seconds `done` has been below `top` (0 when it is not)."""
        return 0 if self.stuck_since is None else time.monotonic() - self.stuck_since
