"""The :class:`Broadcaster`: local groups, publishing and presence.

It keeps which local members joined which group, hands published messages
to a :class:`~pyramid_asgi_ws.broadcast.backend.Backend` (``memory://`` in
one process, ``redis://`` across processes) and fans what the backend
delivers out to the local members. Members are anything with the
:class:`~pyramid_asgi_ws.broadcast.member.Member` interface; a WebSocket
stands for its ``membership``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from typing import Any, cast
import uuid

from pyramid_asgi_ws.broadcast.backend import (
    Backend,
    BroadcastError,
    backend_factory,
)
from pyramid_asgi_ws.broadcast.codec import Payload, to_json
from pyramid_asgi_ws.broadcast.history import HistoryPolicy, Replay
from pyramid_asgi_ws.broadcast.member import Member, member_of
from pyramid_asgi_ws.broadcast.publishing import (
    PublishingMixin,
    check_group,
)
from pyramid_asgi_ws.broadcast.recovery import Recovery

log = logging.getLogger('pyramid_asgi_ws.broadcast')

#: Seconds ``request.broadcast`` waits for the event loop to hand the
#: message to the backend before raising :class:`BroadcastError`.
PUBLISH_TIMEOUT = 5.0


class Broadcaster(PublishingMixin):
    """Joins local members to groups and publishes to groups.

    ``url`` picks the backend (see
    :data:`~pyramid_asgi_ws.broadcast.backend.BACKENDS`). The broadcaster
    runs in one event loop, the server's: :meth:`start` binds it (the
    application calls it at lifespan startup, and :meth:`join` and
    :meth:`publish` call it on first use where there is no lifespan).

    Publishing comes from
    :class:`~pyramid_asgi_ws.broadcast.publishing.PublishingMixin`.
    ``history`` (a
    :class:`~pyramid_asgi_ws.broadcast.history.HistoryPolicy`, from the
    settings) says which groups keep history; ``recovery`` (a
    :class:`~pyramid_asgi_ws.broadcast.recovery.Recovery`) catches groups
    up when the backend lost its subscription.

    Counters: ``published`` (messages this process handed to the backend),
    ``received`` (messages the backend delivered here), ``delivered``
    (messages handed to local members' queues or hooks), ``dropped``
    (messages lost to full send queues) and ``replayed`` (messages of
    history handed to members joining with ``since``).
    """

    def __init__(self, url: str = 'memory://', factory: Any = None) -> None:
        self.url = url
        self.factory = factory or backend_factory(url)
        self.backend: Backend | None = None
        self.closed = False
        self.publish_timeout = PUBLISH_TIMEOUT
        self.history = HistoryPolicy()
        self.token = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._groups: dict[str, set[Member]] = {}
        self.recovery = Recovery(self.history, self._groups, self._fan_out)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self.published = 0
        self.received = 0
        self.delivered = 0
        self.dropped = 0
        self.replayed = 0

    @property
    def groups(self) -> dict[str, int]:
        """The groups with local members, and how many each has."""
        return {group: len(members) for group, members in self._groups.items()}

    def stats(self) -> dict[str, Any]:
        """Return the counters and the local groups, as a dict."""
        return {
            'backend': self.url.split('://', 1)[0],
            'published': self.published,
            'received': self.received,
            'delivered': self.delivered,
            'dropped': self.dropped,
            'replayed': self.replayed,
            'groups': self.groups,
        }

    # -- life -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the broadcaster runs in a live event loop."""
        loop = self._loop
        return loop is not None and not loop.is_closed() and loop.is_running()

    async def start(self) -> None:
        """Connect the backend and bind the broadcaster to the running loop.

        Starting again in the same loop does nothing; a broadcaster left
        started in a loop that has ended is started afresh. The application
        calls this at startup, which also reopens a closed broadcaster.
        """
        self.closed = False
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self.running:
            raise RuntimeError(
                'the broadcaster already runs in another event loop'
            )
        self._groups.clear()
        self._loop = loop
        self._thread = threading.get_ident()
        backend = self.backend = self.factory(self.url)
        self.recovery.start(backend, self.history)
        await backend.connect(self._receive)

    async def close(self) -> None:
        """Disconnect the backend; local groups are forgotten.

        Until :meth:`start` is called again, publishing (``request.broadcast``
        too), joining and asking for members raise :class:`BroadcastError`
        instead of quietly connecting a new backend that nothing would close.
        """
        self.closed = True
        backend, self.backend = self.backend, None
        self._loop = self._thread = None
        self._groups.clear()
        await self.recovery.close()
        if backend is not None:
            await backend.disconnect()

    def _refuse_when_closed(self) -> None:
        if self.closed:
            raise BroadcastError(
                'the broadcaster is closed: the application is shutting down'
            )

    async def _backend(self) -> Backend:
        self._refuse_when_closed()
        await self.start()
        assert self.backend is not None
        return self.backend

    # -- groups -----------------------------------------------------------

    def connection_id(self, member: Any) -> str:
        """Return the identifier of ``member`` (or of a WebSocket), unique
        across processes."""
        member = member_of(member)
        if member.identifier is None:
            member.identifier = f'{self.token}.{next(self._ids)}'
        return member.identifier

    async def join(
        self,
        member: Any,
        group: str,
        info: Any = None,
        since: str | None = None,
    ) -> bool:
        """Add ``member`` (or a WebSocket) to ``group``; return whether it
        missed nothing.

        ``info`` (default: the member's ``presence``) is what
        :meth:`members` reports for it; any JSON-serialisable value, such
        as a user name. When the backend cannot subscribe to the group,
        :class:`BroadcastError` is raised and nothing is left behind: the
        next join subscribes afresh.

        With ``since``, the position of the last message the member had,
        it first receives (through ``member.deliver``, in order) every
        message the group's history holds after it, then the live
        stream, with no gap and no duplicate between the two, and the
        join returns ``True``. It returns ``False``, and the member
        receives the live stream only, when the history does not reach
        back to ``since``: the group keeps none, or ``since`` was
        trimmed, expired, is from another epoch of the history or is not
        a position at all; also when the member went away during the
        replay. Without ``since`` (or when the member is
        already in the group) it returns ``True``. A backend that fails
        while the history is read raises :class:`BroadcastError`; the
        member stays in the group, live.
        """
        check_group(group)
        member = member_of(member)
        if info is None:
            info = member.presence
        presence = to_json(info)
        backend = await self._backend()
        identifier = self.connection_id(member)
        keep = self.history.keep(group)
        if group not in self._groups:
            await self.recovery.subscribe(backend, group)
        members = self._groups.setdefault(group, set())
        already = member in members
        replay = None
        if since is not None and keep is not None and not already:
            replay = Replay(backend, member, group, keep[0], since)
        members.add(member if replay is None else cast(Member, replay))
        member.groups.add(group)
        try:
            await backend.add_member(group, identifier, presence)
            if replay is None:
                return since is None or already
            whole = await replay.run()
            return self.recovery.replayed(group, replay, whole)
        finally:
            if replay is not None:
                self.replayed += replay.replayed
                replay.release(self._groups.get(group))

    async def leave(self, member: Any, group: str) -> None:
        """Take ``member`` (or a WebSocket) out of ``group``; leaving twice
        does nothing."""
        member = member_of(member)
        member.groups.discard(group)
        members = self._groups.get(group)
        if members is None or member not in members:
            return
        members.discard(member)
        backend = self.backend
        assert backend is not None  # close() forgets every group
        if not members:
            del self._groups[group]
            self.recovery.forget(group)
            await backend.unsubscribe(group)
        await backend.remove_member(group, self.connection_id(member))

    async def discard(self, member: Any) -> None:
        """Take a closed member (or WebSocket) out of all its groups."""
        member = member_of(member)
        for group in list(member.groups):
            try:
                await self.leave(member, group)
            except Exception:
                log.exception('leaving group %r failed', group)

    async def members(self, group: str) -> dict[str, Any]:
        """Return ``{connection id: presence info}`` for everyone in
        ``group``, in every process sharing the backend."""
        check_group(group)
        backend = await self._backend()
        found = await backend.members(group)
        return {member: json.loads(info) for member, info in found.items()}

    # -- fan-out ----------------------------------------------------------

    def _receive(
        self, group: str, data: bytes, position: str | None = None
    ) -> None:
        """Hand a message from the backend to the local members (through
        the group's catch-up while there is one)."""
        self.received += 1
        self.recovery.receive(group, Payload(data, position))

    def _fan_out(self, group: str, payload: Payload) -> None:
        """Hand a message to every local member of ``group``.

        One member that fails must not cost the others the message.
        """
        members = self._groups.get(group)
        if not members:
            return
        delivered = dropped = 0
        for member in list(members):
            before = member.dropped
            try:
                delivered += member.deliver(group, payload)
            except Exception:
                log.exception(
                    'delivering to member %s failed', member.identifier
                )
                continue
            dropped += member.dropped - before
        self.delivered += delivered
        self.dropped += dropped
