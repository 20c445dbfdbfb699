"""A chat room served by Pyramid and ``pyramid_asgi_ws``."""

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.session import SignedCookieSessionFactory


def main(global_config, **settings):
    """Return the Pyramid WSGI application; the ASGI runner wraps it."""
    secret = settings.get('chat.secret')
    if not secret:
        raise ConfigurationError('set chat.secret to sign session cookies')
    with Configurator(settings=settings) as config:
        # Both are usually listed in pyramid.includes; including twice is
        # harmless and lets main() work with bare settings too.
        config.include('pyramid_asgi_ws')
        config.include('pyramid_jinja2')
        config.set_session_factory(
            SignedCookieSessionFactory(
                secret, cookie_name='chat', httponly=True, samesite='Lax'
            )
        )
        config.set_default_csrf_options(require_csrf=True)
        config.include('.routes')
        config.scan()
    return config.make_wsgi_app()
