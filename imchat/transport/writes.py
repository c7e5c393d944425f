"""Writes that never block the caller, and the connection state both adapters share.

While the socket accepts, frames are written in place, all the frames handed over at
once in one `send` (no greenlet, no timer). When the kernel's buffer is full, the rest
is parked and one short-lived greenlet (`_writer`: writes are parked exactly while it
lives) finishes it; every wait for the socket to take more has a deadline
(`send_timeout` seconds), and a connection that misses it, or parks more than
`max_pending` frames, is cut off (`on_stalled(reason)`): a peer that stopped reading
can hold nothing up.
"""
from typing import Callable, List, Optional

import gevent

from imchat.transport.state import CLOSED, OPEN, ConnectionState, checked_move


class _Stalled(Exception):
    """A parked write waited longer than the send deadline."""


class ParkedWrites:
    """Write in place while the socket takes it; park the rest for one greenlet.

    Subclasses provide `_send_now(frames)` (write without waiting; returns what is
    left, or None), `_parked_item(frames)` (what to park), `_send_waiting(item)` (write
    one parked item, waiting for the socket, at most `send_timeout` seconds for each
    step of progress, inside `self._deadline()`), and `abort()`."""

    # Frames parked at most, and seconds a parked write may wait for the peer to read;
    # the owner (the hub's Client) sets both, with `on_stalled(reason)` for a cut-off.
    max_pending = 0
    send_timeout = 0
    on_stalled: Optional[Callable[[str], None]] = None

    def _init_writes(self) -> None:
        self.state = OPEN
        self.written_high = 0  # highest message id written to the socket
        self._parked = None  # items waiting for the writer greenlet
        self._parked_frames = 0
        self._parked_high = 0
        self._writer = None

    def _end(self, new: ConnectionState) -> None:
        """Leave OPEN for `new` (CLOSING or CLOSED); a connection already CLOSED stays
        so (the peer may go, or a write fail, while this side says goodbye)."""
        if self.state is not CLOSED:
            self.state = checked_move(self.state, new)

    def send(self, outgoing) -> None:
        self.send_frames([outgoing])

    def send_frames(self, frames: List, high: int = 0, counted: bool = True) -> None:
        """Write these frames (in order, after anything parked); `high` is the highest
        message id among them. Never blocks; nothing is written unless OPEN. Frames not
        `counted` do not count towards `max_pending` (a page of backlog, whose sender
        waits for it to be written)."""
        if self.state is not OPEN:
            return
        if self._writer is None:
            try:
                rest = self._send_now(frames)
            except OSError:
                self.abort()
                return
            if rest is None:
                if high:
                    self.written_high = high
                return
            self._parked = [rest]
            self._writer = gevent.spawn(self._drain)
        else:
            self._parked.append(self._parked_item(frames))
        if counted:
            self._parked_frames += len(frames)
        if high:
            self._parked_high = high
        if self.max_pending and self._parked_frames > self.max_pending:
            self._stall('the connection stopped reading')

    def _stall(self, reason):
        if self.on_stalled is not None:
            self.on_stalled(reason)
        self.abort()

    def _drain(self):
        try:
            while self._parked:
                items, high = self._parked, self._parked_high
                self._parked, self._parked_frames = [], 0
                for item in items:
                    self._send_waiting(item)
                if high:
                    self.written_high = high
        except _Stalled:
            self._stall('the connection did not read for {} s'.format(self.send_timeout))
        except OSError:
            self.abort()
        finally:
            self._parked = None
            self._writer = None

    def _deadline(self):
        return gevent.Timeout(self.send_timeout or None, _Stalled)

    def read_in_background(self, session) -> bool:
        """False: this connection is read in the request's own greenlet (see
        GeventConnection)."""
        return False

    def wait_written(self) -> None:
        """Wait until nothing is parked (or the connection is cut off)."""
        writer = self._writer
        if writer is not None:
            writer.join()
