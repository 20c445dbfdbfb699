"""A test application for server-sent events, served as ``tests.apps.sse:app``.

The environment picks the backend (``BROADCAST_URL``, default
``memory://``), the history each group keeps (``HISTORY_SIZE``, default
1000; none for ``live:*``) and the send queue (``SEND_QUEUE_SIZE``,
default 256); ``CHECK_ORIGIN=false`` turns the origin check off.
Consumers report to the server log (stdout), so that tests
can wait for what the app says rather than sleep:

- ``/events/echo`` sends multi-line text, JSON and a typed event with an
  id, then waits; it logs ``echo ended`` when it ends.
- ``/events/ticker`` sends ``tick n`` every 20 ms until a send raises
  :class:`~pyramid_asgi_ws.StreamClosed`, which it logs.
- ``/events/group/{group}`` joins the group (resuming from
  ``Last-Event-ID``), logs ``joined GROUP resumed=BOOL``, sends a
  ``reload`` event when the history did not reach back, then forwards the
  group's messages.
- ``/events/open`` is ``/events/echo`` open to every origin
  (``allowed_origins='*'``).
- ``/events/several?groups=a,b`` joins each group as ``group`` does
  (its events typed with the group's name; all at once with
  ``&together=1``), logs ``joined a,b resumed=[...]`` and ``left a,b``.
- ``/events/quiet`` sends nothing (heartbeats every 0.2 s).
- ``/events/secret`` needs permission ``secret`` (user ``alice`` in the
  ``X-User`` header has it).
- ``/events/boom`` raises after one event.
- ``/events/done`` sends one event and returns.
- ``POST /publish/{group}?start=S&count=N`` publishes ``S`` .. ``S+N-1``
  (each followed by ``pad`` spaces).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.security import Allowed, Denied

from pyramid_asgi_ws import EventStream, StreamClosed


def report(text: str) -> None:
    print(text, flush=True)


async def echo(stream: EventStream) -> None:
    try:
        await stream.send('one\ntwo\r\nthree\rfour', event='lines', id='e1')
        await stream.send({'json': [1, 'two'], 'text': 'é'})
        report(f'echo last_event_id={stream.last_event_id}')
        await stream.wait_closed()
    finally:
        report('echo ended')


async def ticker(stream: EventStream) -> None:
    number = 0
    try:
        while True:
            await stream.send(f'tick {number}')
            number += 1
            await asyncio.sleep(0.02)
    except (StreamClosed, asyncio.CancelledError) as exc:
        # StreamClosed from the send, or cancelled while it sleeps
        report(f'ticker ended with {type(exc).__name__}')
        raise


async def group(stream: EventStream) -> None:
    name = stream.matchdict['group']
    resumed = await stream.join(name)
    report(f'joined {name} resumed={resumed} in {os.getpid()}')
    if not resumed:
        await stream.send('history gone', event='reload')
    try:
        await stream.wait_closed()
    finally:
        report(f'left {name}')


async def several(stream: EventStream) -> None:
    names = stream.request.params['groups']
    joins = [stream.join(name, event=name) for name in names.split(',')]
    if 'together' in stream.request.params:  # joined at once
        resumed = list(await asyncio.gather(*joins))
    else:
        resumed = [await join for join in joins]
    report(f'joined {names} resumed={resumed}')
    try:
        await stream.wait_closed()
    finally:
        report(f'left {names}')


async def quiet(stream: EventStream) -> None:
    report('quiet started')
    await stream.wait_closed()


async def secret(stream: EventStream) -> None:
    await stream.send(f'hello {stream.request.authenticated_userid}')
    await stream.wait_closed()


async def boom(stream: EventStream) -> None:
    await stream.send('before')
    raise RuntimeError('boom in an event stream')


async def done(stream: EventStream) -> None:
    await stream.send('last')


def publish(request: Any) -> Response:
    start = int(request.params.get('start', 0))
    count = int(request.params.get('count', 1))
    pad = ' ' * int(request.params.get('pad', 0))
    for number in range(start, start + count):
        request.broadcast(request.matchdict['group'], f'{number}{pad}')
    return Response('published')


class HeaderPolicy:
    """The user is the ``X-User`` header; only alice may see secrets."""

    def identity(self, request: Any) -> Any:
        return request.headers.get('X-User')

    def authenticated_userid(self, request: Any) -> Any:
        return self.identity(request)

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        if self.identity(request) == 'alice':
            return Allowed('alice may')
        return Denied('only alice')

    def remember(self, request: Any, userid: Any, **kw: Any) -> list:
        return []

    def forget(self, request: Any, **kw: Any) -> list:
        return []


def make_app(global_config: Any = None, **settings: Any) -> Any:
    """The application, for ``pserve`` (``use = call:...``) or direct."""
    settings.setdefault(
        'asgi_ws.broadcast_url', os.environ.get('BROADCAST_URL', 'memory://')
    )
    settings.setdefault(
        'asgi_ws.history_size', os.environ.get('HISTORY_SIZE', '1000')
    )
    settings.setdefault('asgi_ws.history', 'live:* off')
    settings.setdefault(
        'asgi_ws.send_queue_size', os.environ.get('SEND_QUEUE_SIZE', '256')
    )
    settings.setdefault(
        'asgi_ws.check_origin', os.environ.get('CHECK_ORIGIN', 'true')
    )
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.set_security_policy(HeaderPolicy())
        add = config.add_asgi_consumer
        add(
            '/events/echo',
            echo,
            protocol='sse',
            retry=2.5,
            allowed_origins='https://page.example',
        )
        add('/events/open', echo, protocol='sse', allowed_origins='*')
        add('/events/ticker', ticker, protocol='sse')
        add('/events/group/{group}', group, protocol='sse')
        add('/events/several', several, protocol='sse')
        add('/events/quiet', quiet, protocol='sse', heartbeat=0.2)
        add('/events/secret', secret, protocol='sse', permission='secret')
        add('/events/boom', boom, protocol='sse')
        add('/events/done', done, protocol='sse')
        config.add_route('publish', '/publish/{group}')
        config.add_view(publish, route_name='publish', request_method='POST')
    return config.make_asgi_app()


app = make_app()
