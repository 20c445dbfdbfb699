"""Load ASGI applications from ini files and serve them with ``pserve``.

``get_app`` mirrors :func:`pyramid.paster.get_app`. The server runners
of :mod:`pyramid_asgi_ws.runners` are the ``paste.server_runner`` entry
points ``egg:pyramid_asgi_ws#uvicorn`` and ``egg:pyramid_asgi_ws#hypercorn``
(``uvicorn_runner``, ``hypercorn_runner`` and ``ServerOptionError`` are
still importable from this module):

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

import json
import logging
import os
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.router import Router

from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.interfaces import IASGIApp, IASGISettings

log = logging.getLogger(__name__)

#: The environment variable naming the config URI ``application`` loads.
CONFIG_ENV = 'PYRAMID_ASGI_WS_CONFIG'
#: Extra ``%(name)s`` variables for that config file, as a JSON object.
VARS_ENV = 'PYRAMID_ASGI_WS_VARS'
#: The import string of the lazily loaded application.
APPLICATION = 'pyramid_asgi_ws.paster:application'
#: Attributes WSGI middleware commonly keeps the application it wraps in.
WRAPPED_ATTRIBUTES = ('app', 'application', 'wrap_app', 'wrapped', '_app')


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


def find_asgi_app(app: Any) -> ASGIApp | None:
    """Return the :class:`~pyramid_asgi_ws.app.ASGIApp` under a server's
    middleware, if any."""
    for _ in range(10):
        if isinstance(app, ASGIApp):
            return app
        app = getattr(app, 'app', None)
    return None


#: Names that moved to :mod:`pyramid_asgi_ws.runners`, by module.
_MOVED = {
    'uvicorn_runner': 'pyramid_asgi_ws.runners.uvicorn',
    'hypercorn_runner': 'pyramid_asgi_ws.runners.hypercorn',
    'ServerOptionError': 'pyramid_asgi_ws.runners.options',
}


def __getattr__(name: str) -> Any:
    # imported when first asked for: the runners import this module, and
    # loading an application needs neither server
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
