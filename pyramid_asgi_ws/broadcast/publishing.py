"""Publishing to a group: from the event loop, from a thread, or with no
loop at all.

:class:`PublishingMixin` gives the
:class:`~pyramid_asgi_ws.broadcast.Broadcaster` its ``publish`` and
``publish_threadsafe``; the broadcaster keeps the backend, the groups and
the fan-out.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pyramid_asgi_ws.broadcast.backend import Backend, BroadcastError
from pyramid_asgi_ws.broadcast.codec import encode
from pyramid_asgi_ws.broadcast.history import HistoryPolicy
from pyramid_asgi_ws.broadcast.memory import MemoryBackend
from pyramid_asgi_ws.broadcast.threads import result_within


class PublishingMixin:
    """Publishing for the broadcaster.

    The class using it provides ``url``, ``factory`` (the backend class),
    ``publish_timeout``, ``history`` (the
    :class:`~pyramid_asgi_ws.broadcast.history.HistoryPolicy`), the
    ``published`` counter, ``_loop`` and
    ``_thread`` (the event loop it runs in, and that loop's thread),
    ``_backend()`` (the started backend) and ``_refuse_when_closed()``.
    """

    url: str
    factory: Any
    publish_timeout: float
    history: HistoryPolicy
    published: int
    _loop: asyncio.AbstractEventLoop | None
    _thread: int | None

    async def _backend(self) -> Backend:
        raise NotImplementedError  # pragma: no cover - the class provides it

    def _refuse_when_closed(self) -> None:
        raise NotImplementedError  # pragma: no cover - the class provides it

    async def publish(self, group: str, message: Any) -> None:
        """Publish ``message`` (text, bytes or a JSON-serialisable value)
        to every member of ``group``; raises :class:`BroadcastError` when
        the backend cannot take it or the broadcaster is closed."""
        check_group(group)
        await self._publish_payload(group, encode(message))

    def prepare(self, group: str, message: Any) -> bytes:
        """Check ``group`` and return the payload of ``message``.

        Raises at once what publishing them would: :exc:`ValueError` for
        a bad group name, :exc:`TypeError` for a message that is not text,
        bytes or JSON-serialisable, :class:`BroadcastError` when the
        broadcaster is closed. ``request.broadcast`` calls it in the view
        and leaves only :meth:`publish_payload_threadsafe` to the commit.
        """
        check_group(group)
        payload = encode(message)
        self._refuse_when_closed()
        return payload

    def publish_threadsafe(self, group: str, message: Any) -> None:
        """Publish from a thread other than the event loop's, such as a
        WSGI view's; returns once the backend has the message.

        Raises :class:`BroadcastError` when it fails, takes longer than
        ``publish_timeout`` seconds, or the broadcaster is closed.
        """
        self.publish_payload_threadsafe(group, self.prepare(group, message))

    def publish_payload_threadsafe(self, group: str, payload: bytes) -> None:
        """Publish a payload from :meth:`prepare`, as
        :meth:`publish_threadsafe` does."""
        if threading.get_ident() == self._thread:
            raise RuntimeError(
                'publish_threadsafe() called from the event loop: '
                'use "await broadcaster.publish(group, message)"'
            )
        self._refuse_when_closed()
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self._publish_detached(group, payload)
            return
        future = asyncio.run_coroutine_threadsafe(
            self._publish_payload(group, payload), loop
        )
        result_within(
            future,
            self.publish_timeout,
            lambda: BroadcastError(
                f'publishing to group {group!r} took more than '
                f'{self.publish_timeout} s'
            ),
        )

    async def _publish_payload(self, group: str, payload: bytes) -> None:
        await self._hand_over(await self._backend(), group, payload)
        self.published += 1

    async def _hand_over(
        self, backend: Backend, group: str, payload: bytes
    ) -> None:
        """Hand ``payload`` to ``backend``: kept in the group's history
        (which gives it a position) when the group has one."""
        keep = self.history.keep(group)
        if keep is None:
            await backend.publish(group, payload)
        else:
            await backend.append(group, payload, *keep)

    def _publish_detached(self, group: str, payload: bytes) -> None:
        """Publish with no event loop running the broadcaster.

        No local member can be in a group then, so the memory backend has
        nobody to deliver to; other backends publish through a short-lived
        connection of their own.
        """
        if self.factory is MemoryBackend:
            self.published += 1
            return

        async def once() -> None:
            backend = self.factory(self.url)
            try:
                await self._hand_over(backend, group, payload)
            finally:
                await backend.disconnect()

        asyncio.run(once())
        self.published += 1


def check_group(group: Any) -> None:
    """Raise :class:`ValueError` unless ``group`` is a non-empty str."""
    if not isinstance(group, str) or not group:
        raise ValueError(
            f'a group name must be a non-empty str, not {group!r}'
        )
