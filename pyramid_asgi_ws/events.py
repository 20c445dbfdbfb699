"""Events sent around the ASGI application's lifespan.

Subscribe with Pyramid's ``config.add_subscriber`` or ``@subscriber``;
unlike ordinary Pyramid subscribers these may be ``async def``: the
application awaits them in the server's event loop.

.. code-block:: python

    from pyramid.events import subscriber
    from pyramid_asgi_ws.events import ApplicationStartup

    @subscriber(ApplicationStartup)
    async def connect_db(event):
        event.registry.db = await create_pool()
"""

from __future__ import annotations

import inspect
from typing import Any

from pyramid.registry import Registry
from zope.interface import implementedBy, implementer, providedBy

from pyramid_asgi_ws.interfaces import (
    IApplicationShutdown,
    IApplicationStartup,
)

__all__ = [
    'ApplicationShutdown',
    'ApplicationStartup',
    'IApplicationShutdown',
    'IApplicationStartup',
    'notify_async',
]


class _LifespanEvent:
    """What both lifespan events carry: the app and its registry."""

    def __init__(self, app: Any, registry: Any) -> None:
        self.app = app
        self.registry = registry


@implementer(IApplicationStartup)
class ApplicationStartup(_LifespanEvent):
    """Sent once the server's event loop runs, before any request.

    A subscriber that raises makes startup fail: the server reports the
    error and exits instead of serving a half-started application. Under
    a server without lifespan (daphne), startup runs when the first
    request arrives, other requests wait for it, and a failure is logged
    and tried again by the next request.
    """


@implementer(IApplicationShutdown)
class ApplicationShutdown(_LifespanEvent):
    """Sent when the server stops, after open WebSockets were closed."""


async def notify_async(registry: Any, event: Any) -> None:
    """Call every subscriber of ``event``, awaiting coroutine ones."""
    for handler in registry.adapters.subscriptions([providedBy(event)], None):
        result = handler(event)
        if inspect.isawaitable(result):
            await result


#: What a subscriber of the lifespan events above is registered for.
LIFESPAN_SPECS = (
    IApplicationStartup,
    IApplicationShutdown,
    implementedBy(ApplicationStartup),
    implementedBy(ApplicationShutdown),
)


def quiet_listeners(registry: Any) -> None:
    """Let Pyramid's router skip its per-request events when the only
    subscribers are those of the lifespan events above.

    Any subscriber sets Pyramid's ``registry.has_listeners``, and then
    every request notifies ``NewRequest``, ``BeforeTraversal``,
    ``ContextFound`` and ``NewResponse`` (some 3 µs of the hello view's
    7 µs) although nobody listens; the lifespan events are sent by
    :func:`notify_async`, which does not read the flag.  A subscriber
    registered later sets it again.

    The flag stays on where a subscriber could be missed: one for an
    event derived from a lifespan one (which only ``registry.notify``
    sends), one in a base registry, or a registry that is not Pyramid's
    (whose ``registerHandler`` would not set the flag again).  While it
    is off, ``registry.notify`` of a lifespan event reaches nobody: send
    those with :func:`notify_async` (their subscribers may be
    ``async def`` anyway).
    """
    if not isinstance(registry, Registry) or registry.__bases__:
        return
    if any(registry.registeredSubscriptionAdapters()):
        return
    for registration in registry.registeredHandlers():
        required = registration.required
        if len(required) != 1 or required[0] not in LIFESPAN_SPECS:
            return
    registry.has_listeners = False
