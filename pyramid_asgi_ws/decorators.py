"""Decorators that ``config.scan()`` turns into consumer registrations."""

from __future__ import annotations

import inspect
import sys
from typing import Any, TypeVar

from pyramid.exceptions import ConfigurationError
import venusian

T = TypeVar('T')


class websocket_consumer:
    """Register the decorated function or class as a WebSocket consumer.

    Takes the same arguments as
    :func:`~pyramid_asgi_ws.config.add_asgi_consumer` but ``consumer``; the
    registration happens when :meth:`pyramid.config.Configurator.scan` finds
    the decorated object.

    .. code-block:: python

        from pyramid_asgi_ws import websocket_consumer

        @websocket_consumer('/ws/{room}', permission='chat')
        async def chat(ws):
            await ws.accept()
            async for text in ws.iter_text():
                await ws.send_text(text)
    """

    venusian = venusian  # for testing injection
    protocol = 'websocket'
    raw = False

    def __init__(self, pattern: str, **settings: Any) -> None:
        settings.setdefault('protocol', self.protocol)
        if self.raw:
            settings.setdefault('raw', True)
        self.pattern = pattern
        self.settings = settings
        self.depth = settings.pop('_depth', 0)
        self.category = settings.pop('_category', 'pyramid')
        frame = sys._getframe(self.depth + 1)
        frameinfo = inspect.getframeinfo(frame)
        sourceline = (frameinfo.code_context or [''])[0].strip()
        self._info = (
            frameinfo.filename,
            frameinfo.lineno,
            frameinfo.function,
            sourceline,
        )

    def __call__(self, wrapped: T) -> T:
        settings = dict(self.settings, _info=self._info)
        pattern = self.pattern

        def callback(context: Any, name: str, ob: Any) -> None:
            config = context.config.with_package(info.module)
            directive = getattr(config, 'add_asgi_consumer', None)
            if directive is None:
                raise ConfigurationError(
                    f'{self._info[3]} in {self._info[0]} needs '
                    "config.include('pyramid_asgi_ws') before config.scan()"
                )
            directive(pattern, ob, **settings)

        info = self.venusian.attach(
            wrapped, callback, category=self.category, depth=self.depth + 1
        )
        return wrapped


class asgi_consumer(websocket_consumer):
    """Register the decorated ASGI application for ``pattern``.

    ``protocol`` defaults to ``'http'``; the decorated object is called as
    a plain ASGI application ``(scope, receive, send)`` whose scope also
    carries ``matchdict`` and ``registry``.
    """

    protocol = 'http'
    raw = True


class sse_consumer(websocket_consumer):
    """Register the decorated function or class as a server-sent events
    consumer for ``pattern``.

    Takes the same arguments as
    :func:`~pyramid_asgi_ws.config.add_asgi_consumer` but ``consumer``,
    with ``protocol='sse'``; the decorated object is an ``async def``
    taking an :class:`~pyramid_asgi_ws.EventStream`, or a class whose
    instances are.

    .. code-block:: python

        from pyramid_asgi_ws import sse_consumer

        @sse_consumer('/events/{room}', permission='view')
        async def room_events(stream):
            await stream.join('room:' + stream.matchdict['room'])
            await stream.wait_closed()
    """

    protocol = 'sse'
