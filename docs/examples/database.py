"""An async consumer reading the database through ``ws.run_sync``.

The models and ``request.dbsession`` are those of ``examples/notes``
(the cookiecutter's ``models`` package).
"""

from notes.models import Base, Note
from pyramid.config import Configurator
from sqlalchemy import func, select


def count_notes(request):
    """Runs in the thread pool. No transaction wraps ``ws.run_sync``, and
    the explicit manager begins none by itself: begin one."""
    with request.tm:
        return request.dbsession.scalar(select(func.count(Note.id)))


async def note_count(ws):
    await ws.accept()
    async for _ in ws.iter_text():
        count = await ws.run_sync(count_notes, ws.request)
        await ws.send_json({'notes': count})


def make_app(url='sqlite:///notes.sqlite'):
    config = Configurator(settings={'sqlalchemy.url': url})
    config.include('pyramid_asgi_ws')
    config.include('notes.models')  # pyramid_tm and request.dbsession
    config.add_asgi_consumer('/count', note_count)
    engine = config.registry['dbsession_factory'].kw['bind']
    Base.metadata.create_all(engine)
    return config.make_asgi_app()
