"""What the test applications share: security, views and consumers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.authorization import ACLHelper, Allow, Authenticated
from pyramid.config import Configurator
from pyramid.response import Response


class SessionSecurityPolicy:
    """Who is logged in comes from the Pyramid session."""

    def identity(self, request):
        return request.session.get('user')

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        principals = ['system.Everyone']
        if self.identity(request) is not None:
            principals += [Authenticated, 'user:' + self.identity(request)]
        return ACLHelper().permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        request.session['user'] = userid
        return []

    def forget(self, request, **kw):
        request.session.pop('user', None)
        return []


class Root:
    __acl__ = [(Allow, Authenticated, 'chat'), (Allow, 'user:admin', 'admin')]

    def __init__(self, request):
        self.request = request


def add_page(
    config: Configurator,
    name: str,
    pattern: str,
    view: Callable[..., Any],
    **view_options: Any,
) -> None:
    """Serve ``view`` at ``pattern`` under a route called ``name``."""
    config.add_route(name, pattern)
    config.add_view(view, route_name=name, **view_options)


def add_echoes(
    config: Configurator,
    echo_json: Callable[..., Any],
    echo_text: Callable[..., Any] | None = None,
) -> None:
    """The echo consumers every server test app has, at ``/ws/...``.

    ``echo_text`` replaces :func:`echo` at ``/ws/echo``.
    """
    config.add_asgi_consumer('/ws/echo', echo_text or echo, name='echo')
    config.add_asgi_consumer('/ws/bytes', echo_bytes)
    config.add_asgi_consumer('/ws/json', echo_json)


# -- views -----------------------------------------------------------------


def hello(request):
    return Response('Hello')


def login(request):
    request.session['user'] = request.params['user']
    return Response('logged in')


# -- WebSocket consumers ---------------------------------------------------


async def echo(ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


async def echo_bytes(ws):
    await ws.accept()
    async for data in ws.iter_bytes():
        await ws.send_bytes(data)


async def protected(ws):
    await ws.accept()
    await ws.send_text(f'hello {ws.request.authenticated_userid}')


async def crash_before_accept(ws):
    raise ValueError('secret internal detail')


async def crash_after_accept(ws):
    await ws.accept()
    await ws.receive_text()
    raise ValueError('secret internal detail')


# -- raw ASGI consumers ----------------------------------------------------


async def respond(send, body: str, content_type: str) -> None:
    """Answer a raw HTTP consumer's request with 200 and ``body``."""
    await send(
        {
            'type': 'http.response.start',
            'status': 200,
            'headers': [(b'content-type', content_type.encode())],
        }
    )
    await send({'type': 'http.response.body', 'body': body.encode()})
