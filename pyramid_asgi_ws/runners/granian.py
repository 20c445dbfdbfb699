"""The ``paste.server_runner`` entry point ``egg:pyramid_asgi_ws#granian``.

It runs granian's embedded server (``granian.server.embed.Server``, which
granian calls experimental) in this process's event loop, serving the
application ``pserve`` loaded.  Embedded, the runner owns the signals:
on SIGTERM or SIGINT every WebSocket is closed with 1001 before granian
is told to stop.  granian's own supervisor cannot do that: its workers
drop open WebSockets without a close frame when signalled, before the
application's lifespan shutdown can close them, so this runner serves
one process and refuses ``workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
import signal
import threading
import time
from typing import Any

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from granian.utils.proxies import wrap_asgi_with_proxy_headers

from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.paster import asgi_app_for
from pyramid_asgi_ws.runners import (
    SOCKET_MODE,
    close_websockets,
    remove_unix_sockets,
    time_left,
)
from pyramid_asgi_ws.runners.options import (
    ServerOptionError,
    parse_server_options,
    shutdown_timeout,
    split_address,
)

log = logging.getLogger(__name__)

#: Options this runner cannot honour, refused rather than ignored:
#: granian's WebSocket message limit (16 MiB) and pings (none) are
#: fixed, and one process loads no ``[app:...]`` section of its own.
UNSUPPORTED = ('ws_max_size', 'ws_ping_interval', 'app_name')

#: The most seconds to wait, once granian stopped, for its own threads to
#: wind down before the interpreter ends.
THREADS_TIMEOUT = 5.0
#: Seconds granian's threads must stay the same to count as wound down.
THREADS_SETTLE = 0.2

#: granian's loggers, sent on to the ini's ``[loggers]``.
LOG_CONFIG: dict[str, Any] = {
    'loggers': {
        name: {'handlers': [], 'propagate': True}
        for name in ('_granian', 'granian.access')
    }
}


async def serve_granian(app: ASGIApp, server: Any, timeout: float) -> None:
    """Run ``server`` until SIGTERM or SIGINT, closing WebSockets with 1001.

    On the first signal the application's WebSockets are closed, within
    ``timeout``, and only then is granian stopped, with what is left of
    ``timeout`` for its lifespan shutdown; a second signal stops waiting
    for the WebSockets.
    """
    loop = asyncio.get_running_loop()
    closing: asyncio.Task[None] | None = None

    async def close_then_stop(deadline: float) -> None:
        try:
            await close_websockets(app, deadline)
        finally:
            # what granian waits for its lifespan shutdown
            server.workers_kill_timeout = time_left(deadline)
            server.stop()

    def on_signal() -> None:
        nonlocal closing
        if closing is None:
            deadline = time.monotonic() + timeout
            closing = asyncio.ensure_future(close_then_stop(deadline))
        else:
            closing.cancel()  # a second signal: stop now

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        await server.serve()
    except asyncio.TimeoutError:
        # granian gave up waiting for its worker after shutdown_timeout
        log.warning('granian did not stop within %s s', timeout)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if closing is not None:
            closing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closing


def native_threads() -> set[int]:
    """The ids of this process's threads that Python did not start, such
    as granian's runtime threads (empty where there is no ``/proc``)."""
    try:
        threads = {int(tid) for tid in os.listdir('/proc/self/task')}
    except FileNotFoundError:  # pragma: no cover - not Linux
        return set()
    return threads - {t.native_id or 0 for t in threading.enumerate()}


def wait_for_threads(timeout: float, settle: float = THREADS_SETTLE) -> None:
    """Wait until the threads that Python did not start have stayed the
    same for ``settle`` seconds, or at most ``timeout`` seconds.

    granian's embedded server returns while its runtime threads are still
    winding down (some end, some start, for a few milliseconds); one still
    at it while the interpreter finalizes aborts the process (a Rust
    panic, SIGABRT) instead of letting it exit 0.  granian leaves others
    parked for good, so the wait is for the set to settle, not to empty.
    """
    deadline = time.monotonic() + timeout
    threads, since = native_threads(), time.monotonic()
    while time.monotonic() - since < settle and time.monotonic() < deadline:
        time.sleep(0.01)
        now = native_threads()
        if now != threads:
            threads, since = now, time.monotonic()


def granian_server(served: Any, opts: dict[str, Any]) -> Any:
    """Return granian's embedded ``Server`` for the parsed options."""
    address = opts['listen'][0]
    where: dict[str, Any] = {}
    if address.startswith('unix:'):
        where['uds'] = Path(address[len('unix:') :])
    else:
        where['address'], where['port'] = split_address(address)
    level = opts.get('log_level', 'info')
    server = Server(
        served,
        **where,
        interface=Interfaces.ASGI,
        log_level=LogLevels('debug' if level == 'trace' else level),
        log_dictconfig=LOG_CONFIG,
        log_access=opts.get('access_log', True),
    )
    if 'uds' in where:
        path = where['uds']
        server.on_startup(lambda: os.chmod(path, SOCKET_MODE))
    return server


def granian_runner(
    wsgi_app: Any, global_conf: dict[str, Any], **options: Any
) -> None:
    """Serve the application ``pserve`` loaded with granian.

    The ``paste.server_runner`` entry point ``egg:pyramid_asgi_ws#granian``;
    it runs one process, and trusts ``X-Forwarded-For``/``-Proto`` from
    ``forwarded_allow_ips`` (default ``127.0.0.1``) unless
    ``proxy_headers`` is false, as the uvicorn runner does.
    """
    opts = parse_server_options(options, 'granian', unsupported=UNSUPPORTED)
    if opts.get('workers', 1) != 1:
        raise ServerOptionError(
            'egg:pyramid_asgi_ws#granian runs one process: use '
            'egg:pyramid_asgi_ws#uvicorn or #gunicorn for workers, or run '
            'several granian processes'
        )
    listen = opts['listen']
    if len(listen) > 1:
        raise ServerOptionError(
            f'egg:pyramid_asgi_ws#granian serves one address, not {listen!r}'
        )
    asgi = asgi_app_for(wsgi_app)
    served: Any = asgi
    if opts.get('proxy_headers', True):
        trusted = opts.get('forwarded_allow_ips') or '127.0.0.1'
        served = wrap_asgi_with_proxy_headers(asgi, trusted)
    server = granian_server(served, opts)
    try:
        asyncio.run(serve_granian(asgi, server, shutdown_timeout(asgi, opts)))
    finally:
        wait_for_threads(THREADS_TIMEOUT)
        remove_unix_sockets(opts['listen'])
