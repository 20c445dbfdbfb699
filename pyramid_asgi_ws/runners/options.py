"""Check and convert the options of a ``[server:...]`` section.

Every runner takes the same options (:data:`SERVER_OPTIONS`), less those
it cannot honour, which it names as ``unsupported``; each value goes
through the parsers of :mod:`pyramid_asgi_ws.settings`, and any option or
value not understood is a :class:`ServerOptionError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.exceptions import ConfigurationError

from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.settings import (
    as_bool,
    as_positive_int,
    as_seconds,
    as_size,
    is_blank,
)

LOG_LEVELS = ('critical', 'error', 'warning', 'info', 'debug', 'trace')

#: The largest port number.
MAX_PORT = 65535

#: The server's frame limit when no consumer has a bounded limit of its
#: own: uvicorn's and hypercorn's own default, 16 MiB.
DEFAULT_WS_MAX_SIZE = 16 * 1024 * 1024

#: The frame limit ``ws_max_size = none`` asks for: the most either
#: server accepts (2 GiB).
UNLIMITED_WS_MAX_SIZE = 2**31


#: Options whose blank value means their default (a limit or pings),
#: never none.
BLANK_IS_DEFAULT = ('ws_max_size', 'ws_ping_interval')


class ServerOptionError(ValueError):
    """An unknown or malformed option in a ``[server:...]`` section."""


def _checked(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    # the settings helpers raise ConfigurationError; the runners raise
    # ServerOptionError for every bad option
    def convert(value: Any, name: str) -> Any:
        try:
            return check(value, name)
        except ConfigurationError as exc:
            raise ServerOptionError(str(exc)) from None

    return convert


def _whole(maximum: int | None = None) -> Callable[[Any, str], int]:
    # a whole number from 1 to maximum that must be given
    def check(value: Any, name: str) -> int:
        number = as_positive_int(value, name, maximum)
        if number is None:
            raise ConfigurationError(
                f'{name} must be a whole number, not {value!r}'
            )
        return number

    return _checked(check)


_port = _whole(MAX_PORT)


def _interval(value: Any, name: str) -> float | None:
    if str(value).strip().lower() in ('none', 'off', '0'):
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


def _host(value: Any, name: str) -> str:
    # a blank host would make the server bind every interface
    host = _text(value, name)
    if not host or host.startswith('unix:') or len(host.split()) > 1:
        raise ServerOptionError(
            f'{name} must name one host or address, such as 127.0.0.1, '
            f'not {value!r}'
        )
    return host


def _socket_path(value: Any, name: str) -> str:
    path = _text(value, name)
    if not path:
        raise ServerOptionError(f'{name} must be a path, not {value!r}')
    return path


#: Every ``[server:...]`` option the runners take, with its parser.
SERVER_OPTIONS: dict[str, Callable[[Any, str], Any]] = {
    'host': _host,
    'port': _port,
    'listen': _listen,
    'unix_socket': _socket_path,
    'workers': _whole(),
    'proxy_headers': _checked(as_bool),
    'forwarded_allow_ips': _text,
    'ws_max_size': _checked(as_size),
    'ws_ping_interval': _checked(_interval),
    'log_level': _log_level,
    'access_log': _checked(as_bool),
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
        if key in BLANK_IS_DEFAULT and is_blank(value):
            continue  # the default, never no limit
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
            address = f'{host}:{parsed.get("port", 6543)}'
            parsed['listen'] = _listen(address, 'host and port')
    return parsed


def default_ws_max_size(app: ASGIApp) -> int:
    """Return the server's frame limit for ``app``: above the app's own.

    The largest bounded ``max_message_size`` of the app and its consumers,
    times four (a text message's limit counts characters, up to four UTF-8
    bytes each) plus 4 KiB, so the application, not the server, refuses an
    oversized message with 1009 and a reason.  A consumer without a limit
    never raises the server's: the server would otherwise buffer a giant
    frame for every endpoint before any consumer could refuse it.  With no
    bounded limit at all it is :data:`DEFAULT_WS_MAX_SIZE`; the option
    ``ws_max_size`` is the one way to raise it.
    """
    limits = [app.settings['max_message_size']]
    limits.extend(
        c.setting('max_message_size', app.settings) for c in app.consumers
    )
    bounded = [limit for limit in limits if limit is not None]
    if not bounded:
        return DEFAULT_WS_MAX_SIZE
    return 4 * max(bounded) + 4096


def ws_max_size(app: ASGIApp, opts: dict[str, Any]) -> int:
    """The server's frame limit: the ``ws_max_size`` option, or else
    :func:`default_ws_max_size`."""
    if 'ws_max_size' not in opts:
        return default_ws_max_size(app)
    return opts['ws_max_size'] or UNLIMITED_WS_MAX_SIZE


def shutdown_timeout(app: ASGIApp, opts: dict[str, Any]) -> float:
    """Seconds the whole stop may take: the option, or the app's setting."""
    timeout: float = opts.get(
        'shutdown_timeout', app.settings['shutdown_timeout']
    )
    return timeout


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:port``, ``*:port``) for a server."""
    host, _, port = address.rpartition(':')
    host = host.strip('[]')
    return ('0.0.0.0' if host == '*' else host), int(port)
