"""Marker interfaces for the utilities this add-on registers."""

from zope.interface import Attribute, Interface


class IConsumerRouter(Interface):
    """The registry utility that maps ASGI scopes to consumers."""

    def match(protocol, path):
        """Return ``(consumer, matchdict)`` for a path, or ``None``."""

    def get(name):
        """Return the consumer registered under ``name``, or ``None``."""


class IASGIApp(Interface):
    """The ASGI application made from a registry (``make_asgi_app()``)."""

    registry = Attribute('The application registry')
    wsgi_app = Attribute('The Pyramid WSGI router it wraps')


class IASGISettings(Interface):
    """The parsed ``asgi_ws.*`` settings, as a dict."""


class IBroadcaster(Interface):
    """The registry utility that joins sockets to groups and publishes.

    The application starts it at startup (or on first use) and closes it
    at shutdown; a WebSocket that ends leaves its groups.
    """

    url = Attribute('The broadcast URL it was made from.')

    async def start():  # type: ignore[misc]
        """Connect the backend."""

    async def close():  # type: ignore[misc]
        """Disconnect the backend."""

    async def join(ws, group, info=None):
        """Add the WebSocket ``ws`` to ``group``."""

    async def leave(ws, group):
        """Take ``ws`` out of ``group``."""

    async def discard(ws):
        """Take ``ws`` out of every group it is in."""

    async def publish(group, message):
        """Send ``message`` to every member of ``group``."""

    async def members(group):
        """Return ``{connection id: presence info}`` for ``group``."""


class IMetrics(Interface):
    """The application's Prometheus metrics, when they are on."""

    collector_registry = Attribute(
        'The prometheus_client CollectorRegistry holding them.'
    )

    def watch(scope, found, receive, send):
        """Return ``receive`` and ``send`` wrapped to count the scope."""

    def ended(scope):
        """Tell that the consumer of a WebSocket scope is done."""


class ILifespanEvent(Interface):
    """An event of the ASGI application's lifespan."""

    app = Attribute('The ASGI application')
    registry = Attribute('The application registry')


class IApplicationStartup(ILifespanEvent):
    """The ASGI server has started the application (lifespan startup)."""


class IApplicationShutdown(ILifespanEvent):
    """The ASGI server is stopping the application (lifespan shutdown)."""
