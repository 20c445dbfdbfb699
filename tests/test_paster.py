"""``pyramid_asgi_ws.paster``: loading ini files and the server runners."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import select
import signal
import socket
import stat
import struct
import time
import urllib.error
import urllib.request

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
import pytest
from websockets.exceptions import ConnectionClosed

from pyramid_asgi_ws import paster
from pyramid_asgi_ws.app import ASGIApp
from pyramid_asgi_ws.runners import hypercorn as hypercorn_runner
from pyramid_asgi_ws.runners import options as runner_options
from pyramid_asgi_ws.runners import uvicorn as uvicorn_runner
from pyramid_asgi_ws.runners.options import (
    ServerOptionError,
    parse_server_options,
)
from tests.fixtures.apps import HeaderFilter
from tests.fixtures.deploy import (
    FIXTURES,
    PYTHONPATH,
    connect_retrying,
    echo_once,
    myproject_ini,
    pserve,
    wait_for_unix,
    websocket,
)
from tests.support import free_port, serve

INI = str(FIXTURES / 'apps.ini')


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- server options ---------------------------------------------------------


def test_default_address():
    assert parse_server_options({}, 'uvicorn') == {
        'listen': ['127.0.0.1:6543']
    }


def test_host_port_and_unix_socket_become_listen():
    parsed = parse_server_options({'host': '::1', 'port': '80'}, 'uvicorn')
    assert parsed['listen'] == ['::1:80']
    parsed = parse_server_options({'unix_socket': '/run/a.sock'}, 'uvicorn')
    assert parsed['listen'] == ['unix:/run/a.sock']


def test_values_are_converted():
    parsed = parse_server_options(
        {
            'listen': '*:80 [::1]:81 unix:/tmp/x.sock',
            'workers': '3',
            'proxy_headers': 'off',
            'forwarded_allow_ips': ' 10.0.0.1,10.0.0.2 ',
            'ws_max_size': '2MiB',
            'ws_ping_interval': '2.5',
            'log_level': 'WARNING',
            'access_log': 'yes',
            'shutdown_timeout': '1.5',
            'app_name': 'api',
        },
        'uvicorn',
    )
    assert parsed == {
        'listen': ['*:80', '[::1]:81', 'unix:/tmp/x.sock'],
        'workers': 3,
        'proxy_headers': False,
        'forwarded_allow_ips': '10.0.0.1,10.0.0.2',
        'ws_max_size': 2 * 1024 * 1024,
        'ws_ping_interval': 2.5,
        'log_level': 'warning',
        'access_log': True,
        'shutdown_timeout': 1.5,
        'app_name': 'api',
    }
    for off in ('0', 'none', 'off'):
        options = {'ws_ping_interval': off}
        assert parse_server_options(options, 'x')['ws_ping_interval'] is None


def test_python_booleans_pass():
    options = {'proxy_headers': True, 'access_log': False}
    parsed = parse_server_options(options, 'uvicorn')
    assert (parsed['proxy_headers'], parsed['access_log']) == (True, False)


def test_unknown_option_is_named():
    with pytest.raises(ServerOptionError) as info:
        parse_server_options({'prot': '80'}, 'uvicorn')
    message = str(info.value)
    assert "unknown option 'prot'" in message
    assert 'egg:pyramid_asgi_ws#uvicorn' in message
    assert 'known options are: host, port, listen' in message


def test_option_unsupported_by_the_server():
    with pytest.raises(ServerOptionError, match="'forwarded_allow_ips'"):
        parse_server_options(
            {'forwarded_allow_ips': '*'},
            'hypercorn',
            unsupported=('forwarded_allow_ips',),
        )


@pytest.mark.parametrize(
    ('name', 'value', 'message'),
    [
        ('port', 'http', "port must be a whole number, not 'http'"),
        ('port', '70000', "port must be at most 65535, not '70000'"),
        ('port', '', "port must be a whole number, not ''"),
        ('workers', '1.5', "workers must be a whole number, not '1.5'"),
        ('workers', '0', "workers must be positive, not '0'"),
        ('proxy_headers', 'maybe', "must be true or false (one of "),
        ('access_log', 'ture', "not 'ture'"),
        ('ws_max_size', 'big', "ws_max_size must be a byte count"),
        ('ws_ping_interval', 'soon', 'ws_ping_interval must be a number'),
        ('log_level', 'loud', "log_level must be one of critical"),
        ('shutdown_timeout', '-1', 'shutdown_timeout must not be negative'),
        ('shutdown_timeout', 'inf', 'shutdown_timeout must be a number'),
        ('listen', 'nowhere', "host:port or unix:/path addresses, not 'now"),
        ('listen', ':80', "not ':80'"),
        ('listen', 'a:0', "the port of listen 'a:0' must be positive"),
        ('listen', ' ', 'listen must name an address'),
        # a blank host would bind every interface
        ('host', '', "host must name one host or address, such as"),
        ('host', ' ', "host must name one host or address, such as"),
        ('host', 'a b', "not 'a b'"),
        ('host', 'unix:/run/a.sock', "not 'unix:/run/a.sock'"),
        ('unix_socket', ' ', "unix_socket must be a path, not ' '"),
    ],
)
def test_malformed_option_is_named(name, value, message):
    with pytest.raises(ServerOptionError) as info:
        parse_server_options({name: value}, 'uvicorn')
    assert message in str(info.value)


def test_blank_ws_options_mean_the_default():
    # only 'none' lifts the server's frame limit or stops its pings
    app = paster.get_app(INI)
    blank = {'ws_max_size': ' ', 'ws_ping_interval': ''}
    parsed = parse_server_options(blank, 'uvicorn')
    assert parsed == {'listen': ['127.0.0.1:6543']}
    assert runner_options.ws_max_size(app, parsed) == (
        runner_options.default_ws_max_size(app)
    )
    unlimited = parse_server_options({'ws_max_size': 'none'}, 'uvicorn')
    assert runner_options.ws_max_size(app, unlimited) == 2**31


def test_listen_excludes_host_and_port():
    with pytest.raises(ServerOptionError, match='either listen or host/port'):
        parse_server_options(
            {'listen': 'a:1', 'host': 'b', 'port': '2'}, 'uvicorn'
        )


# -- finding the application ------------------------------------------------


def test_get_app_wraps_the_router():
    app = paster.get_app(INI)
    assert isinstance(app, ASGIApp)
    assert app.wsgi_app.registry is app.registry
    assert [c.name for c in app.consumers][:2] == ['echo', 'chat']
    # building it again for the same router gives the same application
    assert paster.asgi_app_for(app.wsgi_app) is app


def test_get_app_returns_an_asgi_app_factory_result():
    app = paster.get_app(INI, 'asgi')
    assert isinstance(app, ASGIApp)
    assert paster.asgi_app_for(app) is app


def test_pipeline_keeps_filters_for_http():
    app = paster.get_app(INI, 'filtered')
    assert isinstance(app.wsgi_app, HeaderFilter)
    assert app.consumers.get('echo') is not None


def test_pipeline_without_a_reachable_router_is_refused():
    with pytest.raises(ConfigurationError, match='not a Pyramid router'):
        paster.get_app(INI, 'opaque')


def test_app_without_the_include_is_refused():
    with pytest.raises(ConfigurationError) as info:
        paster.get_app(INI, 'plain')
    assert '"pyramid.includes = pyramid_asgi_ws"' in str(info.value)


def test_find_router_stops_on_cycles_and_depth():
    class Loop:
        pass

    loop = Loop()
    loop.app = loop
    assert paster.find_router(loop) is None
    router = Configurator().make_wsgi_app()
    deep = router
    for _ in range(3):
        deep = HeaderFilter(deep)
    assert paster.find_router(deep) is router
    assert paster.find_router(deep, depth=2) is None


def test_find_asgi_app_under_middleware():
    app = paster.get_app(INI)
    assert paster.find_asgi_app(HeaderFilter(HeaderFilter(app))) is app
    assert paster.find_asgi_app(object()) is None


def test_default_ws_max_size():
    def app(limit='2MiB', **settings):
        with Configurator(settings=settings) as config:
            config.include('pyramid_asgi_ws')
            config.add_asgi_consumer(
                '/big', 'tests.fixtures.apps.echo', max_message_size=limit
            )
            return config.make_asgi_app()

    default_ws_max_size = runner_options.default_ws_max_size
    big = 4 * 2 * 1024 * 1024 + 4096
    assert default_ws_max_size(app()) == big
    larger = app(**{'asgi_ws.max_message_size': '4MiB'})
    assert default_ws_max_size(larger) == 4 * 4 * 1024 * 1024 + 4096
    # a consumer without a limit never raises the server's
    assert default_ws_max_size(app(limit='none')) == 4 * 1024**2 + 4096
    unlimited = app(limit='none', **{'asgi_ws.max_message_size': 'none'})
    assert default_ws_max_size(unlimited) == 16 * 1024 * 1024
    # raising it for the whole server is the explicit option
    assert runner_options.ws_max_size(unlimited, {'ws_max_size': None}) == (
        2**31
    )
    explicit = {'ws_max_size': 1024}
    assert runner_options.ws_max_size(unlimited, explicit) == 1024


def test_uvicorn_config():
    app = paster.get_app(INI)
    options = parse_server_options(
        {
            'listen': '*:8080',
            'ws_ping_interval': '0',
            'shutdown_timeout': '2.5',
        },
        'uvicorn',
    )
    config = uvicorn_runner.uvicorn_config(app, options, app)
    assert (config.host, config.port, config.uds) == ('0.0.0.0', 8080, None)
    assert config.ws_ping_interval is None
    assert config.ws_max_size == 4 * 1024 * 1024 + 4096
    assert config.timeout_graceful_shutdown == 2.5
    assert config.shutdown_timeout == 2.5
    options = parse_server_options({'unix_socket': '/tmp/u.sock'}, 'uvicorn')
    config = uvicorn_runner.uvicorn_config(app, options, app)
    assert config.uds == '/tmp/u.sock'
    assert config.shutdown_timeout == 5.0
    options = parse_server_options({'listen': 'a:1 b:2'}, 'uvicorn')
    with pytest.raises(ServerOptionError, match='serves one address'):
        uvicorn_runner.uvicorn_config(app, options, app)


def test_hypercorn_config():
    app = paster.get_app(INI)
    options = parse_server_options(
        {'log_level': 'trace', 'access_log': 'off', 'shutdown_timeout': '2'},
        'hypercorn',
    )
    config = hypercorn_runner.hypercorn_config(options, app)
    assert config.errorlog.level == logging.DEBUG
    assert config.accesslog is None
    assert config.graceful_timeout == 2.0
    assert config.websocket_max_message_size == 4 * 1024 * 1024 + 4096
    assert config.umask == 0o111


def test_hypercorn_runner_refuses_workers():
    with pytest.raises(ServerOptionError, match='runs one process'):
        paster.hypercorn_runner(object(), {}, workers='2')


def test_runner_names_stay_importable_from_paster():
    assert paster.uvicorn_runner is uvicorn_runner.uvicorn_runner
    assert paster.hypercorn_runner is hypercorn_runner.hypercorn_runner
    assert paster.ServerOptionError is ServerOptionError
    with pytest.raises(AttributeError, match='no attribute'):
        paster.nothing_here  # noqa: B018


def test_time_left_keeps_a_sliver():
    from pyramid_asgi_ws.runners import MIN_GRACE, time_left

    assert time_left(time.monotonic() - 10) == MIN_GRACE
    assert 9 < time_left(time.monotonic() + 10) <= 10


def test_application_from_the_environment(monkeypatch):
    monkeypatch.setattr(paster, 'application', paster.LazyApplication())
    monkeypatch.setenv(paster.CONFIG_ENV, INI + '#filtered')
    monkeypatch.setenv(paster.VARS_ENV, json.dumps({'unused': 'x'}))
    assert paster.application.app is None
    app = paster.application.load()
    assert isinstance(app.wsgi_app, HeaderFilter)
    assert paster.application.app is app
    assert paster.application.load() is app
    assert paster.find_asgi_app(paster.application) is app


def test_application_needs_the_environment(monkeypatch):
    monkeypatch.delenv(paster.CONFIG_ENV, raising=False)
    lazy = paster.LazyApplication()
    with pytest.raises(RuntimeError, match='set PYRAMID_ASGI_WS_CONFIG'):
        asyncio.run(lazy({'type': 'http'}, None, None))
    # through the lifespan, the server hears that startup failed
    sent = []

    async def receive():
        return {'type': 'lifespan.startup'}

    async def send(message):
        sent.append(message)

    asyncio.run(lazy({'type': 'lifespan'}, receive, send))
    assert sent[0]['type'] == 'lifespan.startup.failed'
    assert 'set PYRAMID_ASGI_WS_CONFIG' in sent[0]['message']


# -- pserve and the servers' own command lines ------------------------------


def check_myproject(base: str) -> None:
    status, body = get(f'http://{base}/')
    assert status == 200
    assert json.loads(body)['project'] == 'myproject'
    assert get(f'http://{base}/nowhere') == (404, b'Not Found')
    with websocket(f'ws://{base}/ws/echo') as ws:
        echo_once(ws, 'hello')


@pytest.mark.parametrize('server', ['uvicorn', 'hypercorn'])
def test_cookiecutter_project_after_two_ini_edits(tmp_path, server):
    port = free_port()
    ini = myproject_ini(tmp_path, server, listen=f'localhost:{port}')
    proc = pserve(ini, port=port).wait_ready()
    try:
        check_myproject(f'127.0.0.1:{port}')
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.log()


def test_hypercorn_listens_on_several_addresses(tmp_path):
    ports = [free_port(), free_port()]
    listen = ' '.join(f'127.0.0.1:{port}' for port in ports)
    ini = myproject_ini(
        tmp_path,
        'hypercorn',
        listen=listen,
        proxy_headers='true',
        access_log='false',
        log_level='warning',
    )
    proc = pserve(ini, port=ports[0]).wait_ready()
    try:
        proc.port = ports[1]
        proc.wait_ready()
        for port in ports:
            check_myproject(f'127.0.0.1:{port}')
        request = urllib.request.Request(
            f'http://127.0.0.1:{ports[1]}/',
            headers={'X-Forwarded-For': '203.0.113.7'},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)['client_addr'] == '203.0.113.7'
    finally:
        proc.stop()
    assert 'GET /' not in proc.log()


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'prot': '80'}, "unknown option 'prot'"),
        ({'port': 'http'}, "port must be a whole number, not 'http'"),
        ({'ws_max_size': 'lots'}, "ws_max_size must be a byte count"),
    ],
)
def test_pserve_stops_on_a_bad_option(tmp_path, options, message):
    ini = myproject_ini(tmp_path, **options)
    proc = pserve(ini)
    try:
        status = proc.wait(30)
    finally:
        proc.stop()
    assert status != 0
    assert 'ServerOptionError: ' + message in proc.log()


def test_pserve_without_the_include(tmp_path):
    ini = tmp_path / 'development.ini'
    ini.write_text(
        '[app:main]\nuse = call:tests.fixtures.apps:plain\n\n'
        '[server:main]\nuse = egg:pyramid_asgi_ws#uvicorn\n'
    )
    proc = pserve(ini)
    try:
        assert proc.wait(30) != 0
    finally:
        proc.stop()
    assert 'add "pyramid.includes = pyramid_asgi_ws"' in proc.log()


def touch_until_closed(path, ws, timeout: float = 15.0):
    """Change ``path``'s mtime until the server closes ``ws``.

    hupper notes a file's first mtime on its first poll, so one early
    change could go unseen: keep changing it until the reload happens.
    """
    deadline = time.monotonic() + timeout
    stamp = time.time()
    while time.monotonic() < deadline:
        stamp += 10
        os.utime(path, (stamp, stamp))
        try:
            message = ws.recv(timeout=0.5)
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            return exc.rcvd
        raise AssertionError(f'expected a close, got {message!r}')
    raise AssertionError(f'no reload in {timeout} s')


def test_pserve_reload_restarts_with_1001(tmp_path):
    port = free_port()
    ini = myproject_ini(tmp_path, listen=f'127.0.0.1:{port}')
    proc = pserve(ini, '--reload', port=port).wait_ready()
    url = f'ws://127.0.0.1:{port}/ws/echo'
    try:
        with websocket(url) as ws:
            echo_once(ws)
            frame = touch_until_closed(ini, ws)
        assert (frame.code, frame.reason) == (1001, 'server shutting down')
        with connect_retrying(url) as ws:
            echo_once(ws, 'after the reload')
    finally:
        proc.signal(signal.SIGTERM)
        proc.stop()
    assert proc.log().count('Started server process') >= 2, proc.log()


@pytest.mark.parametrize('server', ['uvicorn', 'hypercorn', 'daphne'])
def test_server_command_line_with_an_ini(tmp_path, server):
    ini = myproject_ini(tmp_path)
    env = {paster.CONFIG_ENV: str(ini), 'PYTHONPATH': PYTHONPATH}
    with serve(server, paster.APPLICATION, env) as proc:
        check_myproject(f'127.0.0.1:{proc.port}')


@pytest.mark.parametrize('server', ['uvicorn', 'hypercorn'])
def test_unix_socket_is_open_to_local_users_and_removed(tmp_path, server):
    sock = tmp_path / 'app.sock'
    ini = myproject_ini(tmp_path, server, unix_socket=str(sock))
    proc = pserve(ini)
    try:
        wait_for_unix(sock, proc)
        mode = stat.S_IMODE(os.stat(sock).st_mode)
    finally:
        proc.stop()
    # the same mode on both servers: nginx's user may connect, nobody may
    # execute it
    assert mode == 0o666, oct(mode)
    assert proc.proc.returncode == 0, proc.log()
    assert not sock.exists()


def peak_rss(pid: int) -> int:
    """The peak resident set size of process ``pid``, in bytes."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no VmHWM')  # pragma: no cover


def big_frame(port: int, path: str, size: int) -> int:
    """Open a WebSocket at ``path`` and send one binary frame of ``size``
    bytes; return the close code the server answers with.

    The frame is sent a MiB at a time, stopping as soon as the server
    says something: a server that closes as soon as it sees the frame's
    header does not reset the connection under the close frame.
    """
    sock = socket.create_connection(('127.0.0.1', port), 10)
    with sock:
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n'
            b'Upgrade: websocket\r\nConnection: Upgrade\r\n'
            b'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n'
            % (path.encode(), key)
        )
        data = b''
        while b'\r\n\r\n' not in data:
            data += sock.recv(4096)
        head, _, data = data.partition(b'\r\n\r\n')
        assert head.startswith(b'HTTP/1.1 101'), head
        # FIN + binary, masked with a zero key, 64-bit length
        sock.sendall(b'\x82\xff' + struct.pack('!Q', size) + b'\0' * 4)
        chunk = b'x' * (1024 * 1024)
        sent = 0
        with contextlib.suppress(OSError):
            while sent < size and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk[: size - sent])
                sent += len(chunk)
        while len(data) < 4:
            more = sock.recv(4096)
            assert more, 'the server closed without a close frame'
            data += more
    assert data[0] == 0x88, data  # a close frame
    return int.from_bytes(data[2:4], 'big')


def test_unlimited_consumer_leaves_the_server_frame_limit(tmp_path):
    # uvicorn refuses a frame from its header; hypercorn reads a frame
    # whole whatever its limit, so the limit bounds no memory there
    port = free_port()
    ini = tmp_path / 'limits.ini'
    ini.write_text(
        '[app:main]\nuse = call:tests.fixtures.apps:limits_app\n\n'
        '[server:main]\nuse = egg:pyramid_asgi_ws#uvicorn\n'
        f'listen = 127.0.0.1:{port}\n'
    )
    proc = pserve(ini, port=port).wait_ready()
    try:
        url = f'ws://127.0.0.1:{port}/ws/'
        for path in ('unlimited', 'bounded'):
            with websocket(url + path) as ws:
                echo_once(ws)
        before = peak_rss(proc.pid)
        code = big_frame(port, '/ws/bounded', 64 * 1024 * 1024)
        after = peak_rss(proc.pid)
    finally:
        proc.stop()
    assert code == 1009, proc.log()
    # the server refused the frame from its header, buffering none of it
    assert after - before < 8 * 1024 * 1024, (before, after)


def test_uvicorn_server_before_startup_stops_as_uvicorn_does():
    app = paster.get_app(INI)
    options = parse_server_options({}, 'uvicorn')
    config = uvicorn_runner.uvicorn_config(app, options, app)
    server = uvicorn_runner.Server(config)
    # no loop yet: nothing to close, uvicorn's own stop
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    server.force_exit = True
    server.servers = []  # what uvicorn's startup() would have set
    asyncio.run(server.shutdown())
    assert config.timeout_graceful_shutdown == 5.0
