"""Who is online, for profiles (service.user) and presence announcements
(service.events). One process knows its own connections (`HubPresence`); several nodes
joined by a bus know the whole deployment's (`imchat.service.bus.presence`). See
docs/architecture.md.
"""
from typing import Iterable, List, Protocol


class Presence(Protocol):
    # True when only this process's connections count: then "nobody else is connected
    # here" means nobody hears an announcement, and it is skipped.
    local: bool

    def is_online(self, user_id: int) -> bool:
        """True when `user_id` has a connection open (anywhere it can see)."""

    def online_among(self, user_ids: Iterable[int]) -> List[int]:
        """Those of `user_ids` who are online, in the order given."""


class HubPresence:
    """One process: a user is online while the hub holds a connection of theirs."""

    local = True

    def __init__(self, hub) -> None:
        self.hub = hub

    def is_online(self, user_id: int) -> bool:
        return self.hub.is_online(user_id)

    def online_among(self, user_ids: Iterable[int]) -> List[int]:
        return [u for u in user_ids if self.hub.is_online(u)]
