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
  completion on a private event loop in the calling thread (in a helper
  thread when the caller runs an event loop already): correct, but slow,
  and it holds the thread.

Inside the coroutine, ``await request.run_sync(fn)`` (:func:`run_sync`)
runs blocking code back in the request's thread, with the request's
thread-locals and transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
import contextlib
import contextvars
import inspect
import sys
import threading
from typing import Any, TypeVar
import warnings

from pyramid.threadlocal import manager

from pyramid_asgi_ws.events import ApplicationShutdown
from pyramid_asgi_ws.wsgi.body import Body
from pyramid_asgi_ws.wsgi.pool import Home, shielded
from pyramid_asgi_ws.wsgi.suspend import (
    Cancelled,
    greenlet,
    suspend,
    suspendable,
)

__all__ = [
    'Cancelled',
    'awaited_view',
    'is_async_view',
    'run_awaitable',
    'run_sync',
]

View = Callable[[Any, Any], Any]
T = TypeVar('T')


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
        return _run_privately(awaitable, request, Held())
    body = request.environ.get('wsgi.input')
    if type(body) is Body and body.more:
        # The coroutine runs on the event loop, where a read waiting for
        # the body's next message would wait for ever: read it here, in
        # the thread, as a synchronous view would.
        request.make_body_seekable()
    held = Held(Home())
    held.set_aside(request)
    request.__dict__[HELD] = held
    try:
        return suspend(awaitable)
    finally:
        del request.__dict__[HELD]
        held.restore()


def _run_privately(awaitable: Awaitable[Any], request: Any, held: Held) -> Any:
    """The WSGI slow path: run ``awaitable`` on a private event loop in
    this thread or, when this thread runs an event loop already (an
    ``async def`` test calling WebTest), in a helper thread lent this
    thread's thread-locals and a copy of its context variables, while
    this one waits."""
    request.__dict__[HELD] = held
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaiting(awaitable))
    else:
        outcome: list[Any] = []
        helper = threading.Thread(
            target=contextvars.copy_context().run,
            args=(_run_lent, held, awaitable, outcome),
            name='asgi_ws-private-loop',
        )
        helper.start()
        helper.join()
        failed, result = outcome
        if failed:
            raise result
        return result
    finally:
        del request.__dict__[HELD]


def _run_lent(
    held: Held, awaitable: Awaitable[Any], outcome: list[Any]
) -> None:
    """Run ``awaitable`` to completion in a helper thread, under
    ``held``'s thread-locals; put whether it failed and its outcome in
    ``outcome``."""
    try:
        with held.lent():
            outcome[:] = False, asyncio.run(_awaiting(awaitable))
    except BaseException as exc:  # raised in the caller's thread
        outcome[:] = True, exc


async def _awaiting(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class Held:
    """What Pyramid and ``transaction`` keep per thread for a request
    (the threadlocal request and registry, the thread's
    ``transaction.manager``), taken from the thread it is made in, and
    the :class:`~pyramid_asgi_ws.wsgi.pool.Home` of that thread when the
    request's view is suspended there.

    While the view awaits, it is set aside, so that other requests run in
    the thread meanwhile; :func:`run_sync` lends it to the thread of each
    call, so that there the request is the current one and its
    transaction the thread's.
    """

    __slots__ = ('stack', 'threaded', 'manager', 'home')

    def __init__(self, home: Home | None = None) -> None:
        self.stack = manager.stack
        module = sys.modules.get('transaction')
        self.threaded: Any = None if module is None else module.manager
        self.manager: Any = None if module is None else module.manager.manager
        self.home = home

    def set_aside(self, request: Any) -> None:
        """Give the thread an empty stack and a fresh transaction
        manager, until :meth:`restore`."""
        manager.stack = []
        if self.threaded is None:
            return
        own = self.manager
        self.threaded.manager = type(own)(explicit=own.explicit)
        if request.__dict__.get('tm') is self.threaded:
            # pyramid_tm's default request.tm is transaction.manager, which
            # the coroutine, on the loop's thread, would find empty: give it
            # the request's own manager.
            request.tm = own

    def restore(self) -> None:
        """Put back what :meth:`set_aside` set aside."""
        manager.stack = self.stack
        if self.threaded is not None:
            self.threaded.manager = self.manager

    @contextlib.contextmanager
    def lent(self) -> Iterator[None]:
        """Make it the current thread's (a copy of the stack) inside."""
        stack = manager.stack
        manager.stack = list(self.stack)
        threaded = self.threaded
        own = None if threaded is None else threaded.manager
        if threaded is not None:
            threaded.manager = self.manager
        try:
            yield
        finally:
            manager.stack = stack
            if threaded is not None:
                threaded.manager = own


#: Where an async view's request keeps its :class:`Held` while the
#: coroutine runs.
HELD = 'pyramid_asgi_ws.held'


async def run_sync(
    request: Any, fn: Callable[..., T], /, *args: Any, **kwargs: Any
) -> T:
    """Return ``fn(*args, **kwargs)``, run in the request's own pool
    thread; ``await request.run_sync(fn, ...)`` in an ``async def`` view.

    For blocking code (a query through ``request.dbsession``, a
    synchronous check): the event loop keeps serving meanwhile, and no
    thread is held while the view awaits anything else. There
    ``get_current_request()`` is the request, its registry the current
    one, ``transaction.manager`` the request's (the one ``pyramid_tm``
    commits or aborts), and the caller's context variables are copied;
    what ``fn`` raises is raised here. A cancelled view waits for ``fn``
    to end before the cancellation goes on (see
    :func:`~pyramid_asgi_ws.wsgi.pool.shielded`): what runs next, the
    request's finished callbacks included, never runs beside it.

    Under a WSGI server (``make_wsgi_app()``, WebTest), where the
    coroutine runs on a private loop in the request's thread, ``fn`` is
    called there, in place.
    """
    held = request.__dict__.get(HELD)
    if held is None:
        raise RuntimeError(
            'request.run_sync() is for the coroutine of an async view, '
            'while it runs (a WebSocket or an event stream has its own '
            'run_sync)'
        )
    if held.home is None:  # the private loop runs in the request's thread
        return fn(*args, **kwargs)
    call = held.home.call(_call_lent, held, fn, args, kwargs)
    result: T = await shielded(call, fn)
    return result


def _call_lent(
    held: Held,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Call ``fn`` in its pool thread, under ``held``'s thread-locals."""
    with held.lent():
        return fn(*args, **kwargs)


async def end_suspended_views(event: ApplicationShutdown) -> None:
    """Cancel the async views still awaiting when the server stops, and
    wait (at most ``asgi_ws.shutdown_timeout``) for their requests to end
    in their threads, so that their transactions are aborted and their
    finished callbacks run before the process exits."""
    app = event.app
    await app.wsgi.pool.drain(app.settings['shutdown_timeout'])


def includeme(config: Any) -> None:
    """Add the :func:`awaited_view` deriver, the shutdown subscriber
    :func:`end_suspended_views` and the request method
    :func:`run_sync` (``config.include``'d by ``pyramid_asgi_ws``)."""
    config.add_view_deriver(
        awaited_view, under='rendered_view', over='mapped_view'
    )
    config.add_subscriber(end_suspended_views, ApplicationShutdown)
    config.add_request_method(run_sync, 'run_sync')
