"""The ``memory://`` backend: groups within one process.

Group history is a bounded ring per group (:class:`Ring`); a position is
the ring's epoch (random, new with each ring) and a sequence number, so
that a position from an earlier process, or from a ring that expired, is
unknown to the ring of today. A new ring numbers its messages after every
one the backend numbered before, so that the positions of a group only
grow: a replay that compares them (``order()``) never takes a message of
a new ring for one it has already replayed.
"""

from __future__ import annotations

import asyncio
from collections import deque
import itertools
import re
import time
import uuid

from pyramid_asgi_ws.broadcast.backend import Backend, Entries, OnMessage

#: The sequence number of a position: ASCII digits (``str.isdigit``
#: takes ``'²'``, which ``int()`` refuses), few enough for ``int()``.
SEQUENCE = re.compile(r'[0-9]{1,19}')

#: Expired rings forgotten at most on each append.
FORGET_BATCH = 8


class Ring:
    """The last ``size`` messages of one group, each for ``ttl`` seconds
    (``None``: until pushed out), numbered from ``last + 1``."""

    def __init__(self, size: int, ttl: float | None, last: int = 0) -> None:
        self.size = size
        self.ttl = ttl
        self.epoch = uuid.uuid4().hex[:8]
        self.entries: deque[tuple[int, float, bytes]] = deque(maxlen=size)
        self.last = last
        self.touched = time.monotonic()

    def append(self, payload: bytes) -> str:
        """Keep ``payload``; return its position."""
        self.last += 1
        self.touched = now = time.monotonic()
        self.entries.append((self.last, now, payload))
        self.trim(now)
        return f'{self.epoch}-{self.last}'

    def trim(self, now: float) -> None:
        """Forget the messages older than ``ttl``."""
        if self.ttl is None:
            return
        entries, oldest = self.entries, now - self.ttl
        while entries and entries[0][1] < oldest:
            entries.popleft()

    @property
    def expired(self) -> bool:
        """Whether everything it kept is past its ``ttl``."""
        self.trim(time.monotonic())
        return not self.entries and self.ttl is not None

    def read(self, since: str, count: int) -> Entries | None:
        """Return up to ``count`` entries after ``since``, or ``None``
        when the ring no longer reaches back to it."""
        epoch, _, number = since.partition('-')
        if epoch != self.epoch or SEQUENCE.fullmatch(number) is None:
            return None
        seq = int(number)
        self.trim(time.monotonic())
        entries = self.entries
        first = entries[0][0] if entries else self.last + 1
        if not first - 1 <= seq <= self.last:
            return None
        start = seq - first + 1
        return [
            (f'{self.epoch}-{entry}', payload)
            for entry, _, payload in itertools.islice(
                entries, start, start + count
            )
        ]


class MemoryBackend(Backend):
    """Delivers within one process: ``memory://``."""

    supports_history = True

    def __init__(self, url: str = 'memory://') -> None:
        super().__init__(url)
        self.on_message: OnMessage | None = None
        self.channels: set[str] = set()
        self.presence: dict[str, dict[str, bytes]] = {}
        #: Rings by group.
        self.history: dict[str, Ring] = {}
        #: The rings with a ttl by ttl, each the least recently appended
        #: to first: the order in which they expire.
        self.aging: dict[float, dict[str, Ring]] = {}
        #: Messages appended so far: where a new ring's numbers start.
        self.appended = 0

    async def connect(self, on_message: OnMessage) -> None:
        self.on_message = on_message

    async def disconnect(self) -> None:
        self.on_message = None
        self.channels.clear()
        self.presence.clear()
        self.history.clear()
        self.aging.clear()

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def publish(
        self, channel: str, payload: bytes, position: str | None = None
    ) -> None:
        if self.on_message is not None and channel in self.channels:
            self.on_message(channel, payload, position)
        # Let the send queues drain between two publishes, as they do
        # while a network backend waits for its server.
        await asyncio.sleep(0)

    async def append(
        self, channel: str, payload: bytes, size: int, ttl: float | None
    ) -> None:
        ring = self.history.get(channel)
        if ring is None or (ring.size, ring.ttl) != (size, ttl):
            ring = self.history[channel] = Ring(size, ttl, self.appended)
        self.appended += 1
        position = ring.append(payload)
        if ttl is not None:
            aging = self.aging.setdefault(ttl, {})
            aging.pop(channel, None)
            aging[channel] = ring
        for aging in self.aging.values():
            self._forget_expired(aging)
        await self.publish(channel, payload, position)

    def _forget_expired(self, aging: dict[str, Ring]) -> None:
        """Forget the rings of one ttl whose messages have all expired,
        the oldest first, so that idle groups cost nothing.

        Rings of another ttl, or of none, never stand in the way: each
        ttl has its own order of expiry, looked at on every append.
        """
        for name in list(itertools.islice(aging, FORGET_BATCH)):
            ring = aging[name]
            if not ring.expired:
                return
            del aging[name]
            if self.history.get(name) is ring:
                del self.history[name]

    async def read(
        self, channel: str, since: str, count: int
    ) -> Entries | None:
        ring = self.history.get(channel)
        return None if ring is None else ring.read(since, count)

    def order(self, position: str) -> int:
        """The sequence number of a position this backend gave."""
        return int(position.rpartition('-')[2])

    async def add_member(self, channel: str, member: str, info: bytes) -> None:
        self.presence.setdefault(channel, {})[member] = info

    async def remove_member(self, channel: str, member: str) -> None:
        members = self.presence.get(channel, {})
        members.pop(member, None)
        if not members:
            self.presence.pop(channel, None)

    async def members(self, channel: str) -> dict[str, bytes]:
        return dict(self.presence.get(channel, {}))
