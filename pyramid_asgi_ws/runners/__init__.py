"""The ``pserve`` server runners and what they share.

One module per server: :mod:`pyramid_asgi_ws.runners.uvicorn`,
:mod:`~pyramid_asgi_ws.runners.hypercorn`,
:mod:`~pyramid_asgi_ws.runners.granian` and
:mod:`~pyramid_asgi_ws.runners.gunicorn` hold the ``paste.server_runner``
entry points ``egg:pyramid_asgi_ws#uvicorn``, ``#hypercorn``,
``#granian`` and ``#gunicorn``; :mod:`pyramid_asgi_ws.runners.options`
checks the ``[server:...]`` options they take.  This module holds the
graceful stop they all perform: every WebSocket closed with 1001 first,
and the whole stop bounded by ``shutdown_timeout``; and the environment
through which the workers of a server load the ini file again.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.closecodes import CloseCode
from pyramid_asgi_ws.paster import CONFIG_ENV, VARS_ENV

#: The reason sent with close code 1001 when the server stops.
SHUTDOWN_REASON = 'server shutting down'

#: The mode of a unix socket file every runner creates: like uvicorn's,
#: readable and writable by every local user (nginx's); the directory it
#: lives in decides who can reach it.
SOCKET_MODE = 0o666
#: The umask under which a server creates its socket with that mode.
SOCKET_UMASK = 0o777 & ~SOCKET_MODE

#: The least time left to the server's own graceful stop, in seconds: a
#: server given no time at all treats it as an error even when nothing
#: is left to wait for.
MIN_GRACE = 0.01


def time_left(deadline: float) -> float:
    """Seconds from now (:func:`time.monotonic`) to ``deadline``, at least
    :data:`MIN_GRACE`."""
    return max(MIN_GRACE, deadline - time.monotonic())


async def close_websockets(app: ASGIApp, deadline: float) -> float:
    """Close ``app``'s WebSockets with 1001 by ``deadline``; return the
    seconds left then for the server to stop, so that the whole stop ends
    within the one ``shutdown_timeout``."""
    await app.close_connections(
        CloseCode.GOING_AWAY,
        SHUTDOWN_REASON,
        max(0.0, deadline - time.monotonic()),
    )
    return time_left(deadline)


def remove_unix_sockets(listen: list[str]) -> None:
    """Remove the socket files of the ``unix:`` addresses in ``listen``."""
    for address in listen:
        path = address[len('unix:') :]
        if address.startswith('unix:') and os.path.exists(path):
            os.remove(path)


def worker_environ(global_conf: dict[str, Any], name: str) -> None:
    """Name the ini file and section ``pserve`` serves, and its
    ``%(name)s`` variables, in the environment that
    :data:`~pyramid_asgi_ws.paster.application` reads: each worker
    process a server starts loads the application again through it."""
    os.environ[CONFIG_ENV] = f'{global_conf["__file__"]}#{name}'
    os.environ[VARS_ENV] = json.dumps(
        {
            k: v
            for k, v in global_conf.items()
            if k not in ('__file__', 'here') and isinstance(v, str)
        }
    )
