"""Parse the ``asgi_ws.*`` settings into normalized Python values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import ipaddress
import math
import re
from typing import Any

from pyramid.exceptions import ConfigurationError
from pyramid.settings import aslist, falsey, truthy

PREFIX = 'asgi_ws.'

#: Overflow policies for a connection's bounded send queue.
OVERFLOW_POLICIES = ('drop_oldest', 'drop_newest', 'close')

DEFAULTS: dict[str, Any] = {
    'threads': None,
    'max_body_size': None,
    'allowed_origins': (),
    'require_origin': False,
    'check_origin': True,
    'trusted_proxies': (),
    'max_message_size': 1024 * 1024,
    'send_queue_size': 256,
    'send_overflow': 'close',
    'broadcast_url': 'memory://',
    'history_size': None,
    'history_ttl': None,
    'history': (),
    'publish_timeout': 5.0,
    'send_timeout': 10.0,
    'shutdown_timeout': 5.0,
    'sse_heartbeat': 15.0,
    'metrics': None,
    'metrics_path': None,
    'metrics_allow': ('127.0.0.0/8', '::1'),
    'metrics_default_registry': False,
}

#: Ports an origin leaves out for its scheme.
DEFAULT_PORTS = {'http': '80', 'https': '443'}

_SIZE = re.compile(r'^\s*(\d+)\s*([kmg]i?b?)?\s*$', re.IGNORECASE)
_UNITS = {'k': 1024, 'm': 1024**2, 'g': 1024**3}

#: An origin as a browser sends it: http(s), a host, maybe a port.
_ORIGIN = re.compile(
    r'^https?://(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d{1,5}))?/?$',
    re.IGNORECASE,
)


def is_blank(value: Any) -> bool:
    """Whether ``value`` is an empty (or all-space) string."""
    return isinstance(value, str) and not value.strip()


def as_size(
    value: Any, name: str = 'size', default: int | None = None
) -> int | None:
    """Return ``value`` as a byte count, accepting ``'64KiB'``-style units.

    ``None`` and ``'none'`` mean no limit and return ``None``; a blank
    string means the setting's ``default``, so an empty ini line never
    silently lifts a limit.
    """
    if is_blank(value):
        return default
    if value is None or str(value).strip().lower() == 'none':
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ConfigurationError(
                f'{name} must be a byte count such as 1048576 or 1MiB, '
                f'not {value!r}'
            )
        number = int(match.group(1))
        unit = match.group(2)
        if unit:
            number *= _UNITS[unit[0].lower()]
    size: int = _bounded(number, value, name, 1, None)
    return size


def as_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool, strictly.

    ``True``/``False`` (and ``0``/``1``) pass through; strings must be one
    of Pyramid's own words (``true``, ``yes``, ``on``, ``1``, ... and
    ``false``, ``no``, ``off``, ``0``, ...), in any case. Anything else is
    a :class:`ConfigurationError` naming ``name`` and the value: a typo
    such as ``enabled`` or ``ture`` never silently means false.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in truthy:
            return True
        if word in falsey:
            return False
    raise ConfigurationError(
        f'{name} must be true or false (one of '
        f'{", ".join(sorted(truthy | falsey))}), not {value!r}'
    )


def _parse_number(value: Any, whole: bool) -> Any:
    """Return ``value`` as a finite int (``whole``) or float, else None."""
    if isinstance(value, bool):
        return None
    try:
        if whole and not isinstance(value, float):
            return int(value)  # a string such as '1.5' fails here
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or whole and not number.is_integer():
        return None
    return int(number) if whole else number


def _number(
    value: Any,
    name: str,
    what: str,
    whole: bool,
    minimum: float | None,
    maximum: float | None,
) -> Any:
    """Return ``value`` as a number within bounds: the one number parser.

    ``what`` names the kind of number in the message when ``value`` is
    not one.
    """
    number = _parse_number(value, whole)
    if number is None:
        raise ConfigurationError(f'{name} must be {what}, not {value!r}')
    return _bounded(number, value, name, minimum, maximum)


def _bounded(
    number: Any,
    value: Any,
    name: str,
    minimum: float | None,
    maximum: float | None,
) -> Any:
    """Return ``number`` if within its bounds, else name the setting."""
    if minimum is not None and number < minimum:
        if minimum == 0:
            raise ConfigurationError(
                f'{name} must not be negative, not {value!r}'
            )
        if minimum == 1 and isinstance(number, int):
            raise ConfigurationError(f'{name} must be positive, not {value!r}')
        raise ConfigurationError(
            f'{name} must be at least {minimum}, not {value!r}'
        )
    if maximum is not None and number > maximum:
        raise ConfigurationError(
            f'{name} must be at most {maximum}, not {value!r}'
        )
    return number


def as_positive_int(
    value: Any, name: str, maximum: int | None = None
) -> int | None:
    """Return ``value`` as a whole number from 1 to ``maximum``.

    ``None`` and ``''`` mean unset and return ``None``; a fraction, a
    word or a number out of bounds is a :class:`ConfigurationError`
    naming ``name`` and the value.
    """
    if value is None or value == '':
        return None
    number: int = _number(value, name, 'a whole number', True, 1, maximum)
    return number


def normalize_origin(origin: str) -> str:
    """Lower-case ``scheme://host[:port]``, dropping a default port."""
    origin = origin.strip().rstrip('/').lower()
    scheme, sep, host = origin.partition('://')
    if not sep:
        return origin
    name, colon, port = host.rpartition(':')
    if colon and ']' not in port and DEFAULT_PORTS.get(scheme) == port:
        host = name
    return f'{scheme}://{host}'


def as_list(value: Any, name: str) -> tuple[str, ...]:
    """Return the strings of an ini list (lines or spaces) or a sequence.

    ``None`` is the empty list; anything else that is not a list of
    strings is a :class:`ConfigurationError` naming ``name``.
    """
    if isinstance(value, str):
        return tuple(aslist(value))
    if isinstance(value, (list, tuple, set, frozenset)) and all(
        isinstance(entry, str) for entry in value
    ):
        return tuple(value)
    if value is None:
        return ()
    raise ConfigurationError(
        f'{name} must be a list of strings (or one string of them '
        f'separated by spaces or lines), not {value!r}'
    )


def as_origins(value: Any, name: str = 'allowed_origins') -> tuple[str, ...]:
    """Return normalized origins from a list or ini string.

    Each entry is ``*`` or ``http(s)://host[:port]``; anything else (a
    path, a comma-separated pair, another scheme) would never match a
    browser's ``Origin`` and is a :class:`ConfigurationError` naming it.
    Normalized once here (case, trailing slash, default port) so that the
    check on each handshake compares them as they are.
    """
    origins = as_list(value, name)
    for origin in origins:
        match = _ORIGIN.match(origin)
        port = match and match.group(2)
        if origin != '*' and (not match or port and int(port) > 65535):
            raise ConfigurationError(
                f'{name}: {origin!r} is not an origin such as '
                "https://www.example.com or http://localhost:6543, nor '*'"
                ' (list several separated by spaces or lines)'
            )
    return tuple(normalize_origin(origin) for origin in origins)


def as_proxies(value: Any, name: str) -> tuple[str, ...]:
    """Check a list of trusted peers: addresses, networks, ``unix``, ``*``.

    A typo would otherwise silently trust nobody.
    """
    entries = as_list(value, name)
    for entry in entries:
        if entry in ('*', 'unix'):
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigurationError(
                f'{name}: {entry!r} is not an IP address, a network such as '
                "10.0.0.0/8, 'unix' or '*'"
            ) from None
    return entries


def as_overflow(value: Any, name: str) -> str:
    """Check a send-queue overflow policy name."""
    if value not in OVERFLOW_POLICIES:
        raise ConfigurationError(
            f'{name} must be one of {", ".join(OVERFLOW_POLICIES)}, '
            f'not {value!r}'
        )
    return str(value)


def as_seconds(
    value: Any,
    name: str,
    minimum: float = 0.0,
    maximum: float | None = None,
) -> float:
    """Return ``value`` as a number of seconds from ``minimum`` (default 0).

    A word, ``None``, an infinity or a number out of bounds is a
    :class:`ConfigurationError` naming ``name`` and the value.
    """
    seconds: float = _number(
        value, name, 'a number of seconds', False, minimum, maximum
    )
    return seconds


def as_timeout(value: Any, name: str) -> float:
    """Return ``value`` as a number of seconds above 0.

    A wait of 0 seconds could never succeed.
    """
    seconds = as_seconds(value, name)
    if seconds == 0:
        raise ConfigurationError(f'{name} must be more than 0, not {value!r}')
    return seconds


def as_url(value: Any, name: str) -> str:
    """Check a broadcast backend URL such as ``redis://host:6379/0``."""
    url = str(value).strip()
    if '://' not in url:
        raise ConfigurationError(
            f'{name} must be a URL such as memory:// or '
            f'redis://localhost:6379/0, not {url!r}'
        )
    return url


def as_history(value: Any, name: str) -> tuple[Any, ...]:
    """Return per-pattern group history: ``(pattern, size, ttl)`` triples.

    One rule a line (or a list of lines): ``pattern size [ttl]``, the
    pattern in fnmatch style (``room:*``), ``size`` a whole number of
    messages and ``ttl`` a number of seconds, or ``off`` alone. Anything
    else is a :class:`ConfigurationError` naming the line.
    """
    lines = aslist(value, flatten=False) if isinstance(value, str) else None
    rules = []
    for line in as_list(value, name) if lines is None else lines:
        words = line.split()
        off = words[1:2] == ['off']
        if len(words) not in (2, 3) or off and words[2:]:
            raise ConfigurationError(
                f'{name}: {line!r} is not "pattern size [ttl]" nor "pattern '
                'off", such as "room:* 500 3600" (one a line)'
            )
        what = f'{name} ({line!r})'
        size = None if off else as_positive_int(words[1], what)
        ttl = as_timeout(words[2], what) if words[2:] else None
        rules.append((words[0], size, ttl))
    return tuple(rules)


#: The parser of each setting, called as ``parse(value, 'asgi_ws.name')``.
PARSERS: dict[str, Callable[[Any, str], Any]] = {
    'threads': as_positive_int,
    'max_body_size': lambda value, name: as_size(
        value, name, DEFAULTS['max_body_size']
    ),
    'allowed_origins': as_origins,
    'require_origin': as_bool,
    'check_origin': as_bool,
    'trusted_proxies': as_proxies,
    'max_message_size': lambda value, name: as_size(
        value, name, DEFAULTS['max_message_size']
    ),
    'send_queue_size': lambda value, name: (
        as_positive_int(value, name) or DEFAULTS['send_queue_size']
    ),
    'send_overflow': as_overflow,
    'broadcast_url': as_url,
    'history_size': as_positive_int,
    'history_ttl': lambda value, name: (
        None if value in (None, '') else as_timeout(value, name)
    ),
    'history': as_history,
    'publish_timeout': as_timeout,
    'send_timeout': as_timeout,
    'shutdown_timeout': as_seconds,
    'sse_heartbeat': as_seconds,
    'metrics': lambda value, name: (
        None if value in (None, '') else as_bool(value, name)
    ),
    # the path is checked where the endpoint is registered (metrics)
    'metrics_path': lambda value, name: str(value or '').strip() or None,
    'metrics_allow': as_proxies,
    'metrics_default_registry': as_bool,
}


def parse_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return every ``asgi_ws.*`` setting, normalized, keyed without prefix.

    Unknown keys under the prefix raise :class:`ConfigurationError` naming
    them, so a typo never silently falls back to a default.
    """

    def sget(name: str) -> Any:
        return settings.get(PREFIX + name, DEFAULTS[name])

    unknown = sorted(
        key
        for key in settings
        if key.startswith(PREFIX) and key[len(PREFIX) :] not in DEFAULTS
    )
    if unknown:
        raise ConfigurationError(
            f'unknown setting {unknown[0]!r}; known asgi_ws settings are: '
            + ', '.join(PREFIX + name for name in DEFAULTS)
        )
    return {
        name: parse(sget(name), PREFIX + name)
        for name, parse in PARSERS.items()
    }
