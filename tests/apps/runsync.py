"""Async views handing blocking work to ``request.run_sync``: the
application of tests/apps/asyncviews.py (pyramid_tm's default,
thread-local manager over SQLAlchemy on a SQLite file) with views under
``/rs/``.

Served as ``tests.apps.runsync:app`` (``ASYNCVIEWS_PATH`` is the
database file, ``ASYNCVIEWS_THREADS`` the pool size, default 4);
:func:`make_config` gives the same configuration for ``make_wsgi_app()``.
``/rs/release?name=`` lets go of the call ``/rs/block?name=`` blocks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from pyramid.threadlocal import get_current_registry, get_current_request
from pyramid.view import view_config
import transaction

from tests.apps import asyncviews
from tests.apps.asyncviews import Note, record, thread_name

#: The names of the blocking calls ``/rs/release?name=`` let go of.
RELEASED: set[str] = set()
#: The tasks of the views that block, by name, for ``/rs/state``.
TASKS: dict[str, asyncio.Task[Any]] = {}


def in_request(request: Any) -> dict[str, Any]:
    """What a ``run_sync`` call sees of where it runs."""
    return {
        'current': get_current_request() is request,
        'registry': get_current_registry() is request.registry,
        'thread': thread_name(),
    }


def touch_session(view: Any) -> Any:
    """A ``decorator=`` making ``request.dbsession`` before the coroutine
    starts (in the pool thread, where ``request.tm`` is pyramid_tm's
    thread-local ``transaction.manager``), as a security policy loading
    its user would."""

    def decorated(context: Any, request: Any) -> Any:
        assert request.dbsession is not None
        return view(context, request)

    return decorated


@view_config(route_name='rs_save', renderer='json', decorator=touch_session)
async def save(request: Any) -> dict[str, Any]:
    """Add a note and count it in a ``run_sync`` call, then fail if
    asked: pyramid_tm commits the note with the request, or aborts it."""
    text = request.params['text']

    def insert() -> dict[str, Any]:
        request.dbsession.add(Note(text=text))
        query = request.dbsession.query(Note).filter_by(text=text)
        return {
            **in_request(request),
            'seen': query.count(),
            'joined': transaction.get() is request.tm.get(),
        }

    seen = await request.run_sync(insert)
    await asyncio.sleep(0.01)
    if request.params.get('fail'):
        raise asyncviews.Failed(text)
    return {
        **seen,
        'loop': thread_name(),
        'root': request.environ['threads']['root'],
    }


def blocks(name: str) -> str:
    """Block its thread, with ``time.sleep``, until ``/rs/release``
    names it (at most a minute)."""
    record(f'{name} blocks')
    for _ in range(6000):
        if name in RELEASED:
            break
        time.sleep(0.01)
    record(f'{name} released')
    return name


@view_config(route_name='rs_block', renderer='string')
async def block(request: Any) -> str:
    """A ``run_sync`` call that blocks until released; ``/rs/state``
    tells whether the view's task was cancelled meanwhile."""
    name = request.params['name']
    TASKS[name] = asyncio.current_task()  # type: ignore[assignment]
    request.add_finished_callback(lambda request: record(f'{name} finished'))
    try:
        return await request.run_sync(blocks, name)
    except asyncio.CancelledError:
        record(f'{name} cancelled')
        raise


@view_config(route_name='rs_state', renderer='json')
async def state(request: Any) -> dict[str, int]:
    """How many cancellations each blocking view's task has pending."""
    return {name: task.cancelling() for name, task in TASKS.items()}


@view_config(route_name='rs_release', renderer='string')
def release(request: Any) -> str:
    RELEASED.add(request.params['name'])
    return 'released'


@view_config(route_name='rs_raises', renderer='string')
async def raises(request: Any) -> str:
    """What a ``run_sync`` call raises is raised in the view."""

    def fail() -> None:
        raise LookupError('from run_sync')

    try:
        await request.run_sync(fail)
    except LookupError as exc:
        return f'caught {exc}'
    raise AssertionError('run_sync raised nothing')  # pragma: no cover


@view_config(route_name='rs_later', renderer='string')
async def later(request: Any) -> str:
    """A task of the view calling ``run_sync`` once the view returned is
    refused (``/rs/later`` answers at once; see ``/events``)."""

    async def too_late() -> None:
        await done
        try:
            await request.run_sync(in_request, request)
        except RuntimeError as exc:
            record(f'too late: {exc}')

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    TASKS['later'] = asyncio.ensure_future(too_late())
    request.add_finished_callback(
        lambda request: loop.call_soon_threadsafe(done.set_result, None)
    )
    return 'returned'


@view_config(route_name='rs_where', renderer='json')
async def where(request: Any) -> dict[str, Any]:
    """``in_request`` through ``run_sync``, from the view (for WebTest)."""
    return await request.run_sync(in_request, request)


def make_config(path: str, threads: int = 4, **settings: Any) -> Any:
    """tests/apps/asyncviews.py's configuration, with the ``/rs/`` views."""
    config = asyncviews.make_config(path, threads, **settings)
    for name in (
        'save', 'block', 'state', 'release', 'raises', 'later', 'where',
    ):  # fmt: skip
        config.add_route(f'rs_{name}', f'/rs/{name}')
    config.scan(sys.modules[__name__])
    return config


app = asyncviews.served(make_config)
