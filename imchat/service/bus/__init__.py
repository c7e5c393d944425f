"""The message bus that joins several imchat processes (nodes) into one deployment.
See docs/architecture.md and docs/scaling.md; bus.node says how the pieces fit, and
bus.sequencer states the invariant (order and no loss with several writers).
"""
from imchat.service.bus.node import Bus, make_bus, prepare_streams
from imchat.service.bus.urls import (BusURLError, bus_url_for_worker, default_node_id,
                                     parse_bus_url)

__all__ = ['Bus', 'BusURLError', 'bus_url_for_worker', 'default_node_id', 'make_bus',
           'parse_bus_url', 'prepare_streams']
