"""The ``paste.server_runner`` entry point ``egg:pyramid_asgi_ws#uvicorn``.

uvicorn answers SIGTERM and SIGINT by closing every WebSocket with 1012
and then waits for connections to end before lifespan shutdown; its
public API has no hook to run anything before that.  So this module, and
only this one, leans on two of uvicorn's internals, each said where it
is used: a ``uvicorn.Server`` subclass that closes WebSockets with 1001
first, and, with ``workers``, the supervisor's ``Process`` class swapped
for one that starts that subclass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import time
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.paster import APPLICATION, asgi_app_for, find_asgi_app
from pyramid_asgi_ws.runners import (
    close_websockets,
    remove_unix_sockets,
    time_left,
    worker_environ,
)
from pyramid_asgi_ws.runners.options import (
    ServerOptionError,
    parse_server_options,
    shutdown_timeout,
    split_address,
    ws_max_size,
)


class Server(uvicorn.Server):
    """A ``uvicorn.Server`` that closes WebSockets with 1001 first.

    On SIGTERM or SIGINT it first awaits the application's
    :meth:`~pyramid_asgi_ws.app.ASGIApp.close_connections` (1001,
    ``'server shutting down'``) in its own loop, so consumers see a
    :class:`~pyramid_asgi_ws.WebSocketDisconnect` and can finish, and only
    then lets uvicorn stop, with what is left of ``shutdown_timeout`` as
    uvicorn's graceful timeout: the whole stop ends within it.  A second
    signal ends the wait for consumers at once.
    """

    #: Seconds the whole stop may take, from the first signal; ``None``
    #: takes the application's ``asgi_ws.shutdown_timeout``.
    shutdown_timeout: float | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _closing: asyncio.Future[None] | None = None
    _deadline: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn raises the signals it caught again once stopped, which
        # kills the process before pserve can clean up: a graceful stop
        # exits 0. (_captured_signals is uvicorn's private list of them.)
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        app = find_asgi_app(getattr(self.config, 'loaded_app', None))
        if self._deadline is not None or app is None or self._loop is None:
            if self._deadline is not None:
                self._deadline = time.monotonic()  # no more waiting
            super().handle_exit(sig, frame)
            return
        timeout = self.shutdown_timeout
        if timeout is None:
            timeout = float(app.settings['shutdown_timeout'])
        deadline = self._deadline = time.monotonic() + timeout
        self._loop.call_soon_threadsafe(self._begin_close, app, sig, deadline)

    def _begin_close(self, app: ASGIApp, sig: int, deadline: float) -> None:
        self._closing = asyncio.ensure_future(self._close(app, sig, deadline))

    async def _close(self, app: ASGIApp, sig: int, deadline: float) -> None:
        try:
            await close_websockets(app, deadline)
        finally:
            uvicorn.Server.handle_exit(self, sig, None)

    async def shutdown(self, sockets: Any = None) -> None:
        closing = self._closing
        if closing is not None and not closing.done():
            closing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closing
        if self._deadline is not None:
            # uvicorn reads its graceful timeout (a float will do) here
            config: Any = self.config
            config.timeout_graceful_shutdown = time_left(self._deadline)
        await super().shutdown(sockets)


class _Process(multiprocess.Process):
    # A worker process running Server rather than uvicorn.Server: the
    # supervisor builds its workers from multiprocess.Process, which
    # uvicorn_runner swaps for this class while it runs.
    @property
    def server(self) -> Any:
        if self._server is None:
            config: Any = self.config
            server = Server(config=config)
            server.shutdown_timeout = config.shutdown_timeout
            self._server = server
        return self._server


def uvicorn_config(app: Any, opts: dict[str, Any], asgi: ASGIApp) -> Any:
    """Return the ``uvicorn.Config`` serving ``app`` with the parsed
    server options ``opts``; ``asgi`` is the application behind it."""
    listen = opts['listen']
    if len(listen) > 1:
        raise ServerOptionError(
            f'egg:pyramid_asgi_ws#uvicorn serves one address, not {listen!r}'
        )
    address = listen[0]
    where: dict[str, Any] = {}
    if address.startswith('unix:'):
        where['uds'] = address[len('unix:') :]
    else:
        where['host'], where['port'] = split_address(address)
    config: Any = uvicorn.Config(
        app,
        **where,
        workers=opts.get('workers', 1),
        lifespan='on',
        log_config=None,
        log_level=opts.get('log_level', 'info'),
        access_log=opts.get('access_log', True),
        proxy_headers=opts.get('proxy_headers', True),
        forwarded_allow_ips=opts.get('forwarded_allow_ips'),
        ws_max_size=ws_max_size(asgi, opts),
        ws_ping_interval=opts.get('ws_ping_interval', 20.0),
    )
    config.shutdown_timeout = shutdown_timeout(asgi, opts)
    config.timeout_graceful_shutdown = config.shutdown_timeout
    return config


def uvicorn_runner(
    wsgi_app: Any, global_conf: dict[str, Any], **options: Any
) -> None:
    """Serve the application ``pserve`` loaded with uvicorn.

    The ``paste.server_runner`` entry point ``egg:pyramid_asgi_ws#uvicorn``.
    With ``workers`` above 1, each worker process loads the ini file again
    through ``APPLICATION``.
    """
    opts = parse_server_options(options, 'uvicorn')
    asgi = asgi_app_for(wsgi_app)
    workers = opts.get('workers', 1)
    try:
        if workers > 1:
            worker_environ(global_conf, opts.get('app_name', 'main'))
            config = uvicorn_config(APPLICATION, opts, asgi)
            with _workers_run_server():
                multiprocess.Multiprocess(config, [config.bind_socket()]).run()
        else:
            config = uvicorn_config(asgi, opts, asgi)
            server = Server(config)
            server.shutdown_timeout = config.shutdown_timeout
            server.run()
    finally:
        remove_unix_sockets(opts['listen'])


@contextlib.contextmanager
def _workers_run_server() -> Iterator[None]:
    # uvicorn's supervisor starts plain uvicorn.Server workers and takes
    # no class to use instead: swap in ours while it runs, so every
    # worker closes WebSockets with 1001
    original = multiprocess.Process
    multiprocess.Process = _Process  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]
