"""A test application with its metrics at ``/metrics``.

Served as ``tests.apps.metrics:app``. The environment sets
``asgi_ws.metrics_allow`` (``METRICS_ALLOW``, default loopback) and
``asgi_ws.broadcast_url`` (``BROADCAST_URL``, default ``memory://``)
and, if ``THREADS`` is set, ``asgi_ws.threads``. An empty
``METRICS_PATH`` serves no endpoint: the app exports its metrics at
``GET /export`` (a Pyramid view), sampled every ``METRICS_INTERVAL``
seconds.

- ``/echo`` (consumer ``echo``) echoes text; ``close:<code>`` closes with
  that code.
- ``/room`` (``room``) joins the group ``room``, says ``joined``, then
  publishes each text it receives to ``room``.
- ``/tiny`` (``tiny``) has a send queue of one message, dropping the
  newest: it joins ``room``, says ``joined`` and only listens.
- ``/events`` (``events``) is an event stream: it sends ``hello``, then
  waits for the client to go. ``/events/tiny`` (``events_tiny``) queues
  one group message as ``/tiny`` does: it joins ``room``, prints
  ``events_tiny joined`` (to the server's log) and waits.
- ``GET /hello`` is a Pyramid view; ``GET /slow`` holds its thread until
  ``GET /release``, and ``GET /await`` (an ``async def`` view) awaits
  it; ``GET /busy`` says whether ``/slow`` is running,
  ``GET /pid`` which worker answers, ``GET /export`` the metrics (for
  an app exporting them itself). ``GET /unblock`` (an HTTP consumer,
  which needs no thread) releases ``/slow`` and ``/await`` too.
"""

from __future__ import annotations

import asyncio
import os
import threading

from prometheus_client import generate_latest
from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_asgi_ws import EventStream, WebSocket
from pyramid_asgi_ws.metrics import collectors, get_metrics

RELEASE = threading.Event()
RUNNING = threading.Event()


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        if text.startswith('close:'):
            await ws.close(int(text[len('close:') :]))
            return
        await ws.send_text(text)


async def room(ws: WebSocket) -> None:
    await ws.accept()
    await ws.join('room')
    await ws.send_text('joined')
    async for text in ws.iter_text():
        for _ in range(int(text.partition('*')[2] or 1)):
            await ws.broadcast('room', text)


async def tiny(ws: WebSocket) -> None:
    await ws.accept()
    await ws.join('room')
    await ws.send_text('joined')
    async for _ in ws.iter_text():
        pass


async def events(stream: EventStream) -> None:
    await stream.send('hello')
    await stream.wait_closed()


async def events_tiny(stream: EventStream) -> None:
    await stream.join('room')
    print('events_tiny joined', flush=True)
    await stream.wait_closed()


def hello(request):
    return Response('hello')


def slow(request):
    RUNNING.set()
    RELEASE.wait(10)
    RELEASE.clear()
    RUNNING.clear()
    return Response('slow')


async def waiting(request):
    for _ in range(1000):  # 10 s at most
        if RELEASE.is_set():
            break
        await asyncio.sleep(0.01)
    RELEASE.clear()
    return Response('awaited')


def release(request):
    RELEASE.set()
    return Response('released')


async def unblock(scope, receive, send) -> None:
    RELEASE.set()
    await send({'type': 'http.response.start', 'status': 204})
    await send({'type': 'http.response.body', 'body': b''})


def busy(request):
    return Response(str(RUNNING.is_set()))


def pid(request):
    return Response(str(os.getpid()))


def export(request):
    registry = get_metrics(request.registry).collector_registry
    return Response(generate_latest(registry), content_type='text/plain')


def make_app():
    settings = {
        'asgi_ws.metrics_path': os.environ.get('METRICS_PATH', '/metrics'),
        'asgi_ws.metrics_allow': os.environ.get(
            'METRICS_ALLOW', '127.0.0.0/8 ::1'
        ),
        'asgi_ws.broadcast_url': os.environ.get('BROADCAST_URL', 'memory://'),
    }
    if not settings['asgi_ws.metrics_path']:  # the app exports them
        settings['asgi_ws.metrics'] = 'true'
        collectors.INTERVAL = float(os.environ['METRICS_INTERVAL'])
    if 'THREADS' in os.environ:
        settings['asgi_ws.threads'] = os.environ['THREADS']
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_asgi_consumer('/echo', echo, name='echo')
        config.add_asgi_consumer('/room', room, name='room')
        config.add_asgi_consumer(
            '/tiny',
            tiny,
            name='tiny',
            send_queue_size=1,
            send_overflow='drop_newest',
        )
        config.add_asgi_consumer(
            '/events', events, protocol='sse', name='events'
        )
        config.add_asgi_consumer(
            '/events/tiny',
            events_tiny,
            protocol='sse',
            name='events_tiny',
            send_queue_size=1,
            send_overflow='drop_newest',
        )
        config.add_asgi_consumer(
            '/unblock', unblock, protocol='http', name='unblock'
        )
        for name, view in (
            ('hello', hello),
            ('slow', slow),
            ('await', waiting),
            ('release', release),
            ('busy', busy),
            ('pid', pid),
            ('export', export),
        ):
            config.add_route(name, f'/{name}')
            config.add_view(view, route_name=name)
        return config.make_asgi_app()


app = make_app()
