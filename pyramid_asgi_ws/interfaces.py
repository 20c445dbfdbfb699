"""Marker interfaces for the utilities this add-on registers."""

from zope.interface import Attribute, Interface


class IConsumerRouter(Interface):
    """The registry utility that maps ASGI scopes to consumers."""

    def match(protocol, path):
        """Return ``(consumer, matchdict)`` for a path, or ``None``."""

    def get(name):
        """Return the consumer registered under ``name``, or ``None``."""


class IASGISettings(Interface):
    """The parsed ``asgi_ws.*`` settings, as a dict."""


class IBroadcaster(Interface):
    """The registry utility that joins sockets to groups and publishes."""

    backend = Attribute('The broadcast backend in use.')
