"""Pyramid's per-request events are skipped while only the add-on's
lifespan events have subscribers
(:func:`pyramid_asgi_ws.events.quiet_listeners`)."""

import asyncio

from pyramid.config import Configurator
from pyramid.events import NewRequest
from pyramid.response import Response
from webtest import TestApp
from zope.interface import Interface

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
