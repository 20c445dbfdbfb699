"""The application's life: startup, shutdown and the ASGI lifespan.

:class:`LifespanMixin` gives :class:`~pyramid_asgi_ws.app.ASGIApp` its
``startup`` (the broadcaster, the startup subscribers), ``shutdown``
(connections closed first, then the shutdown subscribers, the
broadcaster and the thread pool) and the answer to the ``lifespan``
scope; servers without one (daphne) start the app on its first request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyramid_asgi_ws.events import (
    ApplicationShutdown,
    ApplicationStartup,
    notify_async,
)
from pyramid_asgi_ws.interfaces import IBroadcaster
from pyramid_asgi_ws.websocket import Receive, Send

log = logging.getLogger('pyramid_asgi_ws')


class LifespanMixin:
    """Startup, shutdown and the lifespan protocol of the application.

    The class using it provides ``registry``, ``wsgi`` (the bridge) and
    ``close_connections()``.
    """

    registry: Any
    wsgi: Any
    started = False
    stopping = False
    _startup_lock: asyncio.Lock | None = None

    async def close_connections(self) -> None:
        raise NotImplementedError  # pragma: no cover - the class provides it

    async def _lazy_startup(self) -> None:
        # daphne (and uvicorn --lifespan off) never send a lifespan scope:
        # start on the first request instead. Requests arriving meanwhile
        # wait for it; a failed startup is logged and tried again by the
        # next request.
        try:
            await self.startup()
        except Exception:
            log.exception('application startup failed')

    async def startup(self) -> None:
        """Start the broadcaster and run the startup subscribers, once."""
        if self._startup_lock is None:
            self._startup_lock = asyncio.Lock()
        async with self._startup_lock:
            if self.started:
                return
            self.stopping = False
            broadcaster = self.registry.queryUtility(IBroadcaster)
            if broadcaster is not None:
                await broadcaster.start()
            await notify_async(
                self.registry, ApplicationStartup(self, self.registry)
            )
            self.started = True

    async def shutdown(self) -> None:
        """Close sockets, run shutdown subscribers, stop the broadcaster."""
        await self.close_connections()
        try:
            await notify_async(
                self.registry, ApplicationShutdown(self, self.registry)
            )
        finally:
            broadcaster = self.registry.queryUtility(IBroadcaster)
            if broadcaster is not None:
                await broadcaster.close()
            self.wsgi.close()
            self.started = False
            self._startup_lock = None  # the next loop makes its own

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Answer the ASGI lifespan protocol."""
        while True:
            message = await receive()
            kind = message['type']
            phase = 'startup' if kind == 'lifespan.startup' else 'shutdown'
            try:
                if phase == 'startup':
                    await self.startup()
                else:
                    await self.shutdown()
            except Exception as exc:
                log.exception('ASGI lifespan %s failed', phase)
                await send(
                    {
                        'type': f'lifespan.{phase}.failed',
                        'message': f'{type(exc).__name__} during {phase}',
                    }
                )
                if phase == 'shutdown':
                    return
                continue
            await send({'type': f'lifespan.{phase}.complete'})
            if phase == 'shutdown':
                return
