"""The consumer router: patterns to consumers, in registration order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from pyramid.urldispatch import Route
from zope.interface import implementer

from pyramid_asgi_ws.interfaces import IConsumerRouter

PROTOCOLS = ('websocket', 'http')


class Consumer:
    """One registered consumer: its pattern, callable and options.

    ``target`` is what runs: for a WebSocket consumer a coroutine function
    taking a :class:`~pyramid_asgi_ws.WebSocket`, for a raw one an ASGI
    application ``(scope, receive, send)``.
    """

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
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.target = target
        self.protocol = protocol
        self.raw = raw or protocol == 'http'
        self.original = original if original is not None else target
        self.options = options or {}
        self.route = Route(name, pattern)

    def __getattr__(self, name: str) -> Any:
        # options (permission, factory, ...) read as attributes; None if unset
        if name.startswith('__'):
            raise AttributeError(name)
        return self.options.get(name)

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
        self._consumers: dict[str, list[Consumer]] = {p: [] for p in PROTOCOLS}
        self._by_name: dict[str, Consumer] = {}

    def add(self, consumer: Consumer) -> None:
        """Add ``consumer``; its name must not be taken."""
        if consumer.name in self._by_name:
            raise ValueError(
                f'an ASGI consumer named {consumer.name!r} already exists '
                f'({self._by_name[consumer.name]!r}); pass name= to tell '
                'them apart'
            )
        self._by_name[consumer.name] = consumer
        self._consumers[consumer.protocol].append(consumer)

    def match(
        self, protocol: str, path: str
    ) -> tuple[Consumer, dict[str, Any]] | None:
        """Return the first consumer matching and its matchdict, or None."""
        for consumer in self._consumers.get(protocol, ()):
            matchdict = consumer.route.match(path)
            if matchdict is not None:
                return consumer, matchdict
        return None

    def has(self, protocol: str) -> bool:
        """Whether any consumer serves ``protocol``."""
        return bool(self._consumers.get(protocol))

    def get(self, name: str) -> Consumer | None:
        """Return the consumer registered as ``name``, or None."""
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Consumer]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


def path_info(scope: dict[str, Any]) -> str:
    """Return the scope's path below its ``root_path`` (WSGI's PATH_INFO)."""
    path: str = scope['path']
    root = scope.get('root_path') or ''
    if root and path.startswith(root):
        return path[len(root) :] or '/'
    return path


def consumer_url(
    request: Any, name: str, /, *elements: Any, **kw: Any
) -> str:
    """Return the absolute URL of the consumer named ``name``.

    Added to requests as ``request.consumer_url``. Keyword arguments fill
    the pattern's placeholders; ``_query`` adds a query string. WebSocket
    consumers get ``ws://`` or ``wss://`` following the request's scheme,
    and the URL honours the application's script name, so pages never
    hard-code a socket address.
    """
    router = request.registry.queryUtility(IConsumerRouter)
    consumer = router.get(name) if router is not None else None
    if consumer is None:
        raise KeyError(f'no ASGI consumer named {name!r}')
    query = kw.pop('_query', None)
    path = consumer.path(kw)
    if elements:
        path = path.rstrip('/') + '/' + '/'.join(str(e) for e in elements)
    url = request.application_url + path
    if consumer.protocol == 'websocket':
        url = 'ws' + url[4:] if url.startswith('http') else url
    if query:
        url += '?' + (query if isinstance(query, str) else urlencode(query))
    return url
