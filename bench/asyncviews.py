"""Async views: ``python -m bench.asyncviews [--smoke]``.

The hello view three ways on the same uvicorn (one core, ``wrk`` on the
other, as :mod:`bench.run` does): Pyramid's synchronous view through the
bridge, the same view as an ``async def`` (its coroutine runs on the
event loop while the router waits in a greenlet of its pool thread), and
the same endpoint in Starlette. The columns take turns, ``rounds`` times,
and the medians are kept: on a busy machine single runs move by 10 %.

The servers import their applications from :mod:`bench.apps`, which
delegates to :func:`async_app` and :func:`starlette_app` here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import Any

HELLO = b'Hello, world!'
#: (column, factory in bench.apps)
COLUMNS = [
    ('sync view', 'bridge'),
    ('async view', 'async_bridge'),
    ('Starlette', 'starlette'),
]
FULL = {'seconds': 10, 'connections': 64, 'rounds': 3}
SMOKE = {'seconds': 1, 'connections': 16, 'rounds': 1}


# -- the applications the servers run ---------------------------------------


def async_app() -> Any:
    """Pyramid's hello view as an ``async def``, through the bridge."""
    from pyramid.config import Configurator
    from pyramid.response import Response

    async def hello(request: Any) -> Any:
        return Response(HELLO, content_type='text/plain')

    config = Configurator(settings={'asgi_ws.threads': '32'})
    config.include('pyramid_asgi_ws')
    config.add_route('hello', '/')
    config.add_view(hello, route_name='hello')
    return config.make_asgi_app()


def starlette_app() -> Any:
    """The same endpoint in Starlette."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> Any:
        return PlainTextResponse(HELLO)

    return Starlette(routes=[Route('/', hello)])


# -- the measurement --------------------------------------------------------


def run(smoke: bool = False) -> list[dict[str, Any]]:
    """Serve each column in turn under ``wrk``; one row a column."""
    from bench.run import Server, wrk

    p = SMOKE if smoke else FULL
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in COLUMNS}
    for _ in range(p['rounds']):
        for name, factory in COLUMNS:
            server = Server('uvicorn', factory)
            try:
                result = wrk(server, p['seconds'], p['connections'])
                result['errors'] = server.errors()
            finally:
                server.stop()
            runs[name].append(result)
    rows = []
    for name, results in runs.items():
        rows.append(
            {
                'column': name,
                'rps': statistics.median(r['rps'] for r in results),
                'cpu_us': statistics.median(r['cpu_us'] for r in results),
                'non2xx': sum(r['non2xx'] for r in results),
                'ok': not any(
                    r['non2xx'] or r['socket_errors'] or r['errors']
                    for r in results
                ),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Requests per second and server CPU per request, one line a column,
    with the CPU as a ratio to the sync view's in the same run."""
    anchor = rows[0]['cpu_us']
    lines = [
        'Hello view, sync, async def and Starlette (uvicorn, wrk)',
        f'{"column":<12} {"req/s":>9} {"CPU µs/req":>11} {"x sync":>7}',
    ]
    for row in rows:
        lines.append(
            f'{row["column"]:<12} {row["rps"]:>9.0f} {row["cpu_us"]:>11.1f}'
            f' {row["cpu_us"] / anchor:>7.2f}'
            + ('' if row['ok'] else f'  errors ({row["non2xx"]} non-2xx)')
        )
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.asyncviews')
    parser.add_argument('--smoke', action='store_true')
    args = parser.parse_args(argv)
    from bench.run import CLIENT_CORE, raise_nofile

    raise_nofile()
    if CLIENT_CORE:
        os.sched_setaffinity(0, {int(CLIENT_CORE[-1])})
    rows = run(args.smoke)
    print(table(rows))
    if not all(row['ok'] for row in rows):
        sys.exit(1)


if __name__ == '__main__':
    main()
