"""Shared notes: Pyramid, SQLAlchemy and ``pyramid_asgi_ws``."""

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.session import SignedCookieSessionFactory


def main(global_config, **settings):
    """Return the Pyramid WSGI application; the ASGI runner wraps it."""
    secret = settings.get('notes.secret')
    if not secret:
        raise ConfigurationError('set notes.secret to sign session cookies')
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.include('pyramid_jinja2')
        config.set_session_factory(
            SignedCookieSessionFactory(
                secret, cookie_name='notes', httponly=True, samesite='Lax'
            )
        )
        config.set_default_csrf_options(require_csrf=True)
        config.include('.models')
        config.include('.security')
        config.include('.routes')
        config.scan()
    return config.make_wsgi_app()
