"""A batch's place in the message writer's order (service.writer): batches are stored,
delivered and acknowledged in the order they were taken, and on MySQL the next one is
sent while this one still holds the message stream. See service.writer's module doc."""
from gevent.event import Event


class Turn:
    """A batch's place in the order batches are stored, delivered and acked in."""

    __slots__ = ('after', 'changed', 'over', 'follower')

    def __init__(self):
        # While an attempt at storing the batch holds the message stream: what the next
        # batch may expect of it (insert_messages' `after`); None when it does not.
        self.after = None
        # Set (and replaced) whenever `after` is set or the turn is over.
        self.changed = Event()
        # Set once the batch's outcomes are all delivered.
        self.over = Event()
        # The next batch's attempt that counts on `after`, until it has ended: an Event
        # set then. A failed attempt waits for it before its batch tries again, so that
        # one cannot commit first.
        self.follower = None

    def hold(self, after):
        self.after = after
        self._change()

    def lose(self):
        """The attempt that held the stream failed: wait until the next batch's attempt
        that counted on it has failed too (it cannot commit)."""
        self.after = None
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.wait()

    def finish(self):
        self.after = None
        self.over.set()
        self._change()

    def _change(self):
        changed, self.changed = self.changed, Event()
        changed.set()
