"""Group history: ``python -m bench.history [--smoke]``.

Two measures, on ``memory://`` (one worker) and ``redis://`` (two
workers sharing a ``redis-server`` for the fan-out, one for the replay):

- **replay**: a client saw message P, left, and 10,000 messages were
  published; it comes back with ``since=P``. Reported: the time from its
  connect to the last of the 10,000 replayed messages, the server's peak
  RSS above its level before the replay, and as the anchor the time the
  same socket took to receive the same 10,000 messages live (the
  server publishing them in a loop), with the ratio of the two;
- **fan-out**: the p99 latency of one message to 1,000 sockets
  (:func:`bench.broadcast.measure`) with history off and on (every group
  keeping 10,000 messages), with the ratio on/off.

The servers (and Redis) run on one core, the clients on the other, as in
:mod:`bench.broadcast`. :func:`run` returns one dict a row.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
import contextlib
import json
import os
import shutil
import sys
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # pragma: no cover - run as a script
    sys.path.insert(0, ROOT)

import bench.broadcast as fanout  # noqa: E402
from tests.support import ServerProcess  # noqa: E402

GROUP = 'history'
FULL = {'missed': 10_000, 'sockets': 1000, 'messages': 30}
SMOKE = {'missed': 500, 'sockets': 50, 'messages': 3}
BACKENDS = ('memory', 'redis')
MiB = 1024 * 1024


# -- the application of the replay -----------------------------------------


def make_app() -> Any:
    """``/sub?since=P`` joins the group (from ``P``) and forwards each
    message with its position as ``{"p": ..., "n": ...}``; each text
    ``N`` on ``/pub`` publishes ``{"n": 0}`` ... ``{"n": N-1}`` in a loop
    and answers ``done``."""
    from pyramid.config import Configurator

    async def sub(ws: Any) -> None:
        await ws.accept()

        def forward(group: str, message: Any, position: str) -> None:
            ws.push({'p': position, 'n': message['n']})

        ws.on_group_message = forward
        await ws.join(GROUP, since=ws.request.params.get('since'))
        async for _ in ws.iter_text():
            pass

    async def pub(ws: Any) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            for number in range(int(text)):
                await ws.broadcast(GROUP, {'n': number})
            await ws.send_text('done')

    settings = {
        'asgi_ws.broadcast_url': os.environ['BENCH_BROADCAST_URL'],
        'asgi_ws.check_origin': 'false',
        'asgi_ws.history_size': os.environ['BENCH_HISTORY_SIZE'],
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_asgi_consumer('/sub', sub)
        config.add_asgi_consumer('/pub', pub)
        return config.make_asgi_app()


def rss(pid: int) -> int:
    """The resident set size of ``pid``, in bytes."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - every Linux process has one


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[dict[str, int]]:
    """Sample the RSS of ``pid`` every 5 ms meanwhile: ``base``, ``peak``."""
    result = {'base': rss(pid), 'peak': 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            result['peak'] = max(result['peak'], rss(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result['peak'] = max(result['peak'], rss(pid))


async def receive(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` group messages."""
    return [
        json.loads(await asyncio.wait_for(ws.recv(), 60)) for _ in range(count)
    ]


async def replay(server: ServerProcess, missed: int) -> dict[str, Any]:
    """Anchor (``missed`` messages live), then the replay of as many."""
    from websockets.asyncio.client import connect

    base = f'ws://127.0.0.1:{server.port}'
    options = {'max_queue': None, 'compression': None}
    async with connect(base + '/pub', **options) as publisher:
        async with connect(base + '/sub', **options) as live:
            await asyncio.sleep(0.2)  # joined right after the handshake
            started = time.monotonic()
            await publisher.send(str(missed))
            seen = await receive(live, missed)
            live_s = time.monotonic() - started
            await asyncio.wait_for(publisher.recv(), 60)
        since = seen[-1]['p']
        await publisher.send(str(missed))  # nobody listening
        await asyncio.wait_for(publisher.recv(), 120)
    with peak_rss(server.pid) as memory:
        started = time.monotonic()
        async with connect(f'{base}/sub?since={since}', **options) as back:
            got = await receive(back, missed)
            replay_s = time.monotonic() - started
    numbers = [item['n'] for item in got]
    return {
        'missed': missed,
        'replay_s': round(replay_s, 3),
        'live_s': round(live_s, 3),
        'ratio': round(replay_s / live_s, 2),
        'rss_peak_mib': round((memory['peak'] - memory['base']) / MiB, 1),
        'ok': numbers == list(range(missed)),
    }


def run_client(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


@contextlib.contextmanager
def backend_url(backend: str) -> Iterator[str]:
    if backend == 'memory':
        yield 'memory://'
        return
    with fanout.redis_on_server_core() as redis:
        yield redis.url


def run(smoke: bool = False) -> list[dict[str, Any]]:
    """The replay on each backend, then the fan-out with history off and
    on; one row each."""
    p = SMOKE if smoke else FULL
    _, client_cpus = fanout.cores()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    rows: list[dict[str, Any]] = []
    usable = [
        b for b in BACKENDS if b == 'memory' or shutil.which('redis-server')
    ]
    env = {'BENCH_HISTORY_SIZE': str(p['missed'] * 2 + 100)}
    for backend in usable:
        with (
            backend_url(backend) as url,
            fanout.processes(1, url, env, 'bench.history:make_app') as (
                server,
            ),
        ):
            result = run_client(replay(server, p['missed']))
        rows.append({'name': f'history: replay, {backend}://', **result})
    fan = {'sockets': p['sockets'], 'messages': p['messages']}
    for backend in usable:
        results = {}
        for history in ('off', 'on'):
            size = {'on': str(p['missed'])}.get(history, '')
            with fanout.servers(
                backend, {'BENCH_HISTORY_SIZE': size}
            ) as ports:
                results[history] = fanout.run_client(ports, fan, False)
        off, on = results['off'], results['on']
        rows.append(
            {
                'name': f'history: fan-out, {backend}://',
                'sockets': p['sockets'],
                'p99_off_ms': off['p99_ms'],
                'p99_on_ms': on['p99_ms'],
                'ratio': round(on['p99_ms'] / off['p99_ms'], 2),
                'ok': all(r['received'] == r['expected'] for r in (off, on)),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows, as the runner prints them."""
    lines = ['group history (replay of missed messages; fan-out on/off)']
    for item in rows:
        verdict = '' if item['ok'] else '  WRONG'
        if 'replay_s' in item:
            lines.append(
                f'{item["name"]:<32} {item["missed"]:>6} missed: replay '
                f'{item["replay_s"]:.2f} s, live {item["live_s"]:.2f} s '
                f'(x{item["ratio"]}), peak RSS +{item["rss_peak_mib"]} MiB'
                + verdict
            )
        else:
            lines.append(
                f'{item["name"]:<32} {item["sockets"]:>6} sockets: p99 off '
                f'{item["p99_off_ms"]:.1f} ms, on {item["p99_on_ms"]:.1f} ms '
                f'(x{item["ratio"]})' + verdict
            )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.history')
    parser.add_argument('--smoke', action='store_true')
    args = parser.parse_args(argv)
    rows = run(args.smoke)
    print(table(rows))
    for item in rows:
        print(json.dumps(item))
    if not all(item['ok'] for item in rows):
        sys.exit(1)


if __name__ == '__main__':
    main()
