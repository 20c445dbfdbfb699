"""``initialize_notes_db development.ini``: create the tables and a user.

The tables come from the models' metadata (a project that migrates its
schema uses Alembic instead, as the cookiecutter does); the user, ``demo``
with the password ``demo`` unless told otherwise, is added if missing.
``name=value`` arguments override the ini's ``[DEFAULT]`` values, as on
the ``pserve`` command line.
"""

import argparse
import sys

from pyramid.paster import bootstrap, setup_logging
from sqlalchemy import select

from .. import models


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config_uri', help='the ini file')
    parser.add_argument('vars', nargs='*', help='name=value overrides')
    parser.add_argument('--user', default='demo')
    parser.add_argument('--password', default='demo')
    return parser.parse_args(argv[1:])


def setup_models(dbsession, name, password):
    """Add the user ``name`` unless there is one."""
    found = dbsession.scalars(
        select(models.User).where(models.User.name == name)
    ).first()
    if found is None:
        user = models.User(name=name)
        user.set_password(password)
        dbsession.add(user)


def main(argv=sys.argv):
    args = parse_args(argv)
    options = dict(var.split('=', 1) for var in args.vars)
    setup_logging(args.config_uri)
    with bootstrap(args.config_uri, options=options) as env:
        request = env['request']
        engine = request.registry['dbsession_factory'].kw['bind']
        models.Base.metadata.create_all(engine)
        with request.tm:
            setup_models(request.dbsession, args.user, args.password)
    print(f'{engine.url}: tables ready, user {args.user!r}')


if __name__ == '__main__':  # pragma: no cover
    main()
