"""The chat example served by ``pserve`` with ``egg:pyramid_asgi_ws#gunicorn``.

Real gunicorn arbiter and uvicorn workers, real clients: the page and a
chat message, an unknown option refused by name, gunicorn's settings
from the options, a unix socket, and SIGTERM closing open sockets with
1001 within ``shutdown_timeout``; and the documented gunicorn command
line, whose stop the application's ``asgi_ws.shutdown_timeout`` bounds.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import sys
import time

from gunicorn.arbiter import Arbiter
import pytest
import requests

from pyramid_asgi_ws.paster import CONFIG_ENV
from pyramid_asgi_ws.runners import SOCKET_UMASK
from pyramid_asgi_ws.runners.gunicorn import (
    KILL_MARGIN,
    Worker,
    child_exit,
    gunicorn_settings,
)
from pyramid_asgi_ws.runners.options import parse_server_options
from tests.fixtures.deploy import close_frame, websocket
from tests.fixtures.runners import (
    CHAT,
    INI,
    chat_ini,
    chat_served,
    check_page_and_chat,
    check_sigterm_closes_with_1001,
    check_unix_socket,
    check_unknown_option,
    pserve_chat,
)
from tests.support import ServerProcess, free_port, wait_until
from tests.test_chat import TIMEOUT, next_of, socket, visitor
from tests.wsclient import close_code

SHUTDOWN_TIMEOUT = 2.0
#: The worker class gunicorn's command line takes.
WORKER = 'pyramid_asgi_ws.runners.gunicorn.Worker'


class Settings:
    """An application's settings, all :func:`gunicorn_settings` reads."""

    def __init__(self, max_message_size: int | None = None) -> None:
        self.settings = {
            'max_message_size': max_message_size,
            'shutdown_timeout': 5.0,
        }
        self.consumers: list[object] = []


def test_page_and_chat(tmp_path):
    with chat_served(tmp_path, 'gunicorn') as server:
        check_page_and_chat(server)
        assert 'Using worker: Worker' in server.log()


def test_unknown_option_is_refused_by_name(tmp_path):
    check_unknown_option(tmp_path, 'gunicorn')


def test_sigterm_closes_sockets_with_1001(tmp_path):
    with chat_served(
        tmp_path, 'gunicorn', shutdown_timeout=SHUTDOWN_TIMEOUT
    ) as server:
        check_sigterm_closes_with_1001(server, SHUTDOWN_TIMEOUT)


def test_two_workers_each_load_the_ini(tmp_path):
    with chat_served(tmp_path, 'gunicorn', {'workers': 2}) as server:
        server.wait_for_log('Application startup complete.', count=2)
        page = requests.get(server.url + '/', timeout=TIMEOUT)
        assert page.status_code == 200


class Dead:
    """What :func:`child_exit` reads of a gunicorn worker."""

    def __init__(self, pid: int) -> None:
        self.pid = pid


def live_gauge(directory: Path, pid: int) -> Path:
    """Write a live gauge file as prometheus_client names it."""
    path = directory / f'gauge_livesum_{pid}.db'
    path.write_bytes(b'')
    return path


def test_child_exit_drops_a_dead_workers_live_gauges(tmp_path, monkeypatch):
    dead, alive = live_gauge(tmp_path, 41), live_gauge(tmp_path, 42)
    monkeypatch.delenv('PROMETHEUS_MULTIPROC_DIR', raising=False)
    child_exit(None, Dead(41))  # not in multiprocess mode: untouched
    assert dead.exists()
    monkeypatch.setenv('PROMETHEUS_MULTIPROC_DIR', str(tmp_path))
    monkeypatch.setitem(sys.modules, 'prometheus_client.multiprocess', None)
    child_exit(None, Dead(41))  # prometheus_client is not installed
    assert dead.exists()
    monkeypatch.undo()
    monkeypatch.setenv('PROMETHEUS_MULTIPROC_DIR', str(tmp_path))
    child_exit(None, Dead(41))
    assert not dead.exists() and alive.exists()


def test_a_killed_worker_leaves_no_live_gauges(tmp_path):
    metrics = tmp_path / 'metrics'
    metrics.mkdir()
    ini = chat_ini(tmp_path, 'gunicorn')
    text = ini.read_text()
    assert text.count('[app:main]\n') == 1
    ini.write_text(
        text.replace('[app:main]\n', '[app:main]\nasgi_ws.metrics = true\n')
    )
    port = free_port()
    env = {'PROMETHEUS_MULTIPROC_DIR': str(metrics)}
    command = pserve_chat(ini, port, workers=2)
    server = ServerProcess(command, port, env, cwd=CHAT)
    try:
        server.wait_ready()
        server.wait_for_log('Application startup complete.', count=2)

        def pids() -> set[int]:
            """The workers that have live gauge files now (pserve, the
            arbiter, loaded the application too and has its own)."""
            names = (path.stem for path in metrics.glob('gauge_live*.db'))
            return {int(name.rsplit('_', 1)[1]) for name in names} - {
                server.pid
            }

        # each worker writes its live gauges at its first sample
        wait_until(lambda: len(pids()) == 2, 'both workers to sample')
        victim = min(pids())
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: victim not in pids(), 'the killed worker\'s gauges to go'
        )
        # gunicorn replaced the worker, which writes its own
        wait_until(lambda: len(pids()) == 2, 'the new worker to sample')
    finally:
        server.stop()
        print(server.log())


def test_settings_from_the_options():
    opts = parse_server_options(
        {
            'listen': '127.0.0.1:8000 unix:/tmp/x.sock',
            'workers': '3',
            'log_level': 'trace',
            'access_log': 'false',
            'forwarded_allow_ips': '10.0.0.1',
            'ws_max_size': '1MB',
            'ws_ping_interval': 'off',
            'shutdown_timeout': '2.5',
            'proxy_headers': 'false',
        },
        'gunicorn',
    )
    settings = gunicorn_settings(opts, Settings())
    worker = settings.pop('worker_class')
    assert settings == {
        'bind': ['127.0.0.1:8000', 'unix:/tmp/x.sock'],
        'workers': 3,
        'graceful_timeout': 3 + KILL_MARGIN,
        'loglevel': 'debug',
        'accesslog': None,
        'control_socket_disable': True,
        'umask': SOCKET_UMASK,
        'child_exit': child_exit,
        'forwarded_allow_ips': '10.0.0.1',
    }
    assert issubclass(worker, Worker)
    assert worker.shutdown_timeout == 2.5
    config = worker.CONFIG_KWARGS
    assert config['ws_max_size'] == 1024 * 1024
    assert config['ws_ping_interval'] is None
    assert config['proxy_headers'] is False
    assert config['access_log'] is False
    assert config['lifespan'] == 'on'


def test_default_settings_follow_the_application():
    opts = parse_server_options({}, 'gunicorn')
    settings = gunicorn_settings(opts, Settings(max_message_size=1000))
    assert settings['bind'] == ['127.0.0.1:6543']
    assert settings['accesslog'] == '-'
    assert 'forwarded_allow_ips' not in settings
    worker = settings['worker_class']
    assert worker.shutdown_timeout == 5.0
    assert settings['graceful_timeout'] == 5 + KILL_MARGIN
    assert worker.CONFIG_KWARGS['ws_max_size'] == 4 * 1000 + 4096
    assert worker.CONFIG_KWARGS['ws_ping_interval'] == 20.0


def test_unix_socket_is_open_to_local_users_and_removed(tmp_path):
    check_unix_socket(tmp_path, 'gunicorn')


def gunicorn(worker: str, ini: str) -> ServerProcess:
    """Start gunicorn's command line serving the ini file ``ini``."""
    port = free_port()
    command = [
        sys.executable, '-m', 'gunicorn', '-k', worker,
        '--bind', f'127.0.0.1:{port}', '--no-control-socket',
        '--graceful-timeout', '5', 'pyramid_asgi_ws.paster:application',
    ]  # fmt: skip
    return ServerProcess(command, port, env={CONFIG_ENV: ini}, cwd=CHAT)


def test_an_application_that_cannot_load_stops_gunicorn(tmp_path):
    server = gunicorn(WORKER, str(tmp_path / 'missing.ini'))
    try:
        assert server.wait(60) == Arbiter.WORKER_BOOT_ERROR
    finally:
        server.stop()
    assert 'cannot load the application' in server.log()


@pytest.mark.parametrize(
    'worker',
    [
        WORKER,
        'uvicorn_worker.UvicornWorker',
    ],
)
def test_gunicorn_command_line(worker):
    """The documented command line; only our worker closes with 1001:
    uvicorn-worker's own worker closes open sockets with 1012."""
    server = gunicorn(worker, str(INI))
    try:
        server.wait_ready()
        server.wait_for_log('Application startup complete.')
        with socket(server, visitor(server.url, 'dee'), 'cli') as ws:
            next_of(ws, 'welcome')
            server.signal(signal.SIGTERM)
            code, _ = close_code(ws)
        expected = 1001 if worker == WORKER else 1012
        assert code == expected, server.log()
        assert server.wait(TIMEOUT + 5) == 0
    finally:
        server.stop()
        print(server.log())


def test_command_line_stop_is_bounded_by_the_application(tmp_path: Path):
    """From gunicorn's command line, a consumer that does not finish holds
    the stop for the application's ``asgi_ws.shutdown_timeout`` (2 s),
    not the worker's own default nor gunicorn's graceful timeout (5 s)."""
    ini = tmp_path / 'stubborn.ini'
    ini.write_text(
        '[app:main]\nuse = call:tests.fixtures.apps:stubborn_app\n'
        'asgi_ws.shutdown_timeout = 2\n'
    )
    server = gunicorn(WORKER, str(ini))
    try:
        server.wait_ready()
        server.wait_for_log('Application startup complete.')
        with websocket(f'{server.ws_url}/ws/stubborn') as ws:
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            assert close_frame(ws, timeout=4).code == 1001
            assert server.wait(TIMEOUT + 5) == 0, server.log()
            elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert 1.5 < elapsed < 4, server.log()
