"""A database application: pyramid_tm, SQLAlchemy, zope.sqlalchemy.

Served as ``tests.apps.syncdb:app``, in the cookiecutter's layout:
``request.dbsession`` joins ``request.tm`` (an explicit manager), the
notes live in the SQLite file ``SYNCDB_PATH`` and the pool has
``SYNCDB_THREADS`` threads (default 4).

``/notes`` is a :class:`~pyramid_asgi_ws.SyncWebSocketConsumer` taking
JSON commands: ``{"op": "save", "text": ...}`` saves a note, publishes it
to the group ``notes`` and answers ``{"saved": id}``; ``"fail"`` saves
and publishes one, then raises; ``"count"`` answers ``{"count": n}``.
``/listen/{group}`` joins the group and says ``joined``; ``/echo``
answers each text message with itself. ``GET /publish?text=...`` saves a
note and broadcasts it; with ``&fail=1`` it raises afterwards, inside
pyramid_tm's transaction; ``/now?text=...`` broadcasts and raises outside
any transaction (``tm.activate_hook`` leaves it out).
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response
from sqlalchemy import Column, Integer, String, create_engine, select
from sqlalchemy.orm import declarative_base, sessionmaker
import zope.sqlalchemy

from pyramid_asgi_ws import SyncWebSocketConsumer
from pyramid_asgi_ws.syncconsumer import SyncWebSocket

Base = declarative_base()


class Note(Base):  # type: ignore[misc, valid-type]
    __tablename__ = 'notes'
    id = Column(Integer, primary_key=True)
    text = Column(String, nullable=False)


class Failed(Exception):
    """What the failing handlers raise."""


def save(request: Any, text: str) -> Note:
    note = Note(text=text)
    request.dbsession.add(note)
    request.dbsession.flush()
    return note


class Notes(SyncWebSocketConsumer):
    encoding = 'json'

    def on_receive(self, ws: SyncWebSocket, data: Any) -> None:
        op = data['op']
        if op == 'count':
            found = ws.request.dbsession.scalars(select(Note)).all()
            ws.send_json({'count': len(found)})
            return
        note = save(ws.request, data['text'])
        ws.broadcast('notes', data['text'])
        if op == 'fail':
            raise Failed(data['text'])
        ws.send_json({'saved': note.id})


class Listen(SyncWebSocketConsumer):
    def on_connect(self, ws: SyncWebSocket) -> None:
        ws.accept()
        ws.join(ws.matchdict['group'])
        ws.send_text('joined')


class Echo(SyncWebSocketConsumer):
    def on_receive(self, ws: SyncWebSocket, data: Any) -> None:
        ws.send_text(data)


def publish(request: Any) -> Response:
    text = request.params['text']
    save(request, text)
    request.broadcast('notes', text)
    if request.params.get('fail'):
        raise Failed(text)
    return Response('published')


def now(request: Any) -> Response:
    request.broadcast('notes', request.params['text'])
    raise Failed('no transaction to abort')


def outside_now(request: Any) -> bool:
    """pyramid_tm's ``tm.activate_hook``: no transaction for ``/now``."""
    return request.path_info != '/now'


def make_app(path: str, threads: int) -> Any:
    engine = create_engine(f'sqlite:///{path}')
    Base.metadata.create_all(engine)
    factory = sessionmaker(bind=engine)
    config = Configurator(
        settings={
            'asgi_ws.threads': str(threads),
            'tm.manager_hook': 'pyramid_tm.explicit_manager',
            'tm.activate_hook': outside_now,
        }
    )
    config.include('pyramid_tm')
    config.include('pyramid_asgi_ws')

    def dbsession(request: Any) -> Any:
        session = factory(info={'request': request})
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    config.add_request_method(dbsession, reify=True)
    for view in (publish, now):
        config.add_route(view.__name__, f'/{view.__name__}')
        config.add_view(view, route_name=view.__name__)
    config.add_asgi_consumer('/notes', Notes)
    config.add_asgi_consumer('/listen/{group}', Listen)
    config.add_asgi_consumer('/echo', Echo)
    return config.make_asgi_app()


app = make_app(
    os.environ.get('SYNCDB_PATH', ':memory:'),
    int(os.environ.get('SYNCDB_THREADS', '4')),
)
