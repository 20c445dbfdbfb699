"""Every code example of the documentation (docs/examples/) runs here."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import urllib.request

import pytest

from pyramid_asgi_ws import WebSocketDisconnect
from pyramid_asgi_ws.testing import TestClient
from tests import test_testing
from tests.asgi import http_scope
from tests.support import ROOT, serve
from tests.wsclient import TIMEOUT, open_ws

EXAMPLES = ROOT / 'docs' / 'examples'


def load(name: str, folder=EXAMPLES):
    """Import ``docs/examples/<name>.py`` under a name of its own."""
    module_name = f'docs_example_{name}'
    spec = importlib.util.spec_from_file_location(
        module_name, folder / f'{name}.py'
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # config.scan() looks it up
    spec.loader.exec_module(module)
    return module


def http_get(client: TestClient, path: str) -> tuple[int, bytes]:
    """GET ``path`` through the ASGI app itself (not the WSGI app)."""
    sent = []

    async def receive():
        return {'type': 'http.request', 'body': b'', 'more_body': False}

    async def send(message):
        sent.append(message)

    async def run():
        await client.app(http_scope(path), receive, send)

    client.call(run)
    return sent[0]['status'], b''.join(m.get('body', b'') for m in sent[1:])


def run_pytest(folder: str) -> str:
    """Run pytest in ``docs/examples/<folder>`` as a user would."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [str(ROOT), env.get('PYTHONPATH')])
    )
    done = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider'],
        cwd=EXAMPLES / folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# -- quickstart -----------------------------------------------------------


def test_quickstart_tests_pass():
    assert '2 passed' in run_pytest('quickstart')


def test_quickstart_app_serves_with_uvicorn():
    env = {'PYTHONPATH': f'{EXAMPLES / "quickstart"}{os.pathsep}{ROOT}'}
    with serve('uvicorn', 'app:app', env) as server:
        with urllib.request.urlopen(server.url, timeout=TIMEOUT) as page:
            assert f'{server.ws_url}/echo' in page.read().decode()
        with open_ws(f'{server.ws_url}/echo') as ws:
            ws.send('hi')
            assert ws.recv(timeout=TIMEOUT) == 'echo: hi'


# -- testing --------------------------------------------------------------


def test_testing_example_passes():
    assert '6 passed' in run_pytest('testing')


# -- consumers ------------------------------------------------------------


@pytest.fixture(scope='module')
def consumers():
    return load('consumers')


def test_function_consumer(consumers, capsys):
    with TestClient(consumers.make_app()) as client:
        with client.websocket_connect('/shout') as ws:
            ws.send_text('hey')
            assert ws.receive_text() == 'HEY'
            ws.close(1001)
    assert 'client left with 1001' in capsys.readouterr().out


def test_class_consumer(consumers, capsys):
    with TestClient(consumers.make_app()) as client:
        with client.websocket_connect('/counter') as ws:
            ws.send_json({'add': 2})
            assert ws.receive_json() == {'total': 2}
            ws.send_json({'add': 3})
            assert ws.receive_json() == {'total': 5}
    assert 'counted to 5, closed with 1000' in capsys.readouterr().out


def test_deny_and_close(consumers):
    with TestClient(consumers.make_app()) as client:
        refusal = test_testing.refused(client, '/vip/bob')
        assert (refusal.status, refusal.body) == (403, b'members only')
        with client.websocket_connect('/vip/alice') as ws:
            assert ws.receive_text() == 'welcome'
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
    assert (info.value.code, info.value.reason) == (4000, 'that was all')


def test_raw_consumers(consumers):
    with TestClient(consumers.make_app()) as client:
        assert http_get(client, '/health') == (200, b'ok')
        with client.websocket_connect('/raw') as ws:
            ws.send_bytes(b'\x00\x01')
            assert ws.receive_bytes() == b'\x00\x01'


# -- routing --------------------------------------------------------------


def test_routing(capsys):
    routing = load('routing')
    with TestClient(routing.make_app()) as client:
        for path, expected in [
            ('/rooms/lobby', {'room': 'lobby'}),
            ('/items/42', {'id': 42}),
            ('/files/a/b.txt', {'path': 'a/b.txt'}),
        ]:
            with client.websocket_connect(path) as ws:
                assert ws.receive_json() == expected
        assert test_testing.refused(client, '/items/abc').status == 404
        assert test_testing.refused(client, '/live').status == 404
        with client.websocket_connect('/api/live') as ws:
            assert ws.receive_text() == '/api/live'
        assert client.http.get('/links').json == {
            'room': 'ws://testserver/rooms/lobby',
            'item': 'ws://testserver/items/7?v=2',
            'live': 'ws://testserver/api/live',
        }


# -- security -------------------------------------------------------------


def test_security():
    security = load('security')
    with TestClient(security.make_app()) as client:
        assert test_testing.refused(client, '/private').status == 401
        client.http.post('/login', {'user': 'ann'})
        with client.websocket_connect('/private') as ws:
            assert ws.receive_text() == 'hello ann'
        own = {'Origin': 'http://testserver'}
        with client.websocket_connect('/private', own):
            pass
        settings_origin = {'Origin': 'https://www.example.com'}
        with client.websocket_connect('/private', settings_origin):
            pass
        evil = {'Origin': 'http://evil'}
        assert test_testing.refused(client, '/private', evil).status == 403
        # the consumer's allowed_origins replace the setting's
        assert (
            test_testing.refused(client, '/feed', settings_origin).status
            == 403
        )
        partner = {'Origin': 'https://partner.example'}
        assert (
            test_testing.refused(client, '/feed', partner, ['feed.v0']).status
            == 400
        )
        with client.websocket_connect(
            '/feed', partner, ['feed.v1', 'feed.v2']
        ) as ws:
            assert ws.subprotocol == 'feed.v1'
            ws.send_text('abc')
            assert ws.receive_text() == "['feed.v1', 'feed.v2']: 3"
            ws.send_text('x' * 1025)
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
    assert info.value.code == 1009


# -- database -------------------------------------------------------------


def test_database_async_consumer_through_run_sync(tmp_path):
    from notes.models import Note, User, get_tm_session
    import transaction

    database = load('database')
    app = database.make_app(f'sqlite:///{tmp_path / "notes.sqlite"}')
    factory = app.registry['dbsession_factory']
    with TestClient(app) as client:
        with client.websocket_connect('/count') as ws:
            ws.send_text('how many?')
            assert ws.receive_json() == {'notes': 0}
            with transaction.manager:
                author = User(name='ada', password_hash='-')
                note = Note(text='one', via='form', author=author)
                get_tm_session(factory, transaction.manager).add(note)
            ws.send_text('and now?')
            assert ws.receive_json() == {'notes': 1}


# -- migrating ------------------------------------------------------------


def echo_works(client):
    with client.websocket_connect('/ws') as ws:
        ws.send_text('hello')
        assert ws.receive_text() == 'hello'
        ws.send_bytes(b'\x01')
        assert ws.receive_bytes() == b'\x01'
    return True


def test_recipe_before_fails_unknown_paths():
    before = load('recipe_before')
    with TestClient(before.app) as client:
        assert echo_works(client)
        # The old recipe never answers a socket it has no consumer for.
        assert test_testing.refused(client, '/wss').status == 500


def test_recipe_after():
    # migrating.rst shows the rewritten recipe from examples/recipe/
    after = load('echo', ROOT / 'examples' / 'recipe')
    with TestClient(after.app) as client:
        assert echo_works(client)
        assert 'ws://testserver/ws' in client.http.get('/').text
        assert test_testing.refused(client, '/wss').status == 404
