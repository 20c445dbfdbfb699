"""Groups, publishing and presence, over a pluggable broadcast backend.

A :class:`Broadcaster` is registered as the
:class:`~pyramid_asgi_ws.interfaces.IBroadcaster` utility. The package
reads from the bottom up: :mod:`~.codec` (payloads), :mod:`~.backend`
(the interface and the table of schemes), one module per backend
(:mod:`~.memory`, :mod:`~.redis` with its :mod:`~.presence` and
:mod:`~.streams`), :mod:`~.outbox` (a connection's bounded send queue),
:mod:`~.member` (what the broadcaster knows of a connection),
:mod:`~.history` (which groups keep history, and its replay),
:mod:`~.publishing` (from the loop, a thread or no loop) and
:mod:`~.broadcaster`. Nothing here imports the WebSocket.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import PHASE2_CONFIG
from pyramid.exceptions import ConfigurationError

from pyramid_asgi_ws.broadcast.backend import BroadcastError
from pyramid_asgi_ws.broadcast.broadcaster import PUBLISH_TIMEOUT, Broadcaster
from pyramid_asgi_ws.broadcast.history import HistoryPolicy
from pyramid_asgi_ws.broadcast.member import CONNECTION_ID_KEY
from pyramid_asgi_ws.interfaces import IASGISettings, IBroadcaster
from pyramid_asgi_ws.txn import after_commit


def get_broadcaster(registry: Any) -> Broadcaster:
    """Return the application's :class:`Broadcaster`.

    Use it where there is no WebSocket at hand: in an
    :class:`~pyramid_asgi_ws.events.ApplicationStartup` subscriber or a
    background task, ``await get_broadcaster(registry).publish(group,
    message)``.
    """
    broadcaster = registry.queryUtility(IBroadcaster)
    if broadcaster is None:
        raise RuntimeError(
            "no broadcaster: call config.include('pyramid_asgi_ws') and "
            'commit the configuration first'
        )
    return broadcaster


def broadcast(request: Any, group: str, message: Any) -> None:
    """Publish ``message`` to ``group`` from a synchronous view.

    This function is added as the request method ``request.broadcast`` by
    ``config.include('pyramid_asgi_ws')``. It is thread-safe and returns
    once the backend has the message; it raises :class:`BroadcastError`
    when the backend fails or the broadcaster is closed. While a
    transaction is in progress (``pyramid_tm``'s ``request.tm`` or
    ``transaction.manager``), the message goes out once it commits and
    never if it aborts (:func:`pyramid_asgi_ws.txn.after_commit`): the
    group, the message and a closed broadcaster are still checked here,
    in the view, and only the publish (and its wait of up to
    ``publish_timeout`` seconds) comes after the commit, where a failure
    is logged.
    """
    broadcaster = get_broadcaster(request.registry)
    payload = broadcaster.prepare(group, message)
    publish = broadcaster.publish_payload_threadsafe
    after_commit(request, publish, group, payload)


def includeme(config: Any) -> None:
    """Register the :class:`Broadcaster` and ``request.broadcast``.

    The backend is chosen by the ``asgi_ws.broadcast_url`` setting, read
    (and its options checked) in a deferred action once the settings are
    parsed, with the group history settings (``asgi_ws.history_size``,
    ``asgi_ws.history_ttl``, ``asgi_ws.history``): history on a backend
    that keeps none is a :class:`ConfigurationError`.
    """
    config.add_request_method(broadcast, 'broadcast')

    def register() -> None:
        registry = config.registry
        settings = registry.getUtility(IASGISettings)
        broadcaster = Broadcaster(settings['broadcast_url'])
        broadcaster.publish_timeout = settings['publish_timeout']
        broadcaster.history = history = HistoryPolicy.from_settings(settings)
        if history.enabled and not broadcaster.factory.supports_history:
            raise ConfigurationError(
                f'group history is set, but the broadcast backend of '
                f'{broadcaster.url!r} keeps none'
            )
        registry.registerUtility(broadcaster, IBroadcaster)

    config.action(('asgi_ws broadcaster',), register, order=PHASE2_CONFIG)


__all__ = [
    'CONNECTION_ID_KEY',
    'PUBLISH_TIMEOUT',
    'BroadcastError',
    'Broadcaster',
    'broadcast',
    'get_broadcaster',
    'includeme',
]
