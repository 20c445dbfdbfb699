"""The consumer router: patterns to consumers, in registration order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pyramid.url import _join_elements, parse_url_overrides
from pyramid.urldispatch import Route
from zope.interface import implementer

from pyramid_asgi_ws.interfaces import IConsumerRouter
from pyramid_asgi_ws.wsgi import below_root

PROTOCOLS = ('websocket', 'http', 'sse')

#: The ASGI scope type each protocol's requests come in: an event stream
#: is an HTTP response.
SCOPE_TYPES = {'websocket': 'websocket', 'http': 'http', 'sse': 'http'}

#: The keywords ``consumer_url`` takes besides the placeholders.
URL_KEYWORDS = ('_query', '_anchor', '_app_url')


class _Option:
    """A consumer option read as an attribute: its value, or None if unset.

    Only the options named in the class are attributes, so a typo such as
    ``consumer.permision`` raises :class:`AttributeError`.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, consumer: Any, owner: type | None = None) -> Any:
        if consumer is None:
            return self
        return consumer.options.get(self.name)


class Consumer:
    """One registered consumer: its pattern, callable and options.

    ``target`` is what runs: for a WebSocket consumer a coroutine function
    taking a :class:`~pyramid_asgi_ws.WebSocket`, for a server-sent events
    one a coroutine function taking an
    :class:`~pyramid_asgi_ws.EventStream`, for a raw one an ASGI
    application ``(scope, receive, send)``. The options given to
    ``add_asgi_consumer`` read as attributes (``None`` when not given).
    """

    permission = _Option()
    factory = _Option()
    allowed_origins = _Option()
    require_origin = _Option()
    subprotocols = _Option()
    max_message_size = _Option()
    send_queue_size = _Option()
    send_overflow = _Option()
    heartbeat = _Option()
    retry = _Option()

    def __init__(
        self,
        name: str,
        pattern: str,
        target: Callable[..., Any],
        *,
        protocol: str = 'websocket',
        raw: bool = False,
        original: Any = None,
        options: dict[str, Any] | None = None,
        explicit: bool = True,
    ) -> None:
        self.name = name
        self.explicit = explicit
        self.pattern = pattern
        self.target = target
        self.protocol = protocol
        self.raw = raw or protocol == 'http'
        self.original = original if original is not None else target
        self.options = options or {}
        self.route = Route(name, pattern)

    def setting(self, name: str, settings: dict[str, Any]) -> Any:
        """Return this consumer's ``name`` option if given, else the setting.

        An option given as ``None`` (no limit) overrides the setting too.
        """
        return self.options[name] if name in self.options else settings[name]

    def path(self, matchdict: dict[str, Any]) -> str:
        """Return the path this consumer answers for ``matchdict``."""
        return self.route.generate(matchdict)

    def __repr__(self) -> str:
        return (
            f'<Consumer {self.name!r} {self.protocol} {self.pattern!r}'
            f'{" raw" if self.raw else ""}>'
        )


@implementer(IConsumerRouter)
class ConsumerRouter:
    """Match a scope's protocol and path to a :class:`Consumer`."""

    def __init__(self) -> None:
        # by scope type: HTTP and event-stream consumers match in the
        # order they were added
        self._consumers: dict[str, list[Consumer]] = {
            kind: [] for kind in SCOPE_TYPES.values()
        }
        self._all: list[Consumer] = []
        self._by_name: dict[str, Consumer] = {}
        self._shared: dict[str, list[Consumer]] = {}

    def add(self, consumer: Consumer) -> None:
        """Add ``consumer``; a name given explicitly must not be taken.

        One callable registered for several patterns without ``name=``
        shares its default name: each serves its pattern, but the name
        cannot build a URL until ``name=`` tells them apart.
        """
        name = consumer.name
        taken = self._by_name.get(name) or next(
            iter(self._shared.get(name, ())), None
        )
        if taken is None:
            self._by_name[name] = consumer
        elif consumer.explicit or taken.explicit:
            raise ValueError(
                f'an ASGI consumer named {name!r} already exists '
                f'({taken!r}); pass name= to tell them apart'
            )
        else:
            shared = self._shared.setdefault(name, [])
            if name in self._by_name:
                shared.append(self._by_name.pop(name))
            shared.append(consumer)
        self._all.append(consumer)
        self._consumers[SCOPE_TYPES[consumer.protocol]].append(consumer)

    def match(
        self, kind: str, path: str
    ) -> tuple[Consumer, dict[str, Any]] | None:
        """Return the first consumer of scope type ``kind`` (``http`` or
        ``websocket``) matching ``path`` and its matchdict, or None."""
        for consumer in self._consumers.get(kind, ()):
            matchdict = consumer.route.match(path)
            if matchdict is not None:
                return consumer, matchdict
        return None

    def has(self, protocol: str) -> bool:
        """Whether any consumer serves ``protocol``."""
        return any(consumer.protocol == protocol for consumer in self._all)

    def get(self, name: str) -> Consumer | None:
        """Return the consumer registered as ``name``, or None."""
        return self._by_name.get(name)

    def sharing(self, name: str) -> list[Consumer]:
        """Return the consumers sharing the default name ``name``."""
        return list(self._shared.get(name, ()))

    def __iter__(self) -> Iterator[Consumer]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)


def path_info(scope: dict[str, Any]) -> str:
    """Return the scope's path below its ``root_path`` (WSGI's PATH_INFO)."""
    path: str = scope['path']
    below = below_root(path, scope.get('root_path') or '')
    if below is None:
        return path
    return below or '/'


def consumer_url(request: Any, name: str, /, *elements: Any, **kw: Any) -> str:
    """Return the absolute URL of the consumer named ``name``.

    Added to requests as ``request.consumer_url``. Keyword arguments fill
    the pattern's placeholders; ``elements`` are appended as quoted path
    segments; ``_query`` adds a query string, ``_anchor`` a fragment, and
    ``_app_url`` replaces the request's application URL (as for
    ``request.route_url``). WebSocket consumers get ``ws://`` or
    ``wss://`` following the scheme, server-sent events and HTTP
    consumers ``http://`` or ``https://``, and the URL honours the
    application's script name, so pages never hard-code a socket address.
    """
    router = request.registry.queryUtility(IConsumerRouter)
    consumer = router.get(name) if router is not None else None
    if consumer is None:
        shared = router.sharing(name) if router is not None else []
        if shared:
            patterns = ', '.join(repr(c.pattern) for c in shared)
            raise KeyError(
                f'{name!r} is registered for {patterns}; give each '
                'add_asgi_consumer() a name= to build their URLs'
            )
        raise KeyError(f'no ASGI consumer named {name!r}')
    unknown = sorted(
        key for key in kw if key.startswith('_') and key not in URL_KEYWORDS
    )
    if unknown:
        raise TypeError(
            f'consumer_url() got unknown keyword {unknown[0]!r}; it takes '
            f'{", ".join(URL_KEYWORDS)} besides the placeholders'
        )
    # the same code as request.route_url, so that both quote alike
    app_url, query, anchor = parse_url_overrides(request, kw)
    path = consumer.path(kw)
    suffix = ''
    if elements:
        suffix = _join_elements(elements)
        if not path.endswith('/'):
            suffix = '/' + suffix
    url = app_url + path + suffix + query + anchor
    if consumer.protocol == 'websocket' and url.startswith('http'):
        url = 'ws' + url[4:]
    return url
