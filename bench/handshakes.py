"""Handshakes per second: ``python -m bench.handshakes [--smoke]``.

Clients open a WebSocket, read the consumer's first message and close,
over and over, for a few seconds. Two consumers: ``/open`` needs no
permission (nothing of the app runs), ``/policy`` needs one from a
security policy whose ``permits`` takes 5 ms (``time.sleep``, as a user
query would). Where that policy runs decides the rate: on the event
loop at most 200 handshakes a second get through one worker; in the
thread pool they overlap.

The server runs on one core, the clients on the other, as in
:mod:`bench.run`. ``--tree DIR`` serves the ``pyramid_asgi_ws`` of
another checkout (an older commit, say) with this module's application:
the server imports this file as a top-level module, so it imports
nothing of ``bench`` or ``tests`` at module level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
#: How long the security policy takes per check, in seconds.
POLICY_DELAY = 0.005
FULL = {'seconds': 5.0, 'clients': 32}
SMOKE = {'seconds': 1.0, 'clients': 8}
SCENARIOS = [
    ('open', 'no permission, no app code'),
    ('policy', f'{POLICY_DELAY * 1000:.0f} ms security policy'),
]


# -- the application the server runs ---------------------------------------


class SlowPolicy:
    """Everybody may connect, but checking takes :data:`POLICY_DELAY`."""

    def identity(self, request: Any) -> str:
        return 'user'

    def authenticated_userid(self, request: Any) -> str:
        return 'user'

    def permits(self, request: Any, context: Any, permission: str) -> bool:
        time.sleep(POLICY_DELAY)
        return True


def make_app() -> Any:
    """``/open`` and ``/policy`` accept and send ``hi``."""
    from pyramid.config import Configurator

    async def hi(ws: Any) -> None:
        await ws.accept()
        await ws.send_text('hi')
        async for _ in ws.iter_text():
            pass

    config = Configurator(settings={'asgi_ws.check_origin': 'false'})
    config.include('pyramid_asgi_ws')
    config.set_security_policy(SlowPolicy())
    config.add_asgi_consumer('/open', hi)
    config.add_asgi_consumer('/policy', hi, name='policy', permission='go')
    return config.make_asgi_app()


# -- the clients -------------------------------------------------------------


async def measure(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """Open and close sockets to ``url`` from ``clients`` tasks."""
    from websockets.asyncio.client import connect

    took: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        clock = time.perf_counter
        while clock() < deadline:
            started = clock()
            try:
                async with connect(
                    url, compression=None, open_timeout=30
                ) as ws:
                    await asyncio.wait_for(ws.recv(), 30)
            except Exception as exc:  # counted, and reported
                errors.append(repr(exc))
                continue
            took.append(clock() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    took.sort()
    return {
        'handshakes': len(took),
        'per_second': round(len(took) / elapsed, 1),
        'p50_ms': round(took[len(took) // 2] * 1000, 2) if took else None,
        'p99_ms': round(took[int(len(took) * 0.99)] * 1000, 2)
        if took
        else None,
        'errors': len(errors),
        'first_error': errors[0] if errors else None,
    }


def run_client(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """Measure on uvloop when installed, so that the client is not what is
    slow."""
    coroutine = measure(url, clients, seconds)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def run(smoke: bool = False, tree: str = ROOT) -> list[dict[str, Any]]:
    """Serve :func:`make_app` with ``tree``'s package; one row a scenario."""
    if ROOT not in sys.path:  # pragma: no cover - run as a script
        sys.path.insert(0, ROOT)
    from bench.broadcast import cores
    from tests.support import ServerProcess, free_port

    p = SMOKE if smoke else FULL
    prefix, client_cpus = cores()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    port = free_port()
    command = prefix + [
        sys.executable, '-m', 'uvicorn', '--factory', '--app-dir', HERE,
        'handshakes:make_app', '--host', '127.0.0.1', '--port', str(port),
        '--log-level', 'warning', '--no-access-log', '--backlog', '4096',
    ]  # fmt: skip
    server = ServerProcess(command, port, {'PYTHONPATH': tree}, cwd=tree)
    rows = []
    try:
        server.wait_ready(30)
        for path, name in SCENARIOS:
            url = f'ws://127.0.0.1:{port}/{path}'
            run_client(url, p['clients'], 0.5)  # warm up
            result = run_client(url, p['clients'], p['seconds'])
            rows.append(
                {
                    'name': f'handshakes: {name}',
                    'tree': tree,
                    **result,
                    'ok': result['errors'] == 0 and result['handshakes'] > 0,
                }
            )
    finally:
        server.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """One line per scenario: handshakes per second and their latency."""
    lines = [
        'WebSocket handshakes (open, read one message, close; uvicorn)',
        f'{"scenario":<44} {"per s":>8} {"p50 ms":>7} {"p99 ms":>7}',
    ]
    for item in rows:
        lines.append(
            f'{item["name"]:<44} {item["per_second"]:>8.1f}'
            f' {item["p50_ms"]:>7} {item["p99_ms"]:>7}'
            + ('' if item['ok'] else f'  errors: {item["first_error"]}')
        )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.handshakes')
    parser.add_argument('--smoke', action='store_true')
    parser.add_argument(
        '--tree',
        default=ROOT,
        help='the checkout whose pyramid_asgi_ws the server runs',
    )
    args = parser.parse_args(argv)
    rows = run(args.smoke, os.path.abspath(args.tree))
    print(table(rows))
    for item in rows:
        print(json.dumps(item))
    if not all(item['ok'] for item in rows):
        sys.exit(1)


if __name__ == '__main__':
    main()
