"""The models and the ``request.dbsession`` that reaches them.

As in ``pyramid-cookiecutter-starter``'s SQLAlchemy backend: one engine
and session factory per application, and a session per request joined to
the request's transaction manager (``request.tm``), so that ``pyramid_tm``
commits or aborts it. A WebSocket's request lives as long as its socket:
its session is the same for every call of the consumer, each call in a
transaction of its own.
"""

from sqlalchemy import engine_from_config
from sqlalchemy.orm import configure_mappers, sessionmaker
import zope.sqlalchemy

from .meta import Base
from .note import MAX_TEXT, Note
from .user import User

# Check the relationships now, not at the first query.
configure_mappers()


def get_engine(settings, prefix='sqlalchemy.'):
    return engine_from_config(settings, prefix)


def get_session_factory(engine):
    return sessionmaker(bind=engine)


def get_tm_session(session_factory, transaction_manager, request=None):
    """Return a session joined to ``transaction_manager``'s transactions.

    Outside a request (a script, say)::

        import transaction

        with transaction.manager:
            dbsession = get_tm_session(session_factory, transaction.manager)
            dbsession.add(User(name='ada'))
    """
    dbsession = session_factory(info={'request': request})
    zope.sqlalchemy.register(
        dbsession, transaction_manager=transaction_manager
    )
    return dbsession


def includeme(config):
    """Add ``pyramid_tm`` and ``request.dbsession``.

    Activate this setup with ``config.include('notes.models')``.
    """
    settings = config.get_settings()
    settings['tm.manager_hook'] = 'pyramid_tm.explicit_manager'
    config.include('pyramid_tm')

    session_factory = get_session_factory(get_engine(settings))
    config.registry['dbsession_factory'] = session_factory

    def dbsession(request):
        # a script (see scripts/) may hand its own session in
        dbsession = request.environ.get('app.dbsession')
        if dbsession is None:
            dbsession = get_tm_session(
                session_factory, request.tm, request=request
            )
        return dbsession

    config.add_request_method(dbsession, reify=True)


__all__ = [
    'Base',
    'MAX_TEXT',
    'Note',
    'User',
    'get_engine',
    'get_tm_session',
]
