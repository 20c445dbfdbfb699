"""The ``paste.server_runner`` entry point
``egg:pyramid_asgi_ws#hypercorn``, on hypercorn's public API."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.middleware import ProxyFixMiddleware

from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.paster import asgi_app_for
from pyramid_asgi_ws.runners import (
    SOCKET_UMASK,
    close_websockets,
    remove_unix_sockets,
)
from pyramid_asgi_ws.runners.options import (
    ServerOptionError,
    parse_server_options,
    shutdown_timeout,
    ws_max_size,
)


async def serve_hypercorn(
    app: ASGIApp, served: Any, config: Any, timeout: float
) -> None:
    """Run hypercorn until SIGTERM or SIGINT, closing WebSockets with 1001.

    On the signal the application's WebSockets are closed before hypercorn
    starts its own graceful shutdown, which would cancel consumers; that
    shutdown gets what is left of ``timeout``, so the whole stop ends
    within it.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)

    async def trigger() -> None:
        await stop.wait()
        deadline = time.monotonic() + timeout
        # hypercorn reads its graceful timeout once this returns
        config.graceful_timeout = await close_websockets(app, deadline)

    try:
        await serve(served, config, shutdown_trigger=trigger)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def hypercorn_config(opts: dict[str, Any], asgi: ASGIApp) -> Config:
    """Return the hypercorn ``Config`` for the parsed server options."""
    config = Config()
    config.bind = opts['listen']
    config.umask = SOCKET_UMASK
    # hypercorn logs through the ini's [loggers], as uvicorn does
    level = opts.get('log_level', 'info')
    level = ('debug' if level == 'trace' else level).upper()
    config.errorlog = logging.getLogger('hypercorn.error')
    config.errorlog.setLevel(level)
    config.accesslog = None
    if opts.get('access_log', True):
        config.accesslog = logging.getLogger('hypercorn.access')
        config.accesslog.setLevel(level)
    config.websocket_max_message_size = ws_max_size(asgi, opts)
    config.websocket_ping_interval = opts.get('ws_ping_interval')
    config.graceful_timeout = shutdown_timeout(asgi, opts)
    return config


def hypercorn_runner(
    wsgi_app: Any, global_conf: dict[str, Any], **options: Any
) -> None:
    """Serve the application ``pserve`` loaded with hypercorn.

    The ``paste.server_runner`` entry point
    ``egg:pyramid_asgi_ws#hypercorn``; it runs one process, and trusts
    ``X-Forwarded-*`` from one proxy hop when ``proxy_headers`` is true.
    """
    opts = parse_server_options(
        options, 'hypercorn', unsupported=('forwarded_allow_ips', 'app_name')
    )
    if opts.get('workers', 1) != 1:
        raise ServerOptionError(
            'egg:pyramid_asgi_ws#hypercorn runs one process: use '
            'egg:pyramid_asgi_ws#uvicorn for workers, or run several '
            'hypercorn processes'
        )
    asgi = asgi_app_for(wsgi_app)
    config = hypercorn_config(opts, asgi)
    served: Any = asgi
    if opts.get('proxy_headers', False):
        served = ProxyFixMiddleware(served, mode='legacy', trusted_hops=1)
    try:
        asyncio.run(
            serve_hypercorn(asgi, served, config, config.graceful_timeout)
        )
    finally:
        remove_unix_sockets(opts['listen'])
