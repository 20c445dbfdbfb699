"""The ``paste.server_runner`` entry point ``egg:pyramid_asgi_ws#gunicorn``.

It runs gunicorn's arbiter in the ``pserve`` process (gunicorn's
``BaseApplication`` API) with :class:`Worker`, uvicorn-worker's
``UvicornWorker`` running :class:`pyramid_asgi_ws.runners.uvicorn.Server`:
on gunicorn's graceful stop (SIGTERM) each worker closes its WebSockets
with 1001 first.  Each worker process loads the ini file again through
:data:`~pyramid_asgi_ws.paster.application`, as the uvicorn runner's
workers do.  :class:`Worker` also serves gunicorn's own command line:
``gunicorn -k pyramid_asgi_ws.runners.gunicorn.Worker``, where the
stop is bounded by the application's ``asgi_ws.shutdown_timeout``.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornWorker

from pyramid_asgi_ws import paster
from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.paster import asgi_app_for
from pyramid_asgi_ws.runners import (
    SOCKET_UMASK,
    remove_unix_sockets,
    worker_environ,
)
from pyramid_asgi_ws.runners.options import (
    parse_server_options,
    shutdown_timeout,
    ws_max_size,
)
from pyramid_asgi_ws.runners.uvicorn import Server

#: Seconds gunicorn waits past ``shutdown_timeout`` before it kills a
#: worker: the worker's own stop already ends within the timeout.
KILL_MARGIN = 1


class Worker(UvicornWorker):
    """uvicorn-worker's ``UvicornWorker`` closing WebSockets with 1001.

    Its server is :class:`pyramid_asgi_ws.runners.uvicorn.Server`, which
    on SIGTERM closes every WebSocket with 1001 before uvicorn stops, all
    within :attr:`shutdown_timeout`, or else the application's
    ``asgi_ws.shutdown_timeout``.  It overrides uvicorn-worker's
    ``_serve``, the one place that names the server class.
    """

    CONFIG_KWARGS: dict[str, Any] = {
        **UvicornWorker.CONFIG_KWARGS,
        'lifespan': 'on',
    }

    #: Seconds the whole stop of a worker may take; ``None`` (gunicorn's
    #: command line) takes the application's ``asgi_ws.shutdown_timeout``.
    shutdown_timeout: float | None = None

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = Server(config=self.config)
        server.shutdown_timeout = self.shutdown_timeout
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        # uvicorn exits by itself on a failed startup; this is a stop
        # signalled during startup, which uvicorn-worker's _serve reports
        # the same way
        if not server.started:  # pragma: no cover - a race with startup
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


def worker_class(
    opts: dict[str, Any], asgi: ASGIApp, timeout: float
) -> type[Worker]:
    """Return a :class:`Worker` subclass set up with the parsed options,
    whose stop takes at most ``timeout`` seconds."""
    config = {
        **Worker.CONFIG_KWARGS,
        'access_log': opts.get('access_log', True),
        'proxy_headers': opts.get('proxy_headers', True),
        'ws_max_size': ws_max_size(asgi, opts),
        'ws_ping_interval': opts.get('ws_ping_interval', 20.0),
    }
    attributes = {
        'CONFIG_KWARGS': config,
        'shutdown_timeout': timeout,
    }
    return type('Worker', (Worker,), attributes)


def child_exit(arbiter: Arbiter, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: in prometheus_client's
    multiprocess mode, drop the live gauges of a worker that ended.

    A worker that stops gracefully drops its own; this covers one that was
    killed or crashed, whose files would otherwise count until the next
    start.
    """
    if not os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
        return
    try:
        from prometheus_client.multiprocess import mark_process_dead
    except ImportError:  # metrics are not installed: nothing was written
        return
    mark_process_dead(worker.pid)


def gunicorn_settings(opts: dict[str, Any], asgi: ASGIApp) -> dict[str, Any]:
    """Return gunicorn's settings for the parsed server options."""
    timeout = shutdown_timeout(asgi, opts)
    worker = worker_class(opts, asgi, timeout)
    level = opts.get('log_level', 'info')
    settings: dict[str, Any] = {
        'bind': opts['listen'],
        'workers': opts.get('workers', 1),
        'worker_class': worker,
        'graceful_timeout': math.ceil(timeout) + KILL_MARGIN,
        'loglevel': 'debug' if level == 'trace' else level,
        'accesslog': '-' if opts.get('access_log', True) else None,
        # the ini configures this server: no runtime control socket, which
        # every gunicorn on the host would otherwise share by default
        'control_socket_disable': True,
        # gunicorn creates its unix sockets under this umask; the only
        # other files it makes here, the workers' heartbeats, are 0600
        'umask': SOCKET_UMASK,
        'child_exit': child_exit,
    }
    if 'forwarded_allow_ips' in opts:
        settings['forwarded_allow_ips'] = opts['forwarded_allow_ips']
    return settings


class GunicornApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn's application for ``settings``, serving
    :data:`~pyramid_asgi_ws.paster.application` in each worker."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return paster.application


def gunicorn_runner(
    wsgi_app: Any, global_conf: dict[str, Any], **options: Any
) -> None:
    """Serve the application ``pserve`` loaded with gunicorn's arbiter.

    The ``paste.server_runner`` entry point
    ``egg:pyramid_asgi_ws#gunicorn``: ``workers`` processes of
    :class:`Worker`; SIGTERM stops gracefully, with 1001 for WebSockets.
    """
    opts = parse_server_options(options, 'gunicorn')
    asgi = asgi_app_for(wsgi_app)
    settings = gunicorn_settings(opts, asgi)
    worker_environ(global_conf, opts.get('app_name', 'main'))
    try:
        GunicornApplication(settings).run()
    finally:
        remove_unix_sockets(opts['listen'])
