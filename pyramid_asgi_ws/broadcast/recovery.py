"""Catching a group up after the backend lost its subscription.

While a process's subscription is down (Redis restarted, a network
blip), the messages published to its groups do not reach it; a group
with history still holds them. :class:`Recovery` keeps, for each group
with local members, the position of the last message delivered here
(heard live, or replayed to a member joining with ``since``). When the
backend is subscribed to the group again (its ``on_resubscribed``), a
:class:`CatchUp` stands in for the group's local fan-out as a
:class:`~pyramid_asgi_ws.broadcast.history.Replay` stands in for one
member: it reads the history after that position, delivers it, then the
live messages it held meanwhile, then the live stream, with no gap and
no duplicate. When the history no longer reaches back, the group's
local members are told: ``member.lost(group)`` (a WebSocket closes with
1012, so that its client reconnects with the position it has).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import logging
from typing import cast

from pyramid_asgi_ws.broadcast.backend import Backend, BroadcastError
from pyramid_asgi_ws.broadcast.codec import Payload
from pyramid_asgi_ws.broadcast.history import HistoryPolicy, Replay
from pyramid_asgi_ws.broadcast.member import Member

log = logging.getLogger('pyramid_asgi_ws.broadcast')

#: Seconds between two attempts at reading a history Redis fails to
#: give: doubles up to :data:`RETRY_MAX`.
RETRY_MIN = 0.1
RETRY_MAX = 5.0


class FanOut:
    """A group's local members, as the one member a :class:`CatchUp`
    delivers to."""

    identifier: str | None = None
    presence = None
    dropped = 0

    def __init__(self, recovery: Recovery, group: str) -> None:
        self.recovery = recovery
        self.group = group

    @property
    def groups(self) -> set[str]:
        """The group while it has local members: a catch-up ends when the
        last one left."""
        return {self.group} if self.group in self.recovery.members else set()

    def deliver(self, group: str, payload: Payload) -> bool:
        self.recovery.deliver(group, payload)
        return True


class CatchUp(Replay):
    """The stand-in of a group's local fan-out while its history since
    the last message delivered here is read: live messages are held
    meanwhile, then passed through once the live stream has passed the
    last one read."""

    def __init__(self, recovery: Recovery, backend: Backend, group: str,
                 limit: int, since: str) -> None:  # fmt: skip
        fan_out = cast(Member, FanOut(recovery, group))  # groups read-only
        super().__init__(backend, fan_out, group, limit, since)
        self.recovery = recovery

    def _put_back(self) -> None:
        self._released = False
        if self.recovery.catching.get(self.group) is self:
            del self.recovery.catching[self.group]


class Recovery:
    """The positions delivered in each local group, and the catch-ups.

    ``members`` is the broadcaster's ``{group: local members}`` and
    ``fan_out(group, payload)`` hands a message to them. Counters:
    ``recovered`` (messages read back from history after a loss of the
    subscription) and ``lost`` (groups whose history no longer reached
    back).
    """

    retry_min = RETRY_MIN
    retry_max = RETRY_MAX

    def __init__(
        self,
        history: HistoryPolicy,
        members: dict[str, set[Member]],
        fan_out: Callable[[str, Payload], None],
    ) -> None:
        self.history = history
        self.members = members
        self.fan_out = fan_out
        self.backend: Backend | None = None
        self.last: dict[str, str] = {}
        self.catching: dict[str, CatchUp] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.recovered = 0
        self.lost = 0

    def start(self, backend: Backend, history: HistoryPolicy) -> None:
        """Catch up the groups of ``backend`` when it says it is
        subscribed again, with the groups' ``history``."""
        self.backend = backend
        self.history = history
        backend.on_resubscribed = self.resubscribed

    async def subscribe(self, backend: Backend, group: str) -> None:
        """Subscribe ``backend`` to ``group``, first noting where the
        group's history ends (when the backend can say: ``tail``), so
        that a group no message reached yet is caught up from there."""
        tail = getattr(backend, 'tail', None)
        if tail is not None and self.history.keep(group) is not None:
            try:
                self.last.setdefault(group, await tail(group))
            except BroadcastError as exc:
                log.warning(
                    'group %r cannot be caught up from before its first '
                    'message here: %s',
                    group,
                    exc,
                )
        try:
            await backend.subscribe(group)
        except BroadcastError:
            self.last.pop(group, None)  # the join leaves nothing behind
            raise

    def receive(self, group: str, payload: Payload) -> None:
        """Hand a live message to the group, or to its catch-up."""
        catch_up = self.catching.get(group)
        if catch_up is None:
            self.deliver(group, payload)
        else:
            catch_up.deliver(group, payload)

    def deliver(self, group: str, payload: Payload) -> None:
        """Fan a message out, keeping its position as the group's last."""
        if payload.position is not None and group in self.members:
            self.last[group] = payload.position
        self.fan_out(group, payload)

    def replayed(self, group: str, replay: Replay, whole: bool) -> bool:
        """A member joined from a position the history had (when
        ``whole``): a group with nothing delivered here yet is caught up
        from where its replay got to. Returns ``whole``."""
        if whole:
            self.last.setdefault(group, replay.position)
        return whole

    def forget(self, group: str) -> None:
        """The last local member left ``group``."""
        self.last.pop(group, None)
        self.catching.pop(group, None)

    def resubscribed(self, group: str) -> None:
        """The backend is subscribed to ``group`` again: catch it up."""
        keep = self.history.keep(group)
        since = self.last.get(group)
        backend = self.backend
        if keep is None or since is None or backend is None:
            return  # nothing to catch up from
        if group in self.catching:
            return  # the running one goes on from where it is
        catch_up = self.catching[group] = CatchUp(
            self, backend, group, keep[0], since
        )
        task = asyncio.get_running_loop().create_task(self._run(catch_up))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, catch_up: CatchUp) -> None:
        """Catch up, trying again while Redis fails and the group still
        has local members."""
        delay = self.retry_min
        whole = True
        while catch_up.group in self.members:
            try:
                whole = await catch_up.run()
                break
            except BroadcastError as exc:
                log.warning(
                    'catching group %r up failed (%s); retrying in %.1f s',
                    catch_up.group,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)
        self.recovered += catch_up.replayed
        if not whole and catch_up.group in self.members:
            self._lose(catch_up.group)
        catch_up.hand_over()

    def _lose(self, group: str) -> None:
        """Tell the local members of ``group`` that messages were lost."""
        self.lost += 1
        log.warning(
            'messages of group %r were lost while the subscription was '
            'down: the history no longer reaches back to %s',
            group,
            self.last.get(group),
        )
        for member in list(self.members[group]):
            if isinstance(member, Replay):  # joining meanwhile
                member = member.member
            lost = getattr(member, 'lost', None)
            if lost is None:
                log.error(
                    'member %s of group %r missed messages and cannot '
                    'be told (it has no lost())',
                    member.identifier,
                    group,
                )
            else:
                lost(group)

    async def close(self) -> None:
        """Stop the catch-ups and forget the positions."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.catching.clear()
        self.last.clear()
