"""The group side of a :class:`~pyramid_asgi_ws.WebSocket`.

:class:`GroupsMixin` gives a connection ``join``, ``leave``,
``broadcast``, ``members``, ``presence`` and ``on_group_message``. The
work is done elsewhere: the application's
:class:`~pyramid_asgi_ws.broadcast.Broadcaster` keeps the groups, and the
connection's :class:`~pyramid_asgi_ws.broadcast.member.Membership`
(made on first use, so that idle connections cost nothing) holds its
hook and its bounded send queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid_asgi_ws.broadcast import outbox
from pyramid_asgi_ws.broadcast.codec import Payload, encode
from pyramid_asgi_ws.broadcast.member import (
    PRESENCE_KEY,
    Hook,
    Membership,
)
from pyramid_asgi_ws.broadcast.outbox import Outbox
from pyramid_asgi_ws.interfaces import IBroadcaster
from pyramid_asgi_ws.messages import Message, WebSocketState

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.broadcast import Broadcaster


class GroupsMixin:
    """Groups, presence and group messages for a connection.

    The class using it provides ``scope``, ``path``, ``send_queue_size``,
    ``send_overflow``, ``application_state``, ``close_code`` and
    ``_transmit(message)``.
    """

    scope: dict[str, Any]
    send_queue_size: int
    send_overflow: str
    application_state: WebSocketState
    close_code: int | None
    _membership: Membership | None = None
    #: The member the connection makes on first use.
    membership_class: type[Membership] = Membership
    #: What log lines call the connection.
    _kind = 'WebSocket'

    if TYPE_CHECKING:  # pragma: no cover - for type checkers only

        @property
        def path(self) -> str: ...

    async def _transmit(self, message: Message) -> None:
        raise NotImplementedError  # pragma: no cover - the class provides it

    # -- what the send queue needs of the connection ----------------------

    def _is_open(self) -> bool:
        return self.application_state is WebSocketState.CONNECTED

    def _closed_by_outbox(self, code: int | None) -> None:
        self.application_state = WebSocketState.DISCONNECTED
        if code is not None:
            self.close_code = code

    # -- the group API -----------------------------------------------------

    @property
    def broadcaster(self) -> Broadcaster:
        """The application's broadcaster (groups and publishing)."""
        broadcaster = self._query_broadcaster()
        if broadcaster is None:
            raise RuntimeError(
                'no broadcaster: serve this WebSocket through an app made by '
                'config.make_asgi_app() after '
                "config.include('pyramid_asgi_ws')"
            )
        return broadcaster

    def _query_broadcaster(self) -> Broadcaster | None:
        registry = self.scope.get('registry')
        return (
            None if registry is None else registry.queryUtility(IBroadcaster)
        )

    @property
    def membership(self) -> Membership:
        """This connection as the broadcaster sees it: its identifier,
        presence, groups, hook and send queue."""
        if self._membership is None:
            self._membership = self.membership_class(
                self.scope,
                Outbox(
                    self._transmit,
                    self._is_open,
                    self._closed_by_outbox,
                    size=self.send_queue_size,
                    policy=self.send_overflow,
                    name=self.path,
                    kind=self._kind,
                ),
            )
        return self._membership

    @property
    def groups(self) -> set[str]:
        """The groups this connection is in."""
        return set() if self._membership is None else self._membership.groups

    @property
    def presence(self) -> Any:
        """What ``members()`` reports for this connection (JSON-able)."""
        return self.scope.get(PRESENCE_KEY)

    @presence.setter
    def presence(self, info: Any) -> None:
        self.scope[PRESENCE_KEY] = info

    @property
    def on_group_message(self) -> Hook | None:
        """Called as ``hook(group, message)`` for each group message
        instead of sending it to the client; a coroutine function runs as
        a task, one per message. A hook that takes a third argument
        (looked at once, when it is set) is called as ``hook(group,
        message, position)``, ``position`` being the message's position
        in the group's history, or ``None``."""
        membership = self._membership
        return None if membership is None else membership.on_group_message

    @on_group_message.setter
    def on_group_message(self, hook: Hook | None) -> None:
        self.membership.on_group_message = hook

    @property
    def pending(self) -> int:
        """How many group messages wait to be sent to the client."""
        membership = self._membership
        return 0 if membership is None else membership.outbox.pending

    @property
    def dropped(self) -> int:
        """How many group messages the full send queue cost this client."""
        membership = self._membership
        return 0 if membership is None else membership.dropped

    async def join(
        self, group: str, info: Any = None, since: str | None = None
    ) -> bool:
        """Add this connection to ``group``; it leaves when it closes.

        ``info`` (default: :attr:`presence`) is what ``members(group)``
        reports for this connection in that group. With ``since``, the
        position of the last group message the client had, the messages
        it missed come first, then the live ones, and the join returns
        ``True``; ``False`` when the group's history no longer reaches
        back to ``since`` (the client then gets the live messages only
        and should reload). See
        :meth:`Broadcaster.join <pyramid_asgi_ws.broadcast.Broadcaster.join>`.
        """
        return await self.broadcaster.join(self.membership, group, info, since)

    def push(self, message: Any) -> bool:
        """Queue ``message`` (text, bytes or JSON-able) for the client,
        behind the group messages queued so far, without waiting.

        For an ``on_group_message`` hook that forwards what it gets with
        something added, such as its position: it keeps the order and
        the bounds of the send queue (``asgi_ws.send_queue_size`` and
        ``asgi_ws.send_overflow``). Returns whether it was queued.
        """
        return self.membership.outbox.push(Payload(encode(message)).event)

    async def leave(self, group: str) -> None:
        """Take this connection out of ``group``."""
        await self.broadcaster.leave(self.membership, group)

    async def members(self, group: str) -> dict[str, Any]:
        """Return ``{connection id: presence info}`` for ``group``.

        With the Redis backend this spans every process.
        """
        return await self.broadcaster.members(group)

    async def broadcast(self, group: str, message: Any) -> None:
        """Publish ``message`` (text, bytes or JSON-able) to ``group``."""
        await self.broadcaster.publish(group, message)

    async def _flush(self) -> None:
        """Send queued group messages first, for at most
        :data:`~pyramid_asgi_ws.broadcast.outbox.FLUSH_TIMEOUT` seconds."""
        if self._membership is not None:
            await self._membership.outbox.flush(outbox.FLUSH_TIMEOUT)

    async def _finish(self) -> None:
        """End the connection's group life once the consumer is done:
        leave its groups, stop its hooks and its send queue."""
        membership = self._membership
        if membership is None:
            return
        broadcaster = self._query_broadcaster()
        if broadcaster is not None and membership.groups:
            await broadcaster.discard(membership)
        await membership.finish(outbox.FLUSH_TIMEOUT)
