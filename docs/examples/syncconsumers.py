"""A SyncWebSocketConsumer saving notes with SQLAlchemy and pyramid_tm."""

from pyramid.config import Configurator
from sqlalchemy import Column, Integer, String, create_engine
from sqlalchemy.orm import declarative_base, sessionmaker
import zope.sqlalchemy

from pyramid_asgi_ws import SyncWebSocketConsumer, websocket_consumer

Base = declarative_base()


class Note(Base):
    __tablename__ = 'notes'
    id = Column(Integer, primary_key=True)
    text = Column(String, nullable=False)


@websocket_consumer('/notes')
class Notes(SyncWebSocketConsumer):
    encoding = 'json'

    def on_connect(self, ws):
        ws.accept()
        ws.join('notes')

    def on_receive(self, ws, data):
        note = Note(text=data['text'])  # no 'text': rolled back, 1011
        ws.request.dbsession.add(note)
        ws.request.dbsession.flush()
        # goes out once the transaction has committed
        ws.broadcast('notes', {'id': note.id, 'text': note.text})


def make_app(url='sqlite:///notes.sqlite'):
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    session_factory = sessionmaker(bind=engine)

    def dbsession(request):
        session = session_factory()
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    config = Configurator(
        settings={'tm.manager_hook': 'pyramid_tm.explicit_manager'}
    )
    config.include('pyramid_tm')
    config.include('pyramid_asgi_ws')
    config.add_request_method(dbsession, reify=True)
    config.scan()
    return config.make_asgi_app()
