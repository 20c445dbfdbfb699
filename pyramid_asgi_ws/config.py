"""The configurator directives ``add_asgi_consumer`` and ``make_asgi_app``."""

from __future__ import annotations

import inspect
from typing import Any

from pyramid.config import PHASE1_CONFIG, Configurator
from pyramid.exceptions import ConfigurationError

from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.interfaces import IASGISettings, IConsumerRouter
from pyramid_asgi_ws.router import PROTOCOLS, Consumer, ConsumerRouter
from pyramid_asgi_ws.settings import (
    as_bool,
    as_list,
    as_origins,
    as_overflow,
    as_positive_int,
    as_seconds,
    as_size,
    is_blank,
    parse_settings,
)


def _queue_size(value: Any, name: str) -> int:
    size = as_positive_int(value, name)
    if size is None:
        raise ConfigurationError(
            f'{name} must be a positive whole number, not {value!r}'
        )
    return size


#: Options ``add_asgi_consumer`` accepts besides its named arguments, each
#: with the function that checks and normalizes its value.
OPTIONS: dict[str, Any] = {
    'permission': lambda value, name: value,
    'factory': lambda value, name: value,
    'allowed_origins': as_origins,
    'require_origin': as_bool,
    'subprotocols': as_list,
    'max_message_size': as_size,
    'send_queue_size': _queue_size,
    'send_overflow': as_overflow,
    'heartbeat': as_seconds,
    'retry': as_seconds,
}

#: The options only consumers of one protocol take.
ONLY: dict[str, str] = {
    'subprotocols': 'websocket',
    'max_message_size': 'websocket',
    'heartbeat': 'sse',
    'retry': 'sse',
}

#: What a consumer of each protocol is called in error messages, and
#: what it takes.
KINDS = {
    'websocket': ('WebSocket consumer', 'the WebSocket'),
    'sse': ('event-stream consumer', 'the EventStream'),
}


def _is_sync(consumer: Any) -> bool:
    """Whether ``consumer`` (or its ``__call__``) is a plain ``def``."""
    if inspect.isclass(consumer):
        call = inspect.getattr_static(consumer, '__call__', None)
    elif inspect.isfunction(consumer) or inspect.ismethod(consumer):
        call = consumer
    else:
        call = inspect.getattr_static(type(consumer), '__call__', None)
    if inspect.ismethod(call):
        call = call.__func__
    return inspect.isfunction(call) and not inspect.iscoroutinefunction(call)


def _dotted(ob: Any) -> str:
    return f'{ob.__module__}.{getattr(ob, "__qualname__", type(ob).__name__)}'


def _target(consumer: Any, raw: bool) -> Any:
    """Return what runs per connection: classes get an instance each time."""
    if not inspect.isclass(consumer):
        return consumer
    factory: Any = consumer
    if raw:

        async def raw_instance(scope: Any, receive: Any, send: Any) -> None:
            await factory()(scope, receive, send)

        return raw_instance

    async def instance(ws: Any) -> None:
        await factory()(ws)

    return instance


def add_asgi_consumer(
    config: Configurator,
    pattern: str,
    consumer: Any,
    protocol: str = 'websocket',
    name: str | None = None,
    raw: bool = False,
    **options: Any,
) -> None:
    """Register ``consumer`` to serve ``protocol`` scopes matching ``pattern``.

    This function is added as a method of a :term:`Configurator` by
    ``config.include('pyramid_asgi_ws')``.

    ``pattern`` uses Pyramid's route pattern syntax (``/ws/{room}``,
    ``{id:\\d+}``, ``*rest``) and is prefixed with the configurator's
    ``route_prefix``. ``consumer`` (or a dotted name of one) is an
    ``async def consumer(ws)`` receiving a :class:`~pyramid_asgi_ws.WebSocket`,
    or a class whose instances are such callables (see
    :class:`~pyramid_asgi_ws.WebSocketConsumer`); with ``raw=True``, and
    always for ``protocol='http'``, it is a plain ASGI application. With
    ``protocol='sse'`` it serves server-sent events: an ``async def
    consumer(stream)`` receiving an :class:`~pyramid_asgi_ws.EventStream`
    (or a class whose instances are such callables, one per request).

    ``name`` (default: the consumer's dotted name) is what
    ``request.consumer_url(name)`` takes. Names given explicitly are
    unique; one callable registered for several patterns without ``name=``
    serves each of them, but its default name then builds no URL.

    ``options``: ``permission`` and ``factory`` (checked with the app's
    security policy before the consumer runs), ``allowed_origins``,
    ``require_origin``, ``subprotocols``, ``max_message_size``,
    ``send_queue_size`` and ``send_overflow`` (overriding the ``asgi_ws.*``
    settings for this consumer); for ``protocol='sse'`` also ``heartbeat``
    (seconds without a write before a comment goes out; 0 for none;
    default ``asgi_ws.sse_heartbeat``) and ``retry`` (the reconnection
    delay, in seconds, sent to browsers), but not ``subprotocols`` nor
    ``max_message_size``. An option given as ``None`` leaves the
    setting in force, except ``max_message_size=None``, which means no
    limit (a blank ``max_message_size`` leaves the setting). Any other
    keyword is an error.
    """
    consumer = config.maybe_dotted(consumer)
    if protocol not in PROTOCOLS:
        raise ConfigurationError(
            f'protocol must be one of {", ".join(PROTOCOLS)}, not {protocol!r}'
        )
    raw = as_bool(raw, 'raw')
    if raw and protocol == 'sse':
        raise ConfigurationError(
            "raw=True does not go with protocol='sse': a raw ASGI "
            "application answering HTTP is protocol='http'"
        )
    raw = raw or protocol == 'http'
    if not callable(consumer):
        raise ConfigurationError(f'ASGI consumer {consumer!r} is not callable')
    if not raw and _is_sync(consumer):
        kind, takes = KINDS[protocol]
        raise ConfigurationError(
            f'{kind} {_dotted(consumer)} must be an async def function '
            f'taking {takes}, or a class or object whose __call__ is one'
        )
    if not isinstance(pattern, str):
        raise ConfigurationError(f'pattern must be a string, not {pattern!r}')
    for key, value in list(options.items()):
        if key not in OPTIONS:
            raise ConfigurationError(
                f'unknown add_asgi_consumer option {key!r}; known options '
                f'are: {", ".join(OPTIONS)}'
            )
        if ONLY.get(key, protocol) != protocol:
            raise ConfigurationError(
                f'add_asgi_consumer option {key!r} is for '
                f'protocol={ONLY[key]!r} only, not {protocol!r}'
            )
        if key == 'max_message_size':
            unset = is_blank(value)  # None means no limit
        else:
            unset = value is None
        if unset:
            del options[key]  # as the settings say
            continue
        options[key] = OPTIONS[key](value, key)
    if 'factory' in options:
        factory = config.maybe_dotted(options['factory'])
        if not callable(factory):
            raise ConfigurationError(
                f'factory {options["factory"]!r} is not callable'
            )
        options['factory'] = factory
    if config.route_prefix:
        pattern = config.route_prefix.rstrip('/') + '/' + pattern.lstrip('/')
    if not pattern.startswith('/'):
        pattern = '/' + pattern
    explicit = name is not None
    if name is None:
        name = _dotted(consumer)
    discriminator = ('asgi consumer', protocol, pattern)
    intr = config.introspectable(
        'asgi consumers',
        discriminator,
        f'{name} ({protocol} {pattern!r})',
        'asgi consumer',
    )
    intr['name'] = name
    intr['pattern'] = pattern
    intr['protocol'] = protocol
    intr['raw'] = raw
    intr['consumer'] = consumer
    for key in OPTIONS:
        intr[key] = options.get(key)

    def register() -> None:
        router = config.registry.getUtility(IConsumerRouter)
        entry = Consumer(
            name,
            pattern,
            _target(consumer, raw),
            protocol=protocol,
            raw=raw,
            original=consumer,
            options=options,
            explicit=explicit,
        )
        try:
            router.add(entry)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        intr['object'] = entry

    config.action(discriminator, register, introspectables=(intr,))


def make_asgi_app(config: Configurator) -> ASGIApp:
    """Commit the configuration and return the ASGI application.

    This function is added as a method of a :term:`Configurator` by
    ``config.include('pyramid_asgi_ws')``. It parallels
    :meth:`pyramid.config.Configurator.make_wsgi_app`: it commits, builds
    the Pyramid :term:`router` (sending ``ApplicationCreated``) and wraps it
    in an ASGI 3 application that serves consumers and the Pyramid views.
    The returned application has ``.registry`` and ``.wsgi_app``.
    """
    return ASGIApp(config.make_wsgi_app())


def register_settings(config: Configurator) -> None:
    """Parse the ``asgi_ws.*`` settings and create the consumer router.

    Deferred to :data:`pyramid.config.PHASE1_CONFIG` so that settings given
    after the include still count, and before any consumer registers.
    """

    def register() -> None:
        registry = config.registry
        settings = parse_settings(registry.settings or {})
        registry.registerUtility(settings, IASGISettings)
        if registry.queryUtility(IConsumerRouter) is None:
            registry.registerUtility(ConsumerRouter(), IConsumerRouter)

    config.action(('asgi_ws settings',), register, order=PHASE1_CONFIG)
