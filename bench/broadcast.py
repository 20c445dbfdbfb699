"""Group broadcast latency: ``python -m bench.broadcast [--smoke]``.

One message published to a group of 1,000 sockets, repeated; each
recipient's delivery latency is the time from just before the server
publishes to the moment the client's event loop reads the frame (both
read ``time.monotonic()``, one clock for the whole machine). Two
scenarios: one worker with the ``memory://`` backend, and two worker
processes sharing a ``redis-server`` (half the sockets on each; the
publisher on the first). Each runs as the servers are, then again after
the servers called ``gc.freeze()``, to tell the collector's pauses apart.

The servers (and Redis) run on one core, the clients on the other, as in
:mod:`bench.run`. :func:`run` returns one dict a scenario, for the runner.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
import contextlib
import gc
import json
import os
import shutil
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # pragma: no cover - run as a script
    sys.path.insert(0, ROOT)

from tests.redis_support import RedisServer  # noqa: E402
from tests.support import ServerProcess, free_port  # noqa: E402

GROUP = 'bench'
FULL = {'sockets': 1000, 'messages': 30}
SMOKE = {'sockets': 50, 'messages': 3}
SCENARIOS = [
    ('memory', 'one worker, memory://'),
    ('redis', 'two workers, redis://'),
]
#: p99 aims on a 2-core machine, in milliseconds.
TARGETS = {'memory': 50.0, 'redis': 100.0}


# -- the application the servers run ---------------------------------------


def make_app() -> Any:
    """``/sub`` joins the group and waits; each text message on ``/pub``
    publishes ``{"n": <it>, "t": <monotonic time>}`` to the group."""
    from pyramid.config import Configurator

    async def sub(ws: Any) -> None:
        await ws.accept()
        await ws.join(GROUP)
        async for _ in ws.iter_text():
            pass

    async def pub(ws: Any) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            if text == 'gc.freeze':
                # Move every object alive now out of the collector's reach:
                # its full passes over 1,000 connections' objects are
                # what delays the slowest rounds.
                gc.collect()
                gc.freeze()
            else:
                await ws.broadcast(GROUP, {'n': text, 't': time.monotonic()})
            await ws.send_text(text)

    settings = {
        'asgi_ws.broadcast_url': os.environ.get(
            'BENCH_BROADCAST_URL', 'memory://'
        ),
        'asgi_ws.check_origin': 'false',
        'asgi_ws.send_queue_size': '1024',
        # bench.history measures the fan-out with history on too
        'asgi_ws.history_size': os.environ.get('BENCH_HISTORY_SIZE', ''),
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_asgi_consumer('/sub', sub)
        config.add_asgi_consumer('/pub', pub)
        return config.make_asgi_app()


# -- a light subscriber: stamps frames as they arrive ------------------------


class Subscriber(asyncio.Protocol):
    """A bare WebSocket client that records ``(arrival, payload)`` for
    each text frame, so that 1,000 of them in one process cost little."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = asyncio.get_running_loop().create_future()
        self.buffer = b''
        self.frames: list[tuple[float, bytes]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(
            b'GET /sub HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n'
            b'Upgrade: websocket\r\nConnection: Upgrade\r\n'
            b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
            b'Sec-WebSocket-Version: 13\r\n\r\n' % self.port
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.open.done():
            head, sep, rest = self.buffer.partition(b'\r\n\r\n')
            if not sep:
                return
            if not head.startswith(b'HTTP/1.1 101'):
                self.open.set_exception(ConnectionError(head[:80]))
                return
            self.open.set_result(None)
            self.buffer = rest
        self._frames(now)

    def _frames(self, now: float) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            start = 2
            if length == 126:
                length, start = int.from_bytes(buffer[2:4], 'big'), 4
            elif length == 127:
                length, start = int.from_bytes(buffer[2:10], 'big'), 10
            if len(buffer) < start + length:
                break
            if opcode == 1:
                self.frames.append((now, buffer[start : start + length]))
            buffer = buffer[start + length :]
        self.buffer = buffer

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError('closed'))


async def subscribe(port: int, count: int) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    subscribers = []
    for _ in range(count):
        _, protocol = await loop.create_connection(
            lambda: Subscriber(port), '127.0.0.1', port
        )
        subscribers.append(protocol)
    await asyncio.wait_for(asyncio.gather(*(s.open for s in subscribers)), 60)
    return subscribers


async def measure(
    ports: list[int], sockets: int, messages: int, freeze: bool = False
) -> dict[str, Any]:
    """Open ``sockets`` subscribers spread over ``ports``, publish
    ``messages`` times through the first port, and sum up latencies.
    With ``freeze``, every server first calls ``gc.freeze()``."""
    from websockets.asyncio.client import connect

    subscribers: list[Subscriber] = []
    for index, port in enumerate(ports):
        share = sockets // len(ports) + (index < sockets % len(ports))
        subscribers += await subscribe(port, share)
    # Joining happens right after the handshake: give it a moment.
    await asyncio.sleep(0.5)
    for port in ports if freeze else ():
        async with connect(f'ws://127.0.0.1:{port}/pub') as control:
            await control.send('gc.freeze')
            await asyncio.wait_for(control.recv(), 10)
    latencies: list[float] = []
    received = 0
    async with connect(
        f'ws://127.0.0.1:{ports[0]}/pub', compression=None
    ) as publisher:
        for number in range(messages + 1):  # the first one warms up
            for subscriber in subscribers:
                subscriber.frames.clear()
            await publisher.send(str(number))
            await asyncio.wait_for(publisher.recv(), 10)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and not all(
                s.frames for s in subscribers
            ):
                await asyncio.sleep(0.005)
            if number == 0:
                continue
            for subscriber in subscribers:
                for arrival, payload in subscriber.frames:
                    message = json.loads(payload)
                    received += 1
                    latencies.append((arrival - message['t']) * 1000)
            await asyncio.sleep(0.05)
    for subscriber in subscribers:
        subscriber.transport.close()
    latencies.sort()
    return {
        'sockets': sockets,
        'messages': messages,
        'expected': sockets * messages,
        'received': received,
        'p50_ms': round(percentile(latencies, 50), 2),
        'p99_ms': round(percentile(latencies, 99), 2),
        'max_ms': round(latencies[-1], 2) if latencies else None,
    }


def percentile(values: list[float], pct: float) -> float:
    """The ``pct``-th percentile of sorted ``values`` (nearest rank)."""
    if not values:
        return float('nan')
    rank = max(0, min(len(values) - 1, round(pct / 100 * len(values)) - 1))
    return values[rank]


# -- servers ------------------------------------------------------------


def cores() -> tuple[list[str], set[int] | None]:
    """A ``taskset`` prefix for the servers and the client's CPU set."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or not shutil.which('taskset'):
        return [], None
    return ['taskset', '-c', str(cpus[0])], {cpus[1]}


@contextlib.contextmanager
def processes(
    count: int,
    url: str,
    env: dict[str, str] | None = None,
    app: str = 'bench.broadcast:make_app',
) -> Iterator[list[ServerProcess]]:
    """``count`` uvicorn processes serving the factory ``app`` with the
    backend ``url`` (and ``env``), pinned to the server core."""
    prefix, _ = cores()
    started: list[ServerProcess] = []
    try:
        for _ in range(count):
            port = free_port()
            command = prefix + [
                sys.executable, '-m', 'uvicorn', '--factory',
                app, '--host', '127.0.0.1',
                '--port', str(port), '--log-level', 'warning',
                '--no-access-log', '--backlog', '4096',
            ]  # fmt: skip
            environ = {'BENCH_BROADCAST_URL': url, **(env or {})}
            server = ServerProcess(command, port, environ)
            started.append(server)
            server.wait_ready(30)
        yield started
    finally:
        for server in started:
            server.stop()


@contextlib.contextmanager
def workers(
    count: int, url: str, env: dict[str, str] | None = None
) -> Iterator[list[int]]:
    """``count`` uvicorn processes serving :func:`make_app` with ``url``."""
    with processes(count, url, env) as started:
        yield [server.port for server in started if server.port]


@contextlib.contextmanager
def redis_on_server_core() -> Iterator[RedisServer]:
    with RedisServer() as redis:
        prefix, _ = cores()
        if prefix and redis.proc is not None:
            os.sched_setaffinity(redis.proc.pid, {int(prefix[-1])})
        yield redis


def run_client(
    ports: list[int], p: dict[str, int], freeze: bool
) -> dict[str, Any]:
    """Measure on uvloop when installed: the client must not be what is
    slow (asyncio's own loop adds tens of milliseconds at 1,000 sockets)."""
    coroutine = measure(ports, p['sockets'], p['messages'], freeze)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


@contextlib.contextmanager
def servers(
    backend: str, env: dict[str, str] | None = None
) -> Iterator[list[int]]:
    """One worker on ``memory://``, or two sharing a new Redis."""
    if backend == 'memory':
        with workers(1, 'memory://', env) as ports:
            yield ports
        return
    with (
        redis_on_server_core() as redis,
        workers(2, redis.url, env) as ports,
    ):
        yield ports


def run(smoke: bool = False) -> list[dict[str, Any]]:
    """Run every scenario, each on fresh servers; return one row each.

    Each scenario runs twice: as the servers are, and after they called
    ``gc.freeze()`` (see ``docs/groups.rst``), which shows how much of the
    tail is the garbage collector's.
    """
    p = SMOKE if smoke else FULL
    _, client_cpus = cores()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    rows = []
    for backend, name in SCENARIOS:
        for freeze in (False, True):
            label = f'{name}{", gc.freeze()" if freeze else ""}'
            if backend == 'redis' and not shutil.which('redis-server'):
                rows.append({'name': label, 'error': 'no redis-server'})
                continue
            with servers(backend) as ports:
                result = run_client(ports, p, freeze)
            rows.append(row(label, backend, len(ports), result, freeze))
    return rows


def row(
    name: str,
    backend: str,
    count: int,
    result: dict[str, Any],
    freeze: bool,
) -> dict[str, Any]:
    target = TARGETS[backend]
    return {
        'name': f'broadcast: {name}',
        'workers': count,
        'gc_freeze': freeze,
        **result,
        'target_p99_ms': target,
        'met': result['p99_ms'] < target,
        'ok': result['received'] == result['expected'],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.broadcast')
    parser.add_argument('--smoke', action='store_true')
    args = parser.parse_args(argv)
    rows = run(args.smoke)
    for item in rows:
        print(json.dumps(item))
    failed = [item for item in rows if not item.get('ok')]
    if failed:
        sys.exit(1)


if __name__ == '__main__':
    main()
