"""In-process anchors of the bridge's hot path: ``python -m bench.hotpath``.

It prints, as JSON, CPU microseconds per call measured in this process
(pin it with ``taskset``, as :mod:`bench.run` does):

``pyramid``
    Pyramid's own cost for the hello view: the WSGI app of
    :func:`bench.apps.wsgi` called directly with a prepared environ, its
    body joined and its iterable closed, as a server would.
``bridge``
    The same requests through ``make_asgi_app()`` driven by a fake server
    (64 at a time): the bridge's cost without any server's, plus
    Pyramid's.
``handoff``
    What bounds the bridge: an empty call sent from the event loop to
    the bridge's thread pool and its answer sent back (64 at a time),
    the two crossings every request makes.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import typing

SCOPE: dict[str, typing.Any] = {
    'type': 'http',
    'asgi': {'version': '3.0', 'spec_version': '2.3'},
    'http_version': '1.1',
    'server': ('127.0.0.1', 8000),
    'client': ('127.0.0.1', 50000),
    'scheme': 'http',
    'method': 'GET',
    'root_path': '',
    'path': '/',
    'raw_path': b'/',
    'query_string': b'',
    'headers': [
        (b'host', b'127.0.0.1:8000'),
        (b'user-agent', b'wrk'),
        (b'accept', b'*/*'),
    ],
}
REQUEST = {'type': 'http.request', 'body': b'', 'more_body': False}
CONCURRENCY = 64


def pyramid(count: int) -> float:
    """CPU µs per hello request of the Pyramid WSGI app called directly."""
    from bench import apps

    app = apps.wsgi()
    base = {
        'REQUEST_METHOD': 'GET',
        'SCRIPT_NAME': '',
        'PATH_INFO': '/',
        'QUERY_STRING': '',
        'SERVER_NAME': '127.0.0.1',
        'SERVER_PORT': '8000',
        'SERVER_PROTOCOL': 'HTTP/1.1',
        'HTTP_HOST': '127.0.0.1:8000',
        'wsgi.version': (1, 0),
        'wsgi.url_scheme': 'http',
        'wsgi.input': io.BytesIO(),
        'wsgi.errors': sys.stderr,
        'wsgi.multithread': True,
        'wsgi.multiprocess': False,
        'wsgi.run_once': False,
    }

    def start_response(status: str, headers: list, exc_info: object = None):
        return None

    def once() -> None:
        iterable = app(dict(base), start_response)
        b''.join(iterable)
        close = getattr(iterable, 'close', None)
        if close is not None:
            close()

    for _ in range(1000):
        once()
    started = time.process_time()
    for _ in range(count):
        once()
    return (time.process_time() - started) / count * 1e6


async def _concurrently(
    count: int, one: typing.Callable[[], typing.Awaitable[None]]
) -> float:
    async def worker(calls: int) -> None:
        for _ in range(calls):
            await one()

    await asyncio.gather(*(worker(50) for _ in range(CONCURRENCY)))
    started = time.process_time()
    await asyncio.gather(
        *(worker(count // CONCURRENCY) for _ in range(CONCURRENCY))
    )
    done = count // CONCURRENCY * CONCURRENCY
    return (time.process_time() - started) / done * 1e6


async def _bridge(count: int) -> float:
    from bench import apps

    app = apps.bridge()

    async def send(message: dict[str, typing.Any]) -> None:
        pass

    async def one() -> None:
        received = False

        async def receive() -> dict[str, typing.Any]:
            nonlocal received
            if not received:
                received = True
                return REQUEST
            await asyncio.Event().wait()  # pragma: no cover - cancelled
            raise AssertionError  # pragma: no cover

        await app(dict(SCOPE), receive, send)

    return await _concurrently(count, one)


async def _handoff(count: int) -> float:
    from pyramid_asgi_ws.wsgi.pool import Pool

    pool = Pool(32)

    def nothing() -> None:
        pass

    async def one() -> None:
        await pool.call(nothing)

    try:
        return await _concurrently(count, one)
    finally:
        pool.close()


def run(smoke: bool = False) -> dict[str, float]:
    """The three figures, in CPU µs per call."""
    count = 5000 if smoke else 50000
    try:
        import uvloop

        arun: typing.Callable[..., typing.Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn
        arun = asyncio.run
    return {
        'pyramid': pyramid(count),
        'bridge': arun(_bridge(count)),
        'handoff': arun(_handoff(count)),
    }


if __name__ == '__main__':
    print(json.dumps(run('--smoke' in sys.argv)))
