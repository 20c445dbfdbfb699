"""The WebSocket load generator, a separate process:
``python -m bench.wsclient echo URL CONNECTIONS SECONDS`` prints a JSON
result; ``python -m bench.wsclient idle URL CONNECTIONS`` prints
``READY <n>`` once every connection is open and holds them until its
stdin closes."""

import asyncio
import json
import resource
import sys
import time
import typing

from websockets.asyncio.client import connect

MESSAGE = 'x' * 32


def raise_nofile() -> None:
    """Raise the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _open(url: str) -> typing.Any:
    return await connect(
        url, ping_interval=None, compression=None, open_timeout=60
    )


async def echo(url: str, connections: int, seconds: float) -> dict:
    sockets = [await _open(url) for _ in range(connections)]
    rtts: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(ws: typing.Any) -> int:
        count = 0
        clock = time.perf_counter
        while True:
            sent = clock()
            if sent >= deadline:
                return count
            await ws.send(MESSAGE)
            await ws.recv()
            rtts.append(clock() - sent)
            count += 1

    counts = await asyncio.gather(*(loop(ws) for ws in sockets))
    elapsed = time.perf_counter() - start
    for ws in sockets:
        await ws.close()
    rtts.sort()
    p99 = rtts[int(len(rtts) * 0.99)] if rtts else float('nan')
    return {
        'messages': sum(counts),
        'seconds': elapsed,
        'p99_ms': p99 * 1000,
    }


async def idle(url: str, connections: int) -> None:
    sockets: list[typing.Any] = []
    limit = asyncio.Semaphore(200)

    async def one() -> None:
        async with limit:
            sockets.append(await _open(url))

    await asyncio.gather(*(one() for _ in range(connections)))
    print('READY', len(sockets), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for ws in sockets:
        ws.transport.abort()


def main(argv: list[str]) -> None:
    raise_nofile()
    run: typing.Callable[..., typing.Any] = asyncio.run
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        pass
    mode, url, connections = argv[0], argv[1], int(argv[2])
    if mode == 'echo':
        result = run(echo(url, connections, float(argv[3])))
        print(json.dumps(result), flush=True)
    else:
        run(idle(url, connections))


if __name__ == '__main__':
    main(sys.argv[1:])
