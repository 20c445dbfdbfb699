"""Serve Pyramid over ASGI, with WebSocket and ASGI consumers."""

from pyramid_asgi_ws.consumers import WebSocketConsumer
from pyramid_asgi_ws.decorators import (
    asgi_consumer,
    sse_consumer,
    websocket_consumer,
)
from pyramid_asgi_ws.events import ApplicationShutdown, ApplicationStartup
from pyramid_asgi_ws.sse import EventStream, StreamClosed
from pyramid_asgi_ws.syncconsumer import SyncWebSocketConsumer
from pyramid_asgi_ws.websocket import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
)

__all__ = [
    'ApplicationShutdown',
    'ApplicationStartup',
    'EventStream',
    'StreamClosed',
    'SyncWebSocketConsumer',
    'WebSocket',
    'WebSocketConsumer',
    'WebSocketDisconnect',
    'WebSocketState',
    'asgi_consumer',
    'includeme',
    'sse_consumer',
    'websocket_consumer',
]


def includeme(config):
    """Set up ``pyramid_asgi_ws`` on a :term:`Configurator`.

    Adds the directives ``config.add_asgi_consumer`` and
    ``config.make_asgi_app``, the request methods ``request.consumer_url``,
    ``request.broadcast`` and ``request.run_sync``, a deferred action
    reading the ``asgi_ws.*`` settings, the broadcaster and the metrics
    (:mod:`pyramid_asgi_ws.metrics`) those settings choose, and the view
    deriver that serves ``async def`` views
    (:mod:`pyramid_asgi_ws.asyncviews`).
    """
    from pyramid_asgi_ws.config import (
        add_asgi_consumer,
        make_asgi_app,
        register_settings,
    )
    from pyramid_asgi_ws.events import quiet_listeners
    from pyramid_asgi_ws.router import consumer_url

    config.add_directive('add_asgi_consumer', add_asgi_consumer)
    config.add_directive('make_asgi_app', make_asgi_app, action_wrap=False)
    config.add_request_method(consumer_url, 'consumer_url')
    register_settings(config)
    config.include('pyramid_asgi_ws.broadcast')
    config.include('pyramid_asgi_ws.metrics')
    config.include('pyramid_asgi_ws.asyncviews')
    # after every subscriber's registration (order 0)
    config.action(None, quiet_listeners, (config.registry,), order=1000)
