"""A real nginx, configured from docs/deployment.rst, in front of pserve."""

from __future__ import annotations

import json
import os
from pathlib import Path
import re
import shutil
import textwrap
import urllib.request

import pytest

from tests.fixtures.deploy import (
    echo_once,
    myproject_ini,
    pserve,
    wait_for_unix,
    websocket,
)
from tests.support import ROOT, ServerProcess, free_port

DOCS = ROOT / 'docs' / 'deployment.rst'
MAIN = """\
worker_processes 1;
{user}pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{site}
}}
"""


def nginx_blocks() -> list[str]:
    """Return the ``code-block:: nginx`` blocks of the deployment docs."""
    pattern = r'\.\. code-block:: nginx\n\n((?:    .*\n|\n)+)'
    return [textwrap.dedent(b) for b in re.findall(pattern, DOCS.read_text())]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f'{old!r} is not in the documented config'
    return text.replace(old, new)


def nginx_config(tmp: Path, listen: int, upstream: str) -> Path:
    """Write nginx.conf from the docs: the site, moved to ``tmp``."""
    site, tcp_upstream = nginx_blocks()[:2]  # the site, its TCP upstream
    if upstream.startswith('unix:'):
        site = replace_once(site, 'unix:/run/myproject/asgi.sock', upstream)
    else:
        site = re.sub(r'upstream myproject \{.*?\}\n', tcp_upstream, site,
                      flags=re.S)  # fmt: skip
        site = replace_once(site, '127.0.0.1:6543', upstream)
    site = replace_once(site, 'listen 80;', f'listen 127.0.0.1:{listen};')
    # workers must reach the socket in the test's private directory
    user = 'user root;\n' if os.geteuid() == 0 else ''
    path = tmp / 'nginx.conf'
    path.write_text(MAIN.format(user=user, tmp=tmp, site=site))
    return path


def start_nginx(tmp: Path, conf: Path, port: int) -> ServerProcess:
    nginx = shutil.which('nginx') or '/usr/sbin/nginx'
    assert os.path.exists(nginx), 'nginx is missing: run scripts/setup.sh'
    command = [
        nginx, '-p', str(tmp), '-e', str(tmp / 'error.log'),
        '-c', str(conf), '-g', 'daemon off;',
    ]  # fmt: skip
    return ServerProcess(command, port).wait_ready()


@pytest.mark.parametrize('transport', ['unix', 'tcp'])
def test_http_and_websocket_through_nginx(tmp_path, transport):
    port = free_port()
    if transport == 'unix':
        sock = tmp_path / 'asgi.sock'
        upstream = f'unix:{sock}'
        # the [server:main] the docs show for a unix socket
        options = {'unix_socket': str(sock), 'forwarded_allow_ips': '*'}
    else:
        app_port = free_port()
        upstream = f'127.0.0.1:{app_port}'
        options = {'listen': upstream, 'forwarded_allow_ips': '127.0.0.1'}
    ini = myproject_ini(tmp_path, proxy_headers='true', **options)
    app = pserve(ini)
    nginx = None
    try:
        if transport == 'unix':
            wait_for_unix(sock, app)
        else:
            app.port = app_port
            app.wait_ready()
        nginx = start_nginx(tmp_path, nginx_config(tmp_path, port, upstream),
                            port)  # fmt: skip
        base = f'127.0.0.1:{port}'
        request = urllib.request.Request(
            f'http://{base}/', headers={'X-Forwarded-For': '203.0.113.9'}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
        # Host kept its port; X-Forwarded-For reached Pyramid, trusted
        assert body == {
            'project': 'myproject',
            'client_addr': '203.0.113.9',
            'url': f'http://{base}/',
        }
        # the Origin check passes: the app sees the browser's own origin
        with websocket(f'ws://{base}/ws/echo', origin=f'http://{base}') as ws:
            echo_once(ws, 'through nginx')
            echo_once(ws, 'x' * 100_000)
    finally:
        if nginx is not None:
            nginx.stop()
        app.stop()
    assert (
        '"GET /ws/echo HTTP/1.1" 101' in (tmp_path / 'access.log').read_text()
    )
    assert 'WebSocket /ws/echo' in app.log()
    assert app.proc.returncode == 0, app.log()
    if transport == 'unix':
        assert not sock.exists()
