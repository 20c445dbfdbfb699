"""Pyramid's per-request events are skipped while only the add-on's
lifespan events have subscribers
(:func:`pyramid_asgi_ws.events.quiet_listeners`)."""

import asyncio

from pyramid.config import Configurator
from pyramid.events import BeforeRender, NewRequest
from pyramid.registry import Registry
from pyramid.response import Response
import pytest
from webtest import TestApp
from zope.interface import Interface, alsoProvides
from zope.interface.registry import Components

from pyramid_asgi_ws.events import (
    ApplicationShutdown,
    ApplicationStartup,
    IApplicationStartup,
    notify_async,
    quiet_listeners,
)


def hello(request):
    return Response('hello')


def make_config(**kw):
    config = Configurator(**kw)
    config.include('pyramid_asgi_ws')
    config.add_route('hello', '/')
    config.add_view(hello, route_name='hello')
    return config


def test_only_lifespan_subscribers_quiet_the_router():
    started = []

    async def on_startup(event):
        started.append(event)

    config = make_config()
    config.add_subscriber(on_startup, ApplicationStartup)
    config.add_subscriber(on_startup, IApplicationStartup)
    config.add_subscriber(lambda event: None, ApplicationShutdown)
    app = config.make_wsgi_app()
    assert app.registry.has_listeners is False
    assert TestApp(app).get('/').text == 'hello'
    # the lifespan events still reach their subscribers
    event = ApplicationStartup(None, app.registry)
    asyncio.run(notify_async(app.registry, event))
    assert started == [event, event]


def test_a_request_subscriber_keeps_them():
    seen = []
    config = make_config()
    config.add_subscriber(seen.append, NewRequest)
    app = config.make_wsgi_app()
    assert app.registry.has_listeners is True
    TestApp(app).get('/')
    assert len(seen) == 1


def test_a_subscriber_for_two_events_keeps_them():
    config = make_config()
    both = [ApplicationStartup, Interface]
    config.add_subscriber(lambda *events: None, both)
    assert config.make_wsgi_app().registry.has_listeners is True


def test_a_later_subscriber_sets_them_again():
    seen = []
    config = make_config()
    app = config.make_wsgi_app()
    assert app.registry.has_listeners is False
    app.registry.registerHandler(seen.append, (NewRequest,))
    TestApp(app).get('/')
    assert len(seen) == 1


def test_subscription_adapters_keep_them():
    config = make_config()
    registry = config.registry
    config.commit()
    registry.has_listeners = True
    registry.registerSubscriptionAdapter(
        lambda context: None, (Interface,), Interface
    )
    quiet_listeners(registry)
    assert registry.has_listeners is True


# -- no real subscriber is ever silenced -----------------------------------


class ILater(Interface):
    """An event a later include sends itself."""


def later_include(config):
    """An include listed after the add-on's (a toolbar, say)."""
    config.add_subscriber(config.registry.seen.append, NewRequest)


def test_a_subscriber_of_a_later_include_is_heard():
    config = Configurator(
        settings={'pyramid.includes': 'pyramid_asgi_ws\npyramid_tm'}
    )
    config.registry.seen = []
    config.include(later_include)
    config.add_view(hello, name='hello')
    app = config.make_wsgi_app()
    TestApp(app).get('/hello')
    assert len(app.registry.seen) == 1


def test_a_subscriber_of_a_later_commit_is_heard():
    seen = []
    config = make_config()
    app = config.make_wsgi_app()
    config.add_subscriber(seen.append, NewRequest)
    config.commit()
    TestApp(app).get('/')
    assert len(seen) == 1


def test_autocommit_subscriber_is_heard():
    seen = []
    config = make_config(autocommit=True)
    config.add_subscriber(seen.append, NewRequest)
    app = config.make_wsgi_app()
    TestApp(app).get('/')
    assert len(seen) == 1


def test_a_subscriber_of_every_event_is_heard():
    seen = []
    config = make_config()
    config.add_subscriber(seen.append, Interface)
    app = config.make_wsgi_app()
    seen.clear()
    TestApp(app).get('/')
    assert {type(event).__name__ for event in seen} >= {
        'NewRequest',
        'ContextFound',
        'NewResponse',
    }


def test_a_subscriber_with_a_predicate_is_heard():
    seen = []

    class Path:
        def __init__(self, value, config):
            self.value = value

        def text(self):
            return f'path = {self.value}'

        phash = text

        def __call__(self, event):
            return event.request.path == self.value

    config = make_config()
    config.add_subscriber_predicate('path', Path)
    config.add_subscriber(seen.append, NewRequest, path='/')
    app = config.make_wsgi_app()
    TestApp(app).get('/')
    assert len(seen) == 1


def test_a_before_render_subscriber_is_heard():
    seen = []
    config = make_config()
    config.add_view(lambda request: {}, name='page', renderer='json')
    config.add_subscriber(seen.append, BeforeRender)
    app = config.make_wsgi_app()
    TestApp(app).get('/page')
    assert len(seen) == 1


class MyStartup(ApplicationStartup):
    """An app's own event derived from the lifespan one, which it sends
    itself with registry.notify."""


class IMyStartup(IApplicationStartup):
    pass


@pytest.mark.parametrize('spec', [MyStartup, IMyStartup])
def test_a_subscriber_of_a_derived_event_is_heard(spec):
    seen = []
    config = make_config()
    config.add_subscriber(seen.append, spec)
    app = config.make_wsgi_app()
    event = MyStartup(None, app.registry)
    alsoProvides(event, IMyStartup)
    app.registry.notify(event)
    assert seen == [event]


def test_a_subscriber_of_a_base_registry_is_heard():
    seen = []
    base = Registry('base')
    base.registerHandler(seen.append, (NewRequest,))
    config = make_config(registry=Registry('app', bases=(base,)))
    config.setup_registry()
    app = config.make_wsgi_app()
    TestApp(app).get('/')
    assert len(seen) == 1


def test_a_registry_that_is_not_pyramids_is_left_alone():
    # Components.registerHandler does not set has_listeners again: a later
    # subscriber would never be heard
    registry = Components('plain')
    config = Configurator(registry=registry)
    config.setup_registry()
    config.include('pyramid_asgi_ws')
    config.commit()
    assert registry.has_listeners is True
