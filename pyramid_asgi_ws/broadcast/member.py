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
from pyramid_asgi_ws.closecodes import CloseCode

log = logging.getLogger('pyramid_asgi_ws.websocket')

#: The scope key holding a connection's presence info.
PRESENCE_KEY = 'asgi_ws.presence'

#: The scope key holding a connection's member identifier.
CONNECTION_ID_KEY = 'asgi_ws.connection_id'

#: ``hook(group, message)``, or ``hook(group, message, position)``.
Hook = Callable[..., Any]


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
        """Take a group message without waiting; return whether it did.

        A member may also have an ``async def wait_room()``, which a
        replay of history awaits before each message so as not to
        overflow the member's queue; its ``False`` (the member takes no
        more messages) ends the replay. And it may have a ``lost(group)``,
        which the broadcaster calls when messages of ``group`` could not
        be delivered to it (see :mod:`~pyramid_asgi_ws.broadcast.recovery`).
        """


def takes_position(hook: Hook) -> bool:
    """Whether ``hook`` can be called with a third argument, the
    message's position."""
    try:
        inspect.signature(hook).bind(None, None, None)
    except (TypeError, ValueError):  # too few parameters; no signature
        return False
    return True


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
        self._hook: Hook | None = None
        self._hook_position = False
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

    @property
    def on_group_message(self) -> Hook | None:
        """Called as ``hook(group, message)`` for each group message
        instead of sending it to the client, or as ``hook(group, message,
        position)`` when it takes three arguments (told once, when it is
        set)."""
        return self._hook

    @on_group_message.setter
    def on_group_message(self, hook: Hook | None) -> None:
        self._hook = hook
        self._hook_position = hook is not None and takes_position(hook)

    async def wait_room(self) -> bool:
        """Wait while the send queue is full; return whether the
        connection still takes messages (see :meth:`Outbox.wait_room`)."""
        return await self.outbox.wait_room()

    def deliver(self, group: str, payload: Payload) -> bool:
        """Hand a group message to the hook, or queue it for the client.

        A coroutine hook runs as a task; a hook that raises is logged and
        the message counts as not delivered.
        """
        hook = self._hook
        if hook is None:
            return self.outbox.push(payload.event)
        try:
            if self._hook_position:
                result = hook(group, payload.value(), payload.position)
            else:
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

    def lost(self, group: str) -> None:
        """Close the connection with 1012: messages of ``group`` were lost
        to it, and its client, reconnecting with the position it has,
        learns it (``join(since=)`` says ``False``)."""
        log.warning(
            'closing %s %s: messages of group %r were lost while Redis '
            'was away',
            self.outbox.kind,
            self.outbox.name,
            group,
        )
        self.outbox.close(CloseCode.SERVICE_RESTART, 'group messages lost')

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
