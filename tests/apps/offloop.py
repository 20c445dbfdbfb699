"""The application the off-loop tests serve under uvicorn.

Its security policy takes ``OFFLOOP_DELAY`` seconds (default 0.2) per
identity, as a slow user query would, and records how many of its calls
run at once; the pool has ``OFFLOOP_THREADS`` threads (default 4).
Everything the add-on runs for it records the thread it ran in.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
import time

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.threadlocal import get_current_registry, get_current_request

from tests.apps.common import respond

DELAY = float(os.environ.get('OFFLOOP_DELAY', '0.2'))
THREADS = os.environ.get('OFFLOOP_THREADS', '4')
#: Set in the consumer, read in what it runs through ``ws.run_sync``.
MARK: contextvars.ContextVar[str] = contextvars.ContextVar('mark')


def here() -> str:
    return threading.current_thread().name


class Calls:
    """How many policy calls run now, the most at once, and where."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()

    def __enter__(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(here())

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.running -= 1


CALLS = Calls()


class SlowPolicy:
    """Everybody is alice, but finding out takes ``DELAY`` seconds."""

    def identity(self, request):
        with CALLS:
            time.sleep(DELAY)
        return 'alice'

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        return permission == 'view' and self.identity(request) == 'alice'


class ThreadRequest(Request):
    """A request factory of the app's own: where was it built?"""

    def __init__(self, environ, **kw):
        super().__init__(environ, **kw)
        self.built_in = here()
        self.registry_current = get_current_registry() is not None


class Root:
    """The app's root factory: where did it run, with which request?"""

    def __init__(self, request):
        self.made_in = here()
        self.saw_request = get_current_request() is request


def forbidden(request):
    return Response(
        'no',
        status=403,
        headers={'X-Thread': here()},
        content_type='text/plain',
    )


def where(ws) -> dict:
    request = ws.request
    return {
        'request': request.built_in,
        'registry_current': request.registry_current,
        'root': request.context.made_in,
        'root_saw_request': request.context.saw_request,
        'loop': here(),
    }


def finished(request):
    current = get_current_request() is request
    print(f'finished in {here()} current={current}', flush=True)


async def slow(ws):
    await ws.accept()
    ws.request.add_finished_callback(finished)
    await ws.send_json(where(ws))
    await ws.receive_text()  # until the client goes


async def echo(ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


def probe(ws, *args, **kwargs):
    if kwargs.get('fail'):
        raise ValueError('failed in the pool')
    return {
        'thread': here(),
        'current': get_current_request() is ws.request,
        'mark': MARK.get('unset'),
        'args': list(args),
        'kwargs': kwargs,
    }


async def run_sync(ws):
    """Each text message asks ``ws.run_sync`` for a result or a failure."""
    await ws.accept()
    MARK.set('from the consumer')
    async for text in ws.iter_text():
        try:
            result = await ws.run_sync(probe, ws, 1, 2, fail=text == 'fail')
        except ValueError as exc:
            result = {'raised': f'{type(exc).__name__}: {exc}'}
        result['loop'] = here()
        await ws.send_json(result)


async def stats(scope, receive, send):
    """How the policy calls went; ``?reset`` starts the count again."""
    if scope['query_string'] == b'reset':
        CALLS.most = 0
        CALLS.threads.clear()
    body = {'most': CALLS.most, 'threads': sorted(CALLS.threads)}
    await respond(send, json.dumps(body), 'application/json')


async def allowed(scope, receive, send):
    await respond(send, 'allowed', 'text/plain')


def make_app():
    config = Configurator(
        settings={'asgi_ws.threads': THREADS},
        root_factory=Root,
        request_factory=ThreadRequest,
    )
    config.include('pyramid_asgi_ws')
    config.set_security_policy(SlowPolicy())
    config.add_forbidden_view(forbidden)
    config.add_asgi_consumer('/slow', slow, permission='view')
    config.add_asgi_consumer('/denied', slow, permission='admin')
    config.add_asgi_consumer('/echo', echo, permission=NO_PERMISSION_REQUIRED)
    config.add_asgi_consumer(
        '/run_sync', run_sync, permission=NO_PERMISSION_REQUIRED
    )
    config.add_asgi_consumer(
        '/stats', stats, protocol='http', permission=NO_PERMISSION_REQUIRED
    )
    config.add_asgi_consumer(
        '/http/allowed', allowed, protocol='http', permission='view'
    )
    config.add_asgi_consumer(
        '/http/denied', allowed, protocol='http', permission='admin'
    )
    return config.make_asgi_app()


app = make_app()
