"""What the broadcaster knows of a connection: its :class:`Member` side.

The broadcaster never sees a WebSocket. It works with members: something
with an identifier, presence info, the set of groups it is in, and a way
to take a group message. :class:`Membership` is the member a WebSocket
makes on first use; it holds the connection's group state, its
``on_group_message`` hook and its :class:`~.outbox.Outbox`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
import inspect
import logging
from typing import Any, Protocol

from pyramid_asgi_ws.broadcast.codec import Payload
from pyramid_asgi_ws.broadcast.outbox import FLUSH_TIMEOUT, Outbox

log = logging.getLogger('pyramid_asgi_ws.websocket')

#: The scope key holding a connection's presence info.
PRESENCE_KEY = 'asgi_ws.presence'

#: The scope key holding a connection's member identifier.
CONNECTION_ID_KEY = 'asgi_ws.connection_id'

Hook = Callable[[str, Any], Any]


class Member(Protocol):
    """What the broadcaster needs of a group member."""

    #: Unique across processes; the broadcaster assigns it on first use.
    identifier: str | None
    #: The groups it is in, kept by the broadcaster.
    groups: set[str]

    @property
    def presence(self) -> Any:
        """What ``members()`` reports for it (JSON-serialisable)."""

    @property
    def dropped(self) -> int:
        """How many group messages it lost to a full queue."""

    def deliver(self, group: str, payload: Payload) -> bool:
        """Take a group message without waiting; return whether it did."""


def member_of(target: Any) -> Member:
    """Return the member of ``target``: a connection's ``membership``, or
    ``target`` itself."""
    return getattr(target, 'membership', target)


class Membership:
    """A connection as a group member, kept in its ASGI scope.

    ``scope`` holds the identifier and the presence info (under
    :data:`CONNECTION_ID_KEY` and :data:`PRESENCE_KEY`), so that they are
    the connection's own; ``outbox`` queues what goes to the client.
    """

    def __init__(
        self, scope: MutableMapping[str, Any], outbox: Outbox
    ) -> None:
        self.scope = scope
        self.outbox = outbox
        self.groups: set[str] = set()
        #: Called as ``hook(group, message)`` for each group message
        #: instead of sending it to the client.
        self.on_group_message: Hook | None = None
        self._hook_tasks: set[asyncio.Future[Any]] = set()

    @property
    def identifier(self) -> str | None:
        """The member identifier, unique across processes."""
        return self.scope.get(CONNECTION_ID_KEY)

    @identifier.setter
    def identifier(self, value: str | None) -> None:
        self.scope[CONNECTION_ID_KEY] = value

    @property
    def presence(self) -> Any:
        """What ``members()`` reports for this connection."""
        return self.scope.get(PRESENCE_KEY)

    @property
    def dropped(self) -> int:
        """How many group messages the full queue cost this connection."""
        return self.outbox.dropped

    def deliver(self, group: str, payload: Payload) -> bool:
        """Hand a group message to the hook, or queue it for the client.

        A coroutine hook runs as a task; a hook that raises is logged and
        the message counts as not delivered.
        """
        hook = self.on_group_message
        if hook is None:
            return self.outbox.push(payload.event)
        try:
            result = hook(group, payload.value())
        except Exception:
            log.exception(
                'on_group_message hook failed on WebSocket %s',
                self.outbox.name,
            )
            return False
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_done)
        return True

    def _hook_done(self, task: asyncio.Future[Any]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                'on_group_message hook failed on WebSocket %s',
                self.outbox.name,
                exc_info=task.exception(),
            )

    async def finish(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Cancel running hooks and stop the outbox (see
        :meth:`Outbox.finish`)."""
        for task in list(self._hook_tasks):
            task.cancel()
        await self.outbox.finish(timeout)
