"""Named events between services: one `Signal` per event, its handlers connected once
at start (in `imchat.services`, where the wiring is read in one place) and called in
the order they were connected. See docs/architecture.md.

A signal raised here can be carried to the other nodes of a deployment (the bus relays
it: `imchat.service.bus.node.Bus.relay`): there it is raised with `emit_relayed`, which
skips the handlers connected with `relayed=False` (the relay itself, so nothing is
carried back and forth).
"""
import logging
from typing import Callable, Generic, List, ParamSpec, Tuple

P = ParamSpec('P')

log = logging.getLogger(__name__)


class Signal(Generic[P]):
    """One named event: `connect` handlers, `emit` to call each in turn."""

    __slots__ = ('name', '_handlers')

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: List[Tuple[Callable[P, object], bool]] = []

    def __repr__(self) -> str:
        return '<Signal {} ({} handlers)>'.format(self.name, len(self._handlers))

    def connect(self, handler: Callable[P, object], *, relayed: bool = True) -> None:
        """Call `handler` on each emit; with `relayed=False`, only for the events raised
        on this node, not for those the bus brings from another."""
        self._handlers.append((handler, relayed))

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call every handler synchronously, in connection order: when emit returns, each
        has run (a handler may block, e.g. until the bus hears a channel). A handler
        that raises stops the rest and the error reaches the caller, as a direct call's
        would."""
        for handler, _ in tuple(self._handlers):
            handler(*args, **kwargs)

    def emit_relayed(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """The event raised on another node: every handler but those connected with
        `relayed=False`. Nobody here called it, so a handler that raises is logged and
        the others run."""
        for handler, relayed in tuple(self._handlers):
            if not relayed:
                continue
            try:
                handler(*args, **kwargs)
            except Exception:
                log.exception('a relayed %s failed', self.name)
