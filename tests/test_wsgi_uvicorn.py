"""The bridge through a real uvicorn process on a loopback port."""

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

APP = textwrap.dedent(
    '''
    import contextvars
    import os
    import time

    from pyramid.config import Configurator
    import pyramid.response
    from pyramid.response import Response

    from pyramid_asgi_ws.wsgi import WsgiToAsgi

    var = contextvars.ContextVar('var')

    # FileResponse opens the files of static views through this name:
    # keep every file it opens, so that only close() can close them
    opened = []


    def recording_open(*args, **kw):
        file = open(*args, **kw)
        opened.append(file)
        return file


    pyramid.response.open = recording_open


    def files(request):
        # the last response's body may reach the client just before its
        # iterable is closed: wait (bounded) for the close
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if all(f.closed for f in opened):
                break
            time.sleep(0.01)
        return Response(json=[f.closed for f in opened])


    def hello(request):
        var.set(request.path)
        return Response('Hello')


    def stream(request):
        def chunks():
            for i in range(5):
                yield b'chunk%d' % i

        return Response(app_iter=chunks())


    def upload(request):
        size = 0
        while True:
            data = request.body_file_raw.read(65536)
            if not data:
                break
            size += len(data)
        return Response(str(size))


    with Configurator() as config:
        config.add_route('hello', '/')
        config.add_view(hello, route_name='hello')
        config.add_route('stream', '/stream')
        config.add_view(stream, route_name='stream')
        config.add_route('upload', '/upload')
        config.add_view(upload, route_name='upload')
        config.add_route('files', '/files')
        config.add_view(files, route_name='files')
        config.add_static_view(
            'static', os.path.join(os.path.dirname(__file__), 'static')
        )
        app = WsgiToAsgi(config.make_wsgi_app(), threads=8)
    '''
)


VIDEO = bytes(range(256)) * 1024


@pytest.fixture(scope='module')
def uvicorn_server(tmp_path_factory):
    pytest.importorskip('uvicorn')
    app_dir = tmp_path_factory.mktemp('app')
    (app_dir / 'keepalive_app.py').write_text(APP)
    (app_dir / 'static').mkdir()
    (app_dir / 'static' / 'video.bin').write_bytes(VIDEO)
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (root, env.get('PYTHONPATH')) if p
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'uvicorn',
            '--host',
            '127.0.0.1',
            '--port',
            str(port),
            '--app-dir',
            str(app_dir),
            '--log-level',
            'warning',
            'keepalive_app:app',
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                conn = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
                conn.request('GET', '/')
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            output, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            output, _ = proc.communicate(timeout=10)
    # Nothing logged: no "Exception in ASGI application", no 500.
    assert b'Error' not in output and b'Exception' not in output, output


def _requests(port, count, statuses):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.connect()
    # Without it, delayed ACKs stall each upload by 40 ms.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for i in range(count):
            path = ('/', '/stream', '/upload')[i % 3]
            body = b'x' * 100000 if path == '/upload' else None
            conn.request('POST' if body else 'GET', path, body=body)
            response = conn.getresponse()
            data = response.read()
            statuses.append(response.status)
            if path == '/stream':
                expected = b''.join(b'chunk%d' % n for n in range(5))
                if data != expected:  # pragma: no cover
                    statuses.append(-1)
            elif path == '/upload' and data != b'100000':  # pragma: no cover
                statuses.append(-2)
    finally:
        conn.close()


def test_keep_alive_sequential_no_5xx(uvicorn_server):
    statuses = []
    _requests(uvicorn_server, 500, statuses)
    assert len(statuses) == 500
    assert set(statuses) == {200}


def test_keep_alive_threads_no_5xx(uvicorn_server):
    statuses = []
    threads = [
        threading.Thread(
            target=_requests, args=(uvicorn_server, 150, statuses)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(statuses) == 8 * 150
    assert set(statuses) == {200}


def test_range_request_to_a_static_view_closes_the_file(uvicorn_server):
    conn = http.client.HTTPConnection('127.0.0.1', uvicorn_server, timeout=10)
    try:
        # WebOb wraps the file wrapper to serve the range
        conn.request(
            'GET', '/static/video.bin', headers={'Range': 'bytes=2-5'}
        )
        response = conn.getresponse()
        assert (response.status, response.read()) == (206, VIDEO[2:6])
        conn.request('GET', '/static/video.bin')
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, VIDEO)
        conn.request('GET', '/files')
        response = conn.getresponse()
        closed = json.loads(response.read())
    finally:
        conn.close()
    assert closed == [True, True]
