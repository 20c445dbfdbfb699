"""``async def`` views: Pyramid's pipeline around a view that awaits.

``config.include('pyramid_asgi_ws')`` adds the view deriver
:func:`awaited_view` just above Pyramid's ``mapped_view``: when the view
callable is an ``async def`` function (or a view class whose ``attr``
method or ``__call__`` is one), what it returns is awaited there, so
that everything above it in the pipeline (the renderer, ``decorator=``,
the security check, exception views, tweens such as ``pyramid_tm``) sees
the coroutine's result as it would see a synchronous view's return.

Where the coroutine runs depends on the server:

- under :func:`~pyramid_asgi_ws.config.make_asgi_app` the bridge runs
  Pyramid's router in a greenlet of its pool thread
  (:meth:`~pyramid_asgi_ws.wsgi.pool.Pool.spawn`): the coroutine runs as
  a task on the event loop while the thread serves other requests, and
  the router resumes in the same thread once it is done;
- anywhere else (``make_wsgi_app()`` under waitress, WebTest) it runs to
  completion on a private event loop in the calling thread: correct, but
  slow, and it holds the thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import functools
import inspect
import sys
from typing import Any
import warnings

from pyramid.threadlocal import manager

from pyramid_asgi_ws.events import ApplicationShutdown
from pyramid_asgi_ws.wsgi.body import Body
from pyramid_asgi_ws.wsgi.suspend import (
    Cancelled,
    greenlet,
    suspend,
    suspendable,
)

__all__ = ['Cancelled', 'awaited_view', 'is_async_view', 'run_awaitable']

View = Callable[[Any, Any], Any]


def is_async_view(view: Any, attr: str | None = None) -> bool:
    """Whether calling the view callable ``view`` (with Pyramid's ``attr``
    option) returns a coroutine: an ``async def`` function, or a class or
    object whose ``attr`` method (default ``__call__``) is one."""
    if attr is None and not inspect.isclass(view):
        if inspect.iscoroutinefunction(view):
            return True
        view = type(view)
    return inspect.iscoroutinefunction(getattr(view, attr or '__call__', None))


def awaited_view(view: View, info: Any) -> View:
    """The view deriver awaiting what an ``async def`` view returns.

    A synchronous view is returned unchanged, so it costs nothing.
    """
    if not is_async_view(info.original_view, info.options.get('attr')):
        return view
    if greenlet is None:  # pragma: no cover - comes with the async extra
        warnings.warn(
            f'async view {info.original_view!r}: without greenlet (the '
            'pyramid_asgi_ws[async] extra) it holds its pool thread while '
            'it awaits',
            stacklevel=2,
        )

    def awaiting_view(context: Any, request: Any) -> Any:
        result = view(context, request)
        if inspect.isawaitable(result):
            result = run_awaitable(result, request)
        return result

    return awaiting_view


def run_awaitable(awaitable: Awaitable[Any], request: Any) -> Any:
    """Return what ``awaitable`` (an async view's coroutine, for
    ``request``) gives: suspended on the bridge's event loop under the
    ASGI app, on a private event loop anywhere else."""
    if not suspendable():
        return asyncio.run(_awaiting(awaitable))
    body = request.environ.get('wsgi.input')
    if type(body) is Body and body.more:
        # The coroutine runs on the event loop, where a read waiting for
        # the body's next message would wait for ever: read it here, in
        # the thread, as a synchronous view would.
        request.make_body_seekable()
    restore = _set_aside(request)
    try:
        return suspend(awaitable)
    finally:
        restore()


async def _awaiting(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _set_aside(request: Any) -> Callable[[], None]:
    """Set aside what Pyramid and ``transaction`` keep per thread for
    ``request`` (the threadlocal request and registry, the thread's
    ``transaction.manager``), so that other requests run in the thread
    meanwhile; return what puts it back."""
    stack = manager.stack
    manager.stack = []
    module = sys.modules.get('transaction')
    if module is None:
        return functools.partial(setattr, manager, 'stack', stack)
    threaded = module.manager
    own = threaded.manager
    threaded.manager = module.TransactionManager(explicit=own.explicit)
    if request.__dict__.get('tm') is threaded:
        # pyramid_tm's default request.tm is transaction.manager, which
        # the coroutine, on the loop's thread, would find empty: give it
        # the request's own manager.
        request.tm = own

    def restore() -> None:
        manager.stack = stack
        threaded.manager = own

    return restore


async def end_suspended_views(event: ApplicationShutdown) -> None:
    """Cancel the async views still awaiting when the server stops, and
    wait (at most ``asgi_ws.shutdown_timeout``) for their requests to end
    in their threads, so that their transactions are aborted and their
    finished callbacks run before the process exits."""
    app = event.app
    await app.wsgi.pool.drain(app.settings['shutdown_timeout'])


def includeme(config: Any) -> None:
    """Add the :func:`awaited_view` deriver and the shutdown subscriber
    :func:`end_suspended_views` (``config.include``'d by
    ``pyramid_asgi_ws``)."""
    config.add_view_deriver(
        awaited_view, under='rendered_view', over='mapped_view'
    )
    config.add_subscriber(end_suspended_views, ApplicationShutdown)
