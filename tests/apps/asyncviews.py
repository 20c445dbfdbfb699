"""Async views and their synchronous twins, with a security policy,
exception views and pyramid_tm over SQLAlchemy on a SQLite file.

Served as ``tests.apps.asyncviews:app`` (``ASYNCVIEWS_PATH`` is the
database file, ``ASYNCVIEWS_THREADS`` the pool size, default 4);
:func:`make_config` gives the same configuration for ``make_wsgi_app()``.

Every route ``/{kind}/...`` exists twice, ``kind`` being ``sync`` or
``async``, and both answer the same. A request is allowed ``view`` when
it names a user in ``X-User``. pyramid_tm uses its default, thread-local
manager (``transaction.manager``): async views must keep it apart per
request. ``/events`` lists what the finished callbacks and the slow view
recorded, as JSON.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.security import Allowed, Denied
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
    view_config,
    view_defaults,
)
from sqlalchemy import Column, Integer, String, create_engine
from sqlalchemy.orm import declarative_base, sessionmaker
import zope.sqlalchemy

Base = declarative_base()

#: What the finished callbacks and the slow view recorded.
EVENTS: list[str] = []


def record(event: str) -> None:
    """Add ``event`` to :data:`EVENTS`, and to the server's log."""
    EVENTS.append(event)
    print(event, file=sys.stderr, flush=True)


class Note(Base):  # type: ignore[misc, valid-type]
    __tablename__ = 'notes'
    id = Column(Integer, primary_key=True)
    text = Column(String, nullable=False)


class Failed(Exception):
    """What the failing views raise."""


#: Set per request by the root factory from ``X-Request-Id``, as a
#: logging library's context would be.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar('REQUEST_ID')


def thread_name() -> str:
    return threading.current_thread().name


class HeaderPolicy:
    """The user is the ``X-User`` header; any user may ``view``. It notes
    in ``request.environ['threads']`` where it ran."""

    def identity(self, request: Any) -> str | None:
        request.environ.setdefault('threads', {})['policy'] = thread_name()
        return request.headers.get('X-User')

    def authenticated_userid(self, request: Any) -> str | None:
        return self.identity(request)

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        if self.identity(request):
            return Allowed('a user')
        return Denied('nobody')

    def remember(self, request: Any, userid: Any, **kw: Any) -> list[Any]:
        return []

    def forget(self, request: Any, **kw: Any) -> list[Any]:
        return []


def answer(request: Any) -> dict[str, Any]:
    request.response.headers['X-Answer'] = 'yes'
    request.add_finished_callback(
        lambda request: record(f'finished {request.path}')
    )
    return {
        'user': request.authenticated_userid,
        'name': request.matchdict.get('name'),
        'route': request.matched_route.name.split('_', 1)[1],
    }


def save(request: Any) -> None:
    request.dbsession.add(Note(text=request.params['text']))


# -- the twins ----------------------------------------------------------


@view_config(route_name='sync_hello', renderer='json', permission='view')
def sync_hello(request: Any) -> dict[str, Any]:
    return answer(request)


@view_config(route_name='async_hello', renderer='json', permission='view')
async def async_hello(request: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    return answer(request)


@view_config(route_name='sync_save', renderer='json', permission='view')
def sync_save(request: Any) -> dict[str, Any]:
    save(request)
    if request.params.get('fail'):
        raise Failed(request.params['text'])
    return answer(request)


@view_config(route_name='async_save', renderer='json', permission='view')
async def async_save(request: Any) -> dict[str, Any]:
    save(request)
    await asyncio.sleep(0.01)
    if request.params.get('fail'):
        raise Failed(request.params['text'])
    return answer(request)


@view_config(route_name='sync_missing')
def sync_missing(request: Any) -> Any:
    raise HTTPNotFound()


@view_config(route_name='async_missing')
async def async_missing(request: Any) -> Any:
    await asyncio.sleep(0)
    raise HTTPNotFound()


@view_config(route_name='sync_moved')
def sync_moved(request: Any) -> Any:
    return HTTPFound(location='/elsewhere')


@view_config(route_name='async_moved')
async def async_moved(request: Any) -> Any:
    await asyncio.sleep(0)
    return HTTPFound(location='/elsewhere')


@view_config(route_name='sync_echo', renderer='json', request_method='POST')
def sync_echo(request: Any) -> Any:
    return {'size': len(request.body), 'json': request.json_body['n']}


@view_config(route_name='async_echo', renderer='json', request_method='POST')
async def async_echo(request: Any) -> Any:
    await asyncio.sleep(0)
    return {'size': len(request.body), 'json': request.json_body['n']}


@view_config(route_name='sync_created')
def sync_created(request: Any) -> Any:
    request.response.status = 201
    request.response.text = 'created'
    return request.response


@view_config(route_name='async_created')
async def async_created(request: Any) -> Any:
    await asyncio.sleep(0)
    request.response.status = 201
    request.response.text = 'created'
    return request.response


@view_defaults(route_name='sync_klass', renderer='string')
class SyncKlass:
    def __init__(self, request: Any) -> None:
        self.request = request

    @view_config(request_param='attr')
    def method(self) -> str:
        return 'method'

    @view_config()
    def __call__(self) -> str:
        return 'call'


@view_defaults(route_name='async_klass', renderer='string')
class AsyncKlass:
    def __init__(self, request: Any) -> None:
        self.request = request

    @view_config(request_param='attr')
    async def method(self) -> str:
        await asyncio.sleep(0)
        return 'method'

    @view_config()
    async def __call__(self) -> str:
        await asyncio.sleep(0)
        return 'call'


@view_config(route_name='sync_traced', renderer='string')
def sync_traced(request: Any) -> str:
    return REQUEST_ID.get('unset')


@view_config(route_name='async_traced', renderer='string')
async def async_traced(request: Any) -> str:
    await asyncio.sleep(0)
    return REQUEST_ID.get('unset')


@view_config(route_name='sync_cancels')
def sync_cancels(request: Any) -> Any:
    raise asyncio.CancelledError('by the view itself')


@view_config(route_name='async_cancels')
async def async_cancels(request: Any) -> Any:
    await asyncio.sleep(0)
    raise asyncio.CancelledError('by the view itself')


@view_config(route_name='sync_exits')
def sync_exits(request: Any) -> Any:
    raise SystemExit('by the view itself')


@view_config(route_name='async_exits')
async def async_exits(request: Any) -> Any:
    await asyncio.sleep(0)
    raise SystemExit('by the view itself')


# -- async-only ---------------------------------------------------------


@view_config(route_name='sleep', renderer='string')
async def sleep(request: Any) -> str:
    await asyncio.sleep(float(request.params.get('s', 1)))
    return 'slept'


@view_config(route_name='slow', renderer='string')
async def slow(request: Any) -> str:
    """Save a note, say so, and wait for 30 s (the client leaves)."""
    save(request)
    request.add_finished_callback(
        lambda request: record(
            f'finished slow {type(request.exception).__name__}'
        )
    )
    record('slow waits')
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record('slow cancelled')
        raise
    return 'done'


@view_config(route_name='where', renderer='json', permission='view')
async def where(request: Any) -> dict[str, str]:
    """Where each part ran: the root factory and the policy (in the
    pool), the coroutine (on the loop), the renderer's input."""
    threads = request.environ['threads']
    threads['view'] = thread_name()
    request.add_finished_callback(
        lambda request: record(f'where finished in {thread_name()}')
    )
    await asyncio.sleep(0)
    threads['after await'] = thread_name()
    return threads


class Root:
    def __init__(self, request: Any) -> None:
        request.environ.setdefault('threads', {})['root'] = thread_name()
        REQUEST_ID.set(request.headers.get('X-Request-Id', 'none'))


@view_config(route_name='events', renderer='json')
def events(request: Any) -> list[str]:
    return EVENTS


@view_config(route_name='hello', renderer='string')
def hello(request: Any) -> str:
    return 'Hello, world!'


@view_config(route_name='async_hi', renderer='string')
async def async_hi(request: Any) -> str:
    return 'Hello, world!'


# -- exception views ----------------------------------------------------


@exception_view_config(Failed, renderer='json')
async def failed(exc: Failed, request: Any) -> dict[str, str]:
    await asyncio.sleep(0)
    request.response.status = 500
    return {'error': str(exc)}


@forbidden_view_config(renderer='json')
def forbidden(request: Any) -> dict[str, bool]:
    request.response.status = 403
    return {'denied': True}


@notfound_view_config(renderer='json')
async def notfound(request: Any) -> dict[str, str]:
    await asyncio.sleep(0)
    request.response.status = 404
    return {'missing': request.path.split('/', 2)[-1]}


def make_config(path: str, threads: int = 4, **settings: Any) -> Any:
    """The application's configuration, on the database file ``path``."""
    engine = create_engine(f'sqlite:///{path}')
    Base.metadata.create_all(engine)
    factory = sessionmaker(bind=engine)
    config = Configurator(
        settings={
            'asgi_ws.threads': str(threads),
            'asgi_ws.max_body_size': '1000000',
            **settings,
        }
    )
    config.include('pyramid_tm')
    config.include('pyramid_asgi_ws')
    config.set_security_policy(HeaderPolicy())

    def dbsession(request: Any) -> Any:
        session = factory(info={'request': request})
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    config.add_request_method(dbsession, reify=True)
    for kind in ('sync', 'async'):
        config.add_route(f'{kind}_hello', f'/{kind}/hello/{{name}}')
        for name in (
            'save', 'missing', 'moved', 'echo', 'created', 'klass', 'traced',
            'cancels', 'exits',
        ):  # fmt: skip
            config.add_route(f'{kind}_{name}', f'/{kind}/{name}')
    config.set_root_factory(Root)
    for name in ('sleep', 'slow', 'events', 'hello', 'async_hi', 'where'):
        config.add_route(name, f'/{name}')
    config.scan(sys.modules[__name__])
    return config


def served(make: Any) -> Any:
    """The ASGI app of the configuration ``make`` (a :func:`make_config`)
    gives on ``ASYNCVIEWS_PATH`` with ``ASYNCVIEWS_THREADS`` threads."""
    return make(
        os.environ.get('ASYNCVIEWS_PATH', ':memory:'),
        int(os.environ.get('ASYNCVIEWS_THREADS', '4')),
    ).make_asgi_app()


app = served(make_config)


def main(global_config: Any, **settings: Any) -> Any:
    """The paste app factory (for ``proutes``/``pviews``): the ASGI app on
    the database file ``settings['path']``."""
    return make_config(settings.pop('path'), **settings).make_asgi_app()
