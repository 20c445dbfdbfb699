"""Group history: which groups keep it, and the replay of what a member
missed.

A group with history gives each message a position (an opaque string,
ordered within the group) and keeps the last messages in its backend.
:class:`HistoryPolicy` says which groups keep how much, from the
``asgi_ws.history_size``, ``asgi_ws.history_ttl`` and ``asgi_ws.history``
settings. :class:`Replay` stands in for a member joining with ``since=``:
it holds the live messages back while the history after ``since`` is
read, so that the member receives that history, then the live stream,
with no gap and no duplicate.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
import functools
from typing import Any

from pyramid.exceptions import ConfigurationError

from pyramid_asgi_ws.broadcast.backend import Backend
from pyramid_asgi_ws.broadcast.codec import Payload
from pyramid_asgi_ws.broadcast.member import Member

#: What a group keeps: ``(size, ttl)``, or ``None`` for no history.
Keep = tuple[int, float | None] | None

#: Entries read from the backend at once during a replay.
READ_BATCH = 500

#: Group names whose history settings are remembered at most.
CACHED_GROUPS = 4096


class HistoryPolicy:
    """Which groups keep history, how many messages and for how long.

    ``rules`` are ``(pattern, size, ttl)`` triples tried in order, the
    patterns in :mod:`fnmatch` style (``room:*``), a ``size`` of ``None``
    meaning no history for the groups it matches; a group no rule matches
    keeps ``size`` messages for ``ttl`` seconds. A size of ``None`` (the
    default) keeps no history; a ``ttl`` of ``None`` keeps messages until
    they are pushed out by newer ones.
    """

    def __init__(
        self,
        size: int | None = None,
        ttl: float | None = None,
        rules: tuple[tuple[str, int | None, float | None], ...] = (),
    ) -> None:
        if ttl is not None and size is None:
            raise ConfigurationError(
                f'asgi_ws.history_ttl = {ttl!r} needs asgi_ws.history_size: '
                'a history is bounded by a number of messages'
            )
        self.size = size
        self.ttl = ttl
        self.rules = rules
        self.keep = functools.lru_cache(maxsize=CACHED_GROUPS)(self._keep)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> HistoryPolicy:
        """Return the policy of the parsed ``asgi_ws.*`` settings."""
        return cls(
            settings['history_size'],
            settings['history_ttl'],
            settings['history'],
        )

    @property
    def enabled(self) -> bool:
        """Whether any group may keep history."""
        return self.size is not None or any(
            size is not None for _, size, _ in self.rules
        )

    def _keep(self, group: str) -> Keep:
        """Return ``(size, ttl)`` for ``group``, or ``None``."""
        for pattern, size, ttl in self.rules:
            if fnmatchcase(group, pattern):
                return None if size is None else (size, ttl)
        return None if self.size is None else (self.size, self.ttl)


class Replay:
    """A member's stand-in in its group while its history is replayed.

    The broadcaster puts it in the group in the member's place: live
    messages that arrive meanwhile are held here (at most ``limit``, the
    group's history size) instead of reaching the member. :meth:`run`
    hands the member every message after ``since``, reading the backend
    in batches until it has nothing more; a held message met in the
    history is replayed once, in its place, and a live one that arrives
    after its copy in the history was replayed is dropped (the backend's
    ``order()`` compares positions). :meth:`release` then hands over the
    held messages that came after the last one replayed, and the stand-in
    stays until the live stream has passed it. It
    compares equal to its member (and hashes alike), so that a ``leave``
    during the replay finds it.
    """

    def __init__(
        self,
        backend: Backend,
        member: Member,
        group: str,
        limit: int,
        since: str,
    ) -> None:
        self.backend = backend
        self.member = member
        self.group = group
        self.limit = limit
        self.since = since
        self.held: dict[str, Payload] = {}
        self.overflowed = False
        self.replayed = 0
        #: The position of the last message replayed (``since`` before).
        self.position = since
        self._last: Any = None  # the order of the last message replayed
        self._released = False
        self._group_members: set[Any] | None = None

    # -- the Member interface, for the broadcaster's fan-out --------------

    @property
    def identifier(self) -> str | None:
        return self.member.identifier

    @property
    def groups(self) -> set[str]:
        return self.member.groups

    @property
    def presence(self) -> Any:
        return self.member.presence

    @property
    def dropped(self) -> int:
        return self.member.dropped

    def __eq__(self, other: object) -> bool:
        return other is self or other is self.member

    def __hash__(self) -> int:
        return hash(self.member)

    def deliver(self, group: str, payload: Payload) -> bool:
        """Hold a live message until the replay is done; after it, drop
        the late live copies of messages it replayed."""
        position = payload.position
        if self._released:  # passing through
            if position is not None and self._replayed(position):
                return True
            self._put_back()
            return self.member.deliver(group, payload)
        if position is None:  # published before history was on
            return self.member.deliver(group, payload)
        if self._replayed(position):
            # Read from the history before its live copy arrived.
            return True
        if len(self.held) >= self.limit:
            # Faster than the replay can read them: the history is being
            # trimmed under the replay, which cannot be whole any more.
            self.overflowed = True
            return False
        self.held[position] = payload
        return True

    def _replayed(self, position: str) -> bool:
        last = self._last
        return last is not None and self.backend.order(position) <= last

    # -- the replay -------------------------------------------------------

    async def run(self) -> bool:
        """Hand the member the history after ``since``; return whether it
        was whole (the history reached back to ``since``).

        Between two messages it waits, when the member has a
        ``wait_room()`` coroutine, for room in the member's queue: a long
        history does not overflow it. A member gone meanwhile (its
        ``wait_room()`` says ``False``) ends the replay: ``False``. A
        replay the backend failed (:class:`BroadcastError`) may run again:
        it goes on after the last message it replayed.
        """
        position = self.position
        if not isinstance(position, str):
            return False  # a client's value that is not a position at all
        wait_room = getattr(self.member, 'wait_room', None)
        while True:
            entries = await self.backend.read(self.group, position, READ_BATCH)
            if entries is None or self.overflowed:
                self.held.clear()  # after a gap: the live stream only
                return False
            if self._last is None:
                self._start_after(self.since)
            if not entries:
                return True
            for position, data in entries:
                if wait_room is not None and await wait_room() is False:
                    return False  # gone: the rest would be read for nobody
                if self.group not in self.member.groups:
                    return True  # it left meanwhile
                payload = self.held.pop(position, None)
                if payload is None:
                    payload = Payload(data, position)
                self.member.deliver(self.group, payload)
                self.replayed += 1
                self.position = position
                self._last = self.backend.order(position)

    def _start_after(self, since: str) -> None:
        """Take ``since`` (a position of the history) for replayed: the
        client had it and what came before it. A subscription lagging
        behind the one it had them from (another worker's) may still
        deliver their live copies here; those held so far are dropped,
        and those to come will be."""
        self._last = self.backend.order(since)
        for position in [p for p in self.held if self._replayed(p)]:
            del self.held[position]

    def release(self, members: set[Any] | None) -> None:
        """Hand the member the live messages held during the replay (all
        came after the last one replayed: the others were replayed in
        their place, or dropped on arrival), unless it left the group
        meanwhile; ``members`` is the group's set of local members.

        The stand-in then stays in ``members`` until the live stream has
        passed the last message replayed (or ``since``, when nothing
        came after it): the live copy of a message the replay read may
        still be on its way (a Redis subscription that lags behind the
        reads), and is dropped when it comes. The first
        live message after the last one replayed gives the member its
        place back; the ones after it come in order behind it.
        """
        if members is None or self not in members:
            return
        self._group_members = members
        self.hand_over()

    def hand_over(self) -> None:
        """Deliver the held messages, then pass the live stream through
        (see :meth:`release`)."""
        held, self.held = self.held, {}
        for payload in held.values():
            self.member.deliver(self.group, payload)
        self._released = True
        if self._last is None:
            self._put_back()  # no history read: no late copies

    def _put_back(self) -> None:
        """Give the member its place back in the group's members."""
        self._released = False
        members = self._group_members
        assert members is not None  # set by release()
        members.discard(self)
        members.add(self.member)
