"""Load ASGI applications from ini files and serve them with ``pserve``.

``get_app`` mirrors :func:`pyramid.paster.get_app`. ``uvicorn_runner`` and
``hypercorn_runner`` are the ``paste.server_runner`` entry points
``egg:pyramid_asgi_ws#uvicorn`` and ``egg:pyramid_asgi_ws#hypercorn``:

.. code-block:: ini

    [app:main]
    use = egg:myproject
    pyramid.includes = pyramid_asgi_ws

    [server:main]
    use = egg:pyramid_asgi_ws#uvicorn
    listen = localhost:6543

The module attribute ``application`` is an ASGI application that loads,
when first called, the config URI in the ``PYRAMID_ASGI_WS_CONFIG``
environment variable, so any ASGI server can serve an ini file from its
own command line::

    PYRAMID_ASGI_WS_CONFIG=development.ini \
        uvicorn pyramid_asgi_ws.paster:application
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import json
import logging
import math
import os
import signal
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.router import Router

from pyramid_asgi_ws.app import GOING_AWAY, ASGIApp
from pyramid_asgi_ws.interfaces import IASGIApp, IASGISettings
from pyramid_asgi_ws.settings import as_positive_int, as_seconds, as_size

log = logging.getLogger(__name__)

#: The environment variable naming the config URI ``application`` loads.
CONFIG_ENV = 'PYRAMID_ASGI_WS_CONFIG'
#: Extra ``%(name)s`` variables for that config file, as a JSON object.
VARS_ENV = 'PYRAMID_ASGI_WS_VARS'
#: The import string of the lazily loaded application.
APPLICATION = 'pyramid_asgi_ws.paster:application'
#: The reason sent with close code 1001 when the server stops.
SHUTDOWN_REASON = 'server shutting down'
#: Attributes WSGI middleware commonly keeps the application it wraps in.
WRAPPED_ATTRIBUTES = ('app', 'application', 'wrap_app', 'wrapped', '_app')


class ServerOptionError(ValueError):
    """An unknown or malformed option in a ``[server:...]`` section."""


def find_router(app: Any, depth: int = 10) -> Router | None:
    """Return the Pyramid router ``app`` is or wraps, or ``None``.

    WSGI middleware is searched through the attributes named in
    :data:`WRAPPED_ATTRIBUTES`, at most ``depth`` levels deep.
    """
    seen: set[int] = set()
    while depth >= 0 and app is not None and id(app) not in seen:
        if isinstance(app, Router):
            return app
        seen.add(id(app))
        app = next(
            (
                getattr(app, name)
                for name in WRAPPED_ATTRIBUTES
                if getattr(app, name, None) is not None
            ),
            None,
        )
        depth -= 1
    return None


def asgi_app_for(app: Any) -> ASGIApp:
    """Return the ASGI application serving the WSGI application ``app``.

    ``app`` is what an ini file's app factory returned: a Pyramid
    router, an ASGI application made by ``config.make_asgi_app()``
    (returned as is), or a pipeline of WSGI filters around a router. For a
    pipeline, HTTP requests go through the whole pipeline while WebSocket
    and ASGI consumers, which WSGI filters cannot serve, come from the
    router's registry.
    """
    if isinstance(app, ASGIApp):
        return app
    router = find_router(app)
    if router is None:
        raise ConfigurationError(
            f'cannot serve {app!r} over ASGI: it is not a Pyramid router and '
            'wraps none found through the attributes '
            f'{", ".join(WRAPPED_ATTRIBUTES)}; make the app factory return '
            'config.make_wsgi_app() or config.make_asgi_app()'
        )
    registry = router.registry
    if registry.queryUtility(IASGISettings) is None:
        raise ConfigurationError(
            f'the application {registry.__name__!r} did not include '
            'pyramid_asgi_ws: add "pyramid.includes = pyramid_asgi_ws" to '
            "its [app:...] section or call config.include('pyramid_asgi_ws')"
        )
    existing = registry.queryUtility(IASGIApp)
    if isinstance(existing, ASGIApp) and existing.wsgi_app is app:
        return existing
    return ASGIApp(app, registry=registry)


def get_app(
    config_uri: str, name: str = 'main', options: dict[str, Any] | None = None
) -> ASGIApp:
    """Return the ASGI application of section ``name`` of ``config_uri``.

    The ASGI sibling of :func:`pyramid.paster.get_app`: the section's app
    factory runs as ``pserve`` would run it and its result goes through
    :func:`asgi_app_for`. ``options`` fills ``%(name)s`` variables.
    """
    from pyramid.paster import get_app as get_wsgi_app

    return asgi_app_for(get_wsgi_app(config_uri, name, options))


def load_from_environ() -> ASGIApp:
    """Return the application of the config URI in :data:`CONFIG_ENV`.

    ``PYRAMID_ASGI_WS_CONFIG`` is ``development.ini`` or
    ``development.ini#name``; the file's logging is set up first.
    """
    from pyramid.paster import setup_logging

    uri = os.environ.get(CONFIG_ENV)
    if not uri:
        raise RuntimeError(
            f'set {CONFIG_ENV} to an ini file (e.g. {CONFIG_ENV}='
            f'development.ini) to serve {APPLICATION}'
        )
    path, _, name = uri.partition('#')
    options = json.loads(os.environ.get(VARS_ENV) or '{}')
    setup_logging(path, options)
    return get_app(path, name or 'main', options)


class LazyApplication:
    """An ASGI application loading :func:`load_from_environ` when called.

    The module attribute ``application`` is one: importing this module
    loads nothing, and each server process loads the ini file once, on its
    first scope (lifespan startup, where the server has one).
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    def load(self) -> ASGIApp:
        """Load the application now, if not yet done, and return it."""
        if self.app is None:
            self.app = load_from_environ()
        return self.app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            app = self.load()
        except Exception as exc:
            if scope['type'] != 'lifespan':
                raise
            # say so through the lifespan protocol: a server that hears an
            # exception here takes it for "lifespan unsupported" and goes
            # on serving 500s
            log.exception('cannot load the application')
            await receive()
            await send(
                {
                    'type': 'lifespan.startup.failed',
                    'message': f'cannot load the application: {exc}',
                }
            )
            return
        await app(scope, receive, send)


#: The application of the ini file named by :data:`CONFIG_ENV`.
application = LazyApplication()


# -- server options ---------------------------------------------------------

_TRUE = ('true', 'yes', 'on', '1')
_FALSE = ('false', 'no', 'off', '0')
LOG_LEVELS = ('critical', 'error', 'warning', 'info', 'debug', 'trace')


def _checked(check: Any) -> Any:
    # the settings helpers raise ConfigurationError; the runners raise
    # ServerOptionError for every bad option
    def convert(value: Any, name: str) -> Any:
        try:
            return check(value, name)
        except ConfigurationError as exc:
            raise ServerOptionError(str(exc)) from None

    return convert


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE + _FALSE:
        return text in _TRUE
    raise ServerOptionError(f'{name} must be true or false, not {value!r}')


def _port(value: Any, name: str) -> int:
    port = _checked(as_positive_int)(value, name)
    if port is None or port > 65535:
        raise ServerOptionError(f'{name} must be a port number, not {value!r}')
    return port


def _interval(value: Any, name: str) -> float | None:
    if str(value).strip().lower() in ('', 'none', 'off', '0'):
        return None
    return as_seconds(value, name) or None


def _log_level(value: Any, name: str) -> str:
    level = str(value).strip().lower()
    if level not in LOG_LEVELS:
        raise ServerOptionError(
            f'{name} must be one of {", ".join(LOG_LEVELS)}, not {value!r}'
        )
    return level


def _listen(value: Any, name: str) -> list[str]:
    addresses = str(value).split()
    for address in addresses:
        if not address.startswith('unix:'):
            host, sep, port = address.rpartition(':')
            if not (sep and host):
                raise ServerOptionError(
                    f'{name} takes host:port or unix:/path addresses, '
                    f'not {address!r}'
                )
            _port(port, f'the port of {name} {address!r}')
    if not addresses:
        raise ServerOptionError(f'{name} must name an address')
    return addresses


def _text(value: Any, name: str) -> str:
    return str(value).strip()


#: Every ``[server:...]`` option the runners take, with its parser.
SERVER_OPTIONS: dict[str, Any] = {
    'host': _text,
    'port': _port,
    'listen': _listen,
    'unix_socket': _text,
    'workers': _checked(as_positive_int),
    'proxy_headers': _bool,
    'forwarded_allow_ips': _text,
    'ws_max_size': _checked(as_size),
    'ws_ping_interval': _checked(_interval),
    'log_level': _log_level,
    'access_log': _bool,
    'shutdown_timeout': _checked(as_seconds),
    'app_name': _text,
}


def parse_server_options(
    options: dict[str, Any], server: str, unsupported: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check and convert the ``[server:...]`` ``options`` for ``server``.

    Unknown options, and those in ``unsupported``, raise
    :class:`ServerOptionError` naming them.
    """
    parsed: dict[str, Any] = {}
    for key, value in options.items():
        if key not in SERVER_OPTIONS or key in unsupported:
            known = ', '.join(
                k for k in SERVER_OPTIONS if k not in unsupported
            )
            raise ServerOptionError(
                f'unknown option {key!r} in the [server] section of '
                f'egg:pyramid_asgi_ws#{server}; known options are: {known}'
            )
        parsed[key] = SERVER_OPTIONS[key](value, key)
    given = {'host', 'port', 'unix_socket'} & set(parsed)
    if 'listen' in parsed and given:
        raise ServerOptionError(
            f'give either listen or {"/".join(sorted(given))}, not both'
        )
    if 'listen' not in parsed:
        if 'unix_socket' in parsed:
            parsed['listen'] = ['unix:' + parsed['unix_socket']]
        else:
            host = parsed.get('host', '127.0.0.1')
            parsed['listen'] = [f'{host}:{parsed.get("port", 6543)}']
    return parsed


def default_ws_max_size(app: ASGIApp) -> int | None:
    """Return the server's frame limit for ``app``: above the app's own.

    The largest ``max_message_size`` of the app and its consumers, times
    four (a text message's limit counts characters, up to four UTF-8 bytes
    each) plus 4 KiB, so the application, not the server, refuses an
    oversized message with 1009 and a reason. ``None`` when unlimited.
    """
    limits = [app.settings['max_message_size']]
    limits.extend(
        c.setting('max_message_size', app.settings) for c in app.consumers
    )
    if None in limits:
        return None
    return 4 * max(limits) + 4096


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(':')
    host = host.strip('[]')
    return ('0.0.0.0' if host == '*' else host), int(port)


def _timeout(app: ASGIApp, opts: dict[str, Any]) -> float:
    return opts.get('shutdown_timeout', app.settings['shutdown_timeout'])


def find_asgi_app(app: Any) -> ASGIApp | None:
    """Return the :class:`~pyramid_asgi_ws.app.ASGIApp` under a server's
    middleware, if any."""
    for _ in range(10):
        if isinstance(app, ASGIApp):
            return app
        app = getattr(app, 'app', None)
    return None


# -- uvicorn ----------------------------------------------------------------

try:
    import uvicorn
    from uvicorn.supervisors import multiprocess
except ImportError:  # pragma: no cover
    uvicorn = None  # type: ignore[assignment]
    multiprocess = None  # type: ignore[assignment]
else:

    class Server(uvicorn.Server):
        """A ``uvicorn.Server`` that closes WebSockets with 1001 first.

        uvicorn answers SIGTERM and SIGINT by closing every WebSocket with
        1012 and then waits for connections to end before lifespan
        shutdown. This server instead first awaits the application's
        :meth:`~pyramid_asgi_ws.app.ASGIApp.close_connections` (1001,
        ``'server shutting down'``) in its own loop, so consumers see a
        :class:`~pyramid_asgi_ws.WebSocketDisconnect` and can finish, and
        only then lets uvicorn stop. A second signal skips that wait.
        """

        shutdown_timeout: float | None = None
        _loop: asyncio.AbstractEventLoop | None = None
        _closing: asyncio.Future[None] | None = None
        _signalled = False

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn raises the signal again once stopped, which kills the
            # process before pserve can clean up; a graceful stop exits 0
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
            if self._signalled or app is None or self._loop is None:
                super().handle_exit(sig, frame)
                return
            self._signalled = True
            self._loop.call_soon_threadsafe(self._begin_close, app, sig)

        def _begin_close(self, app: ASGIApp, sig: int) -> None:
            self._closing = asyncio.ensure_future(self._close(app, sig))

        async def _close(self, app: ASGIApp, sig: int) -> None:
            try:
                await app.close_connections(
                    GOING_AWAY, SHUTDOWN_REASON, self.shutdown_timeout
                )
            finally:
                uvicorn.Server.handle_exit(self, sig, None)

        async def shutdown(self, sockets: Any = None) -> None:
            closing = self._closing
            if closing is not None and not closing.done():
                closing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await closing
            await super().shutdown(sockets)

    class _Process(multiprocess.Process):
        # a worker process running Server rather than uvicorn.Server
        @property
        def server(self) -> Any:
            if self._server is None:
                server = Server(config=self.config)
                server.shutdown_timeout = getattr(
                    self.config, 'shutdown_timeout', None
                )
                self._server = server
            return self._server


def uvicorn_config(app: Any, opts: dict[str, Any], asgi: ASGIApp) -> Any:
    """Return the ``uvicorn.Config`` for the parsed server options."""
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
        where['host'], where['port'] = _split_address(address)
    timeout = _timeout(asgi, opts)
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
        ws_max_size=opts.get('ws_max_size', default_ws_max_size(asgi))
        or 2**31,
        ws_ping_interval=opts.get('ws_ping_interval', 20.0),
        timeout_graceful_shutdown=max(1, math.ceil(timeout)),
    )
    config.shutdown_timeout = timeout
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
    if workers > 1:
        name = opts.get('app_name', 'main')
        os.environ[CONFIG_ENV] = f'{global_conf["__file__"]}#{name}'
        os.environ[VARS_ENV] = json.dumps(
            {
                k: v
                for k, v in global_conf.items()
                if k not in ('__file__', 'here') and isinstance(v, str)
            }
        )
        config = uvicorn_config(APPLICATION, opts, asgi)
    else:
        config = uvicorn_config(asgi, opts, asgi)
    try:
        if workers > 1:
            # uvicorn's supervisor starts plain uvicorn.Server workers; make
            # it start ours so every worker closes WebSockets with 1001
            multiprocess.Process = _Process  # type: ignore[misc]
            multiprocess.Multiprocess(config, [config.bind_socket()]).run()
        else:
            server = Server(config)
            server.shutdown_timeout = config.shutdown_timeout
            server.run()
    finally:
        if config.uds and os.path.exists(config.uds):
            os.remove(config.uds)


# -- hypercorn --------------------------------------------------------------


async def serve_hypercorn(
    app: ASGIApp, served: Any, config: Any, timeout: float
) -> None:
    """Run hypercorn until SIGTERM or SIGINT, closing WebSockets with 1001.

    On the signal the application's WebSockets are closed before hypercorn
    starts its own graceful shutdown, which would cancel consumers.
    """
    from hypercorn.asyncio import serve

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)

    async def trigger() -> None:
        await stop.wait()
        await app.close_connections(GOING_AWAY, SHUTDOWN_REASON, timeout)

    try:
        await serve(served, config, shutdown_trigger=trigger)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def hypercorn_runner(
    wsgi_app: Any, global_conf: dict[str, Any], **options: Any
) -> None:
    """Serve the application ``pserve`` loaded with hypercorn.

    The ``paste.server_runner`` entry point
    ``egg:pyramid_asgi_ws#hypercorn``; it runs one process, and trusts
    ``X-Forwarded-*`` from one proxy hop when ``proxy_headers`` is true.
    """
    from hypercorn.config import Config
    from hypercorn.middleware import ProxyFixMiddleware

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
    config = Config()
    config.bind = opts['listen']
    # like uvicorn: a unix socket any local user (nginx) may connect to;
    # the directory it lives in decides who can reach it
    config.umask = 0o111
    # hypercorn logs through the ini's [loggers], as uvicorn does
    level = opts.get('log_level', 'info')
    level = 'debug' if level == 'trace' else level
    config.errorlog = logging.getLogger('hypercorn.error')
    config.errorlog.setLevel(level.upper())
    config.accesslog = None
    if opts.get('access_log', True):
        config.accesslog = logging.getLogger('hypercorn.access')
        config.accesslog.setLevel(level.upper())
    max_size = opts.get('ws_max_size', default_ws_max_size(asgi))
    config.websocket_max_message_size = max_size or 2**31
    config.websocket_ping_interval = opts.get('ws_ping_interval')
    timeout = _timeout(asgi, opts)
    config.graceful_timeout = timeout
    served: Any = asgi
    if opts.get('proxy_headers', False):
        served = ProxyFixMiddleware(served, mode='legacy', trusted_hops=1)
    try:
        asyncio.run(serve_hypercorn(asgi, served, config, timeout))
    finally:
        for address in opts['listen']:
            path = address[len('unix:') :]
            if address.startswith('unix:') and os.path.exists(path):
                os.remove(path)
