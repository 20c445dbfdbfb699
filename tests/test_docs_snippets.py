"""The inline ``code-block:: python`` examples of the docs run as written.

Each test takes its snippet from the page itself (:func:`snippet`), so a
snippet edited into something that no longer works fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import sys
import textwrap
import threading
import types

import httpx
from pyramid.config import Configurator
from pyramid.response import Response
import pytest

from pyramid_asgi_ws.broadcast import get_broadcaster
from pyramid_asgi_ws.testing import TestClient
from tests.asgi import http_scope
from tests.pkgs.locked import NobodyPolicy
from tests.support import ROOT, wait_until

DOCS = ROOT / 'docs'


def snippet(page: str, first_line: str) -> str:
    """Return the python code block of ``docs/<page>`` starting so.

    ``first_line`` is the block's first line of code, stripped; ``page``
    may be ``../README.rst``.
    """
    lines = (DOCS / page).read_text().splitlines()
    for index, line in enumerate(lines):
        if line.strip() != '.. code-block:: python':
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for code in lines[index + 1 :]:
            if code.strip() and len(code) - len(code.lstrip()) <= indent:
                break
            body.append(code)
        text = textwrap.dedent('\n'.join(body)).strip('\n')
        if text.splitlines()[0] == first_line:
            return text + '\n'
    raise LookupError(f'no python block of {page} starts {first_line!r}')


def module_of(
    name: str, source: str, folder: Path, **names
) -> types.ModuleType:
    """Import ``source`` as a module from a file (``view_config`` reads
    its lines; ``config.scan`` looks it up), ``names`` defined first."""
    path = folder / f'{name}.py'
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(names)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def get(client: TestClient, path: str) -> tuple[int, dict, bytes]:
    """GET ``path`` through the ASGI application (the fast path)."""
    sent = []

    async def receive():
        return {'type': 'http.request', 'body': b'', 'more_body': False}

    async def send(message):
        sent.append(message)

    client.call(client.app, http_scope(path), receive, send)
    headers = {
        key.decode(): value.decode()
        for key, value in sent[0].get('headers', [])
    }
    body = b''.join(message.get('body', b'') for message in sent[1:])
    return sent[0]['status'], headers, body


def test_snippet_finds_nothing_it_was_not_given():
    with pytest.raises(LookupError, match='no python block'):
        snippet('sse.rst', 'print("not in the docs")')


def test_sse_progress_consumer(tmp_path):
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        module_of(
            'docs_snippet_progress',
            snippet('sse.rst', 'async def progress(stream):'),
            tmp_path,
            config=config,
            asyncio=types.SimpleNamespace(sleep=sleep),
        )
        app = config.make_asgi_app()
    with TestClient(app) as client:
        with client.sse('/progress/7') as stream:
            events = stream.receive_many(10)
    assert [(event.event, event.data) for event in events] == [
        ('progress', f'{{"step":{step}}}') for step in range(10)
    ]
    assert slept == [1] * 10


def weather_app(monkeypatch, tmp_path, upstream):
    """The async views chapter's httpx example, its upstream mocked."""
    real = httpx.AsyncClient
    monkeypatch.setattr(
        httpx,
        'AsyncClient',
        lambda **kw: real(transport=httpx.MockTransport(upstream), **kw),
    )
    module = module_of(
        'docs_snippet_weather', snippet('async.rst', 'import httpx'), tmp_path
    )
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.add_route('weather', '/weather/{city}')
        config.scan(module)
        return config.make_asgi_app()


def test_async_view_with_httpx(monkeypatch, tmp_path):
    def upstream(request):
        assert request.url.params['city'] == 'Lyon'
        return httpx.Response(200, json={'sky': 'clear'})

    app = weather_app(monkeypatch, tmp_path, upstream)
    with TestClient(app) as client:
        status, headers, body = get(client, '/weather/Lyon')
        http = app.registry.http
        assert not http.is_closed
    assert (status, headers['content-type']) == (200, 'application/json')
    assert body == b'{"city": "Lyon", "now": {"sky": "clear"}}'
    assert http.is_closed  # closed by the ApplicationShutdown subscriber


def test_async_view_with_httpx_upstream_failing(monkeypatch, tmp_path):
    app = weather_app(
        monkeypatch, tmp_path, lambda request: httpx.Response(503)
    )
    with TestClient(app) as client:
        status, _, _ = get(client, '/weather/Lyon')
    assert status == 502


def test_metrics_view_of_the_application(tmp_path):
    module = module_of(
        'docs_snippet_metrics',
        snippet(
            'deployment.rst', 'from prometheus_client import generate_latest'
        ),
        tmp_path,
    )
    settings = {'asgi_ws.metrics': 'true'}
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_route('metrics', '/app-metrics')
        config.add_view(module.metrics_view, route_name='metrics')
        config.add_route('hello', '/')
        config.add_view(lambda request: Response('hi'), route_name='hello')
        app = config.make_asgi_app()
    with TestClient(app) as client:
        assert get(client, '/')[0] == 200
        status, _, body = get(client, '/app-metrics')
    assert status == 200
    assert b'pyramid_asgi_ws_bridge_responses_total{status="200"}' in body


def test_security_public_health_consumer(tmp_path):
    calls = []

    async def health(scope, receive, send):
        calls.append(scope['path'])
        await send({'type': 'http.response.start', 'status': 204})
        await send({'type': 'http.response.body', 'body': b''})

    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.set_security_policy(NobodyPolicy())
        module_of(
            'docs_snippet_health',
            snippet(
                'security.rst',
                'from pyramid.security import NO_PERMISSION_REQUIRED',
            ),
            tmp_path,
            config=config,
            health=health,
        )
        # the snippet's default permission applies to other consumers
        config.add_asgi_consumer('/private', health, protocol='http')
        app = config.make_asgi_app()
    with TestClient(app) as client:
        assert get(client, '/health')[0] == 204
        assert get(client, '/private')[0] == 401  # nobody logged in
    assert calls == ['/health']


def test_readme_chat(tmp_path):
    source = snippet(
        '../README.rst', 'from pyramid.config import Configurator'
    )
    module = module_of('docs_snippet_readme', source, tmp_path)
    with TestClient(module.app) as client:
        with client.websocket_connect('/ws/lobby') as ws:
            ws.send_text('hi')
            assert ws.receive_text() == 'lobby: hi'


def test_groups_room_relays_to_its_members(tmp_path):
    module = module_of(
        'docs_snippet_room',
        snippet(
            'groups.rst', 'from pyramid_asgi_ws import websocket_consumer'
        ),
        tmp_path,
    )
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.scan(module)
        app = config.make_asgi_app()
    with TestClient(app) as client:
        with client.websocket_connect('/rooms/7') as ann:
            with client.websocket_connect('/rooms/7') as bob:
                wait_until(
                    lambda: len(client.call(members, app, '7')) == 2,
                    'both joined',
                )
                ann.send_text('hello')
                assert bob.receive_text() == 'hello'
                assert ann.receive_text() == 'hello'


async def members(app, group):
    return await get_broadcaster(app.registry).members(group)


def test_groups_clock_publishes_from_startup(tmp_path):
    module = module_of(
        'docs_snippet_clock', snippet('groups.rst', 'import asyncio'), tmp_path
    )

    async def listen(ws):
        await ws.accept()
        await ws.join('clock')
        await ws.send_text('joined')
        async for _ in ws.iter_text():
            pass  # pragma: no cover - the test sends nothing

    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.scan(module)
        config.add_asgi_consumer('/clock', listen)
        app = config.make_asgi_app()
    with TestClient(app) as client:
        with client.websocket_connect('/clock') as ws:
            assert ws.receive_text() == 'joined'
            assert ws.receive_json()['now'] > 0
        clock = app.clock
    assert clock.cancelled()  # by the ApplicationShutdown subscriber


class Notes:
    """A stand-in for a SQLAlchemy session: what it stores, and where."""

    def __init__(self):
        self.rows = []
        self.threads = []

    def add(self, row):
        self.threads.append(threading.current_thread())
        self.rows.append(row)

    def query(self, model):
        return types.SimpleNamespace(count=lambda: len(self.rows))


def test_async_view_hands_blocking_work_to_run_sync(monkeypatch, tmp_path):
    models = types.ModuleType('myapp.models')
    models.Note = lambda text: text
    monkeypatch.setitem(sys.modules, 'myapp', types.ModuleType('myapp'))
    monkeypatch.setitem(sys.modules, 'myapp.models', models)
    module = module_of(
        'docs_snippet_note',
        snippet('async.rst', 'from pyramid.view import view_config'),
        tmp_path,
    )
    notes = Notes()
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.add_route('note', '/note')
        config.add_request_method(
            lambda request: notes, 'dbsession', reify=True
        )
        config.scan(module)
        app = config.make_asgi_app()
    app.registry.http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text='x'))
    )
    with TestClient(app) as client:
        status, _, body = get(client, '/note')
        client.call(app.registry.http.aclose)
    assert (status, body) == (200, b'{"notes": 1}')
    assert notes.rows == ['x']
    # in a thread of the bridge's pool, never on the event loop
    assert notes.threads[0].name.startswith('asgi_ws-wsgi-')
