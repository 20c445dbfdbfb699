"""The broadcast backend interface, and the table of backends by scheme.

A backend moves opaque payloads between the processes sharing it and keeps
presence. :class:`~pyramid_asgi_ws.broadcast.memory.MemoryBackend` serves
one process (``memory://``),
:class:`~pyramid_asgi_ws.broadcast.redis.RedisBackend` any number of them
over Redis pub/sub (``redis://``). :data:`BACKENDS` maps URL schemes to
classes, so another engine can be added without touching the
:class:`~pyramid_asgi_ws.broadcast.Broadcaster`.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pyramid.exceptions import ConfigurationError
from pyramid.path import DottedNameResolver

#: Called as ``on_message(channel, payload, position=None)``.
OnMessage = Callable[..., None]

#: A group's kept history, as ``(position, payload)`` pairs in order.
Entries = list[tuple[str, bytes]]


class BroadcastError(Exception):
    """Publishing (or joining, or asking for members) failed: the backend
    is unreachable, too slow, or the broadcaster is closed."""


class Backend:
    """What a broadcast engine provides; subclass it to add one.

    Every method is called in the broadcaster's event loop. Channels and
    members are plain strings, payloads and presence info bytes.

    - ``connect()`` starts the backend; from then on it calls
      ``on_message(channel, payload)`` (synchronously, in the loop) for each
      message published on a channel it is subscribed to, including the
      ones this process published. It must not raise when the engine is
      unreachable: it reconnects by itself.
    - ``subscribe()`` and ``unsubscribe()`` are called when the first
      local member joins a group and the last one leaves; ``subscribe()``
      raises :class:`BroadcastError` when the engine refuses it.
    - ``publish()`` hands a payload to the engine, or raises
      :class:`BroadcastError`.
    - ``add_member()``, ``remove_member()`` and ``members()`` keep
      presence: who is in a channel, in every process.
    - the class method ``check_url()`` refuses, at configuration time,
      options of the URL the backend does not understand.

    A backend that keeps group history (:attr:`supports_history`) also
    has:

    - ``append(channel, payload, size, ttl)``, which publishes as
      ``publish()`` does and keeps the payload in the channel's history
      (the last ``size`` at least, for ``ttl`` seconds at least when
      ``ttl`` is not ``None``), under a new position: an opaque string,
      ordered within the channel. Its ``on_message`` call, in every
      process, carries the position as a third argument.
    - ``read(channel, since, count)``, which returns the next ``count``
      entries (at most) after the position ``since``, or ``None`` when
      the history no longer holds ``since`` (trimmed, expired, from
      another epoch of the history, or malformed): what came after it
      can no longer be told whole.
    - ``order(position)``, which returns a value that orders the
      positions of one channel (of ``read()``'s entries, of a ``since``
      it accepted and of ``on_message``), so that a replay can tell the
      live copy of a message it has replayed. Positions only grow within
      a channel, even across a new epoch of its history.
    """

    #: Whether the backend keeps group history (``append`` and ``read``).
    supports_history = False
    #: Set by the broadcaster: a backend that reconnects calls it, as
    #: ``on_resubscribed(channel)`` in the loop, once the engine confirms
    #: its subscription to ``channel`` again after losing it (or to one
    #: kept before it first connected), so that what the channel said
    #: meanwhile is read back from its history.
    on_resubscribed: Callable[[str], None] | None = None

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def check_url(cls, url: str) -> None:
        """Raise :class:`ConfigurationError` for a URL this backend refuses;
        the base class takes any."""

    async def connect(self, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def disconnect(self) -> None:
        raise NotImplementedError

    async def subscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def unsubscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def publish(self, channel: str, payload: bytes) -> None:
        raise NotImplementedError

    async def append(
        self, channel: str, payload: bytes, size: int, ttl: float | None
    ) -> None:
        raise NotImplementedError

    async def read(
        self, channel: str, since: str, count: int
    ) -> Entries | None:
        raise NotImplementedError

    def order(self, position: str) -> Any:
        raise NotImplementedError

    async def add_member(self, channel: str, member: str, info: bytes) -> None:
        raise NotImplementedError

    async def remove_member(self, channel: str, member: str) -> None:
        raise NotImplementedError

    async def members(self, channel: str) -> dict[str, bytes]:
        raise NotImplementedError


#: Backend classes by URL scheme. Add an entry (a class or a dotted name)
#: to serve another scheme.
BACKENDS: dict[str, Any] = {
    'memory': 'pyramid_asgi_ws.broadcast.memory.MemoryBackend',
    'redis': 'pyramid_asgi_ws.broadcast.redis.RedisBackend',
    'rediss': 'pyramid_asgi_ws.broadcast.redis.RedisBackend',
    'unix': 'pyramid_asgi_ws.broadcast.redis.RedisBackend',
}


def backend_factory(url: str) -> Callable[[str], Backend]:
    """Return the backend class serving ``url``'s scheme.

    Raises :class:`ConfigurationError` for an unknown scheme, a backend
    whose library is missing, or a URL the backend refuses.
    """
    scheme = url.split('://', 1)[0].lower()
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise ConfigurationError(
            f'no broadcast backend for {url!r}; known schemes are: '
            + ', '.join(f'{name}://' for name in BACKENDS)
        )
    try:
        factory = DottedNameResolver().maybe_resolve(factory)
        requires = getattr(factory, 'requires', None)
        if requires:
            importlib.import_module(requires)
    except ImportError as exc:
        raise ConfigurationError(
            f'the broadcast backend for {url!r} cannot be imported ({exc}); '
            "for Redis install redis-py: pip install 'pyramid_asgi_ws[redis]'"
        ) from None
    check = getattr(factory, 'check_url', None)
    if check is not None:
        check(url)
    return factory


def split_options(
    url: str, names: tuple[str, ...]
) -> tuple[str, dict[str, str]]:
    """Take the query options in ``names`` out of ``url``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {key: value for key, value in query if key in names}
    rest = urlencode(
        [(key, value) for key, value in query if key not in names]
    )
    return urlunsplit(parts._replace(query=rest)), options
