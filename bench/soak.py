"""The soak run: ``python -m bench.soak [--smoke] [--cycles N]``.

One uvicorn worker (on the server core) serves :func:`bench.apps.soak`:
clients (on the other core) connect a WebSocket, send one message, read
its echo and close, over and over, while the consumer joins a group,
echoes and leaves.  Before the cycles (after a warm-up), half-way and at
the end, with no socket open, the bench-only consumer at
``/_soak/stats`` reports the worker's RSS, open descriptors, threads,
asyncio tasks, open WebSockets, group tables and live objects.  All
must stay flat: counts equal, RSS and objects within :data:`TOLERANCE`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import typing
import urllib.request

FULL = {'cycles': 100000, 'clients': 32, 'warm': 2000}
SMOKE = {'cycles': 2000, 'clients': 16, 'warm': 200}
#: How far each figure may move between the first sample and the others;
#: the counts not named here may not move at all.
TOLERANCE = {'rss_kib': 4096, 'objects': 1000}
#: The figures of a sample, in the table's order.
FIGURES = [
    'rss_kib',
    'fds',
    'threads',
    'tasks',
    'sockets',
    'groups',
    'members',
    'channels',
    'presence',
    'objects',
]
MESSAGE = b'soak'
MASK = b'\x01\x02\x03\x04'


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (short payloads only)."""
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + MASK + masked


TEXT = _frame(0x1, MESSAGE)
CLOSE = _frame(0x8, (1000).to_bytes(2, 'big'))


def _handshake(port: int) -> bytes:
    key = base64.b64encode(b'bench-soak-key!!').decode()
    return (
        f'GET /soak HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n'
        'Upgrade: websocket\r\nConnection: Upgrade\r\n'
        f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n'
    ).encode()


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), 'big')
    return head[0] & 0x0F, await reader.readexactly(size)


async def cycle(port: int, request: bytes) -> None:
    """Connect, echo one message, close; raises on any wrong answer."""
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    try:
        writer.write(request)
        head = await reader.readuntil(b'\r\n\r\n')
        if not head.startswith(b'HTTP/1.1 101 '):
            raise RuntimeError(f'handshake answered {head[:40]!r}')
        writer.write(TEXT)
        if await _read_frame(reader) != (0x1, MESSAGE):
            raise RuntimeError('wrong echo')
        writer.write(CLOSE)
        opcode, _ = await _read_frame(reader)
        if opcode != 0x8:
            raise RuntimeError(f'opcode {opcode} instead of a close')
    finally:
        writer.close()


async def cycles(port: int, count: int, clients: int) -> int:
    """Run ``count`` cycles over ``clients`` concurrent loops; the number
    that failed."""
    request = _handshake(port)
    left = [count]
    failed = [0]

    async def loop() -> None:
        while left[0] > 0:
            left[0] -= 1
            try:
                await cycle(port, request)
            except (OSError, RuntimeError, asyncio.IncompleteReadError):
                failed[0] += 1

    await asyncio.gather(*(loop() for _ in range(clients)))
    return failed[0]


def sample(port: int) -> dict[str, int]:
    """The server's figures once no socket is open (bounded wait)."""
    deadline = time.monotonic() + 30
    while True:
        url = f'http://127.0.0.1:{port}/_soak/stats'
        with urllib.request.urlopen(url, timeout=30) as response:
            stats: dict[str, int] = json.load(response)
        if stats['sockets'] == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def verdict(samples: list[dict[str, int]]) -> list[str]:
    """What moved beyond :data:`TOLERANCE`; empty when flat."""
    first = samples[0]
    moved = []
    for name in FIGURES:
        limit = TOLERANCE.get(name, 0)
        for later in samples[1:]:
            if later[name] - first[name] > limit:
                moved.append(f'{name} {first[name]} -> {later[name]}')
                break
    return moved


def run(
    smoke: bool = False, count: int | None = None
) -> dict[str, typing.Any]:
    """Start the worker, run the cycles, return the samples and verdict."""
    from bench.run import Server  # bench.run imports this module

    p = dict(SMOKE if smoke else FULL)
    if count is not None:
        p['cycles'] = count
    half = p['cycles'] // 2
    server = Server('uvicorn', 'soak')
    try:
        started = time.monotonic()
        failed = asyncio.run(cycles(server.port, p['warm'], p['clients']))
        samples = [sample(server.port)]
        for phase in (half, p['cycles'] - half):
            failed += asyncio.run(cycles(server.port, phase, p['clients']))
            samples.append(sample(server.port))
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    moved = verdict(samples)
    return {
        'cycles': p['cycles'],
        'clients': p['clients'],
        'failed': failed,
        'seconds': elapsed,
        'samples': samples,
        'moved': moved,
        'ok': not moved and not failed and not server.errors(),
        'server_log': server.errors()[-2000:],
    }


def table(result: dict[str, typing.Any]) -> str:
    """The samples side by side, and the verdict."""
    cycles, samples = result['cycles'], result['samples']
    heads = ['start', f'after {cycles // 2}', f'after {cycles}']
    lines = [
        f'soak: {cycles} WebSocket connect/echo/disconnect cycles, '
        f'{result["clients"]} clients, one uvicorn worker, '
        f'{result["seconds"]:.0f} s ({cycles / result["seconds"]:.0f}/s), '
        f'{result["failed"]} failed',
        f'{"":<10}' + ''.join(f'{h:>14}' for h in heads),
    ]
    for name in FIGURES:
        lines.append(
            f'{name:<10}' + ''.join(f'{s[name]:>14}' for s in samples)
        )
    if result['ok']:
        lines.append(
            f'[PASS] flat (RSS within {TOLERANCE["rss_kib"] // 1024} MiB, '
            f'objects within {TOLERANCE["objects"]})'
        )
    else:
        reasons = result['moved'] + (
            [f'{result["failed"]} cycles failed'] if result['failed'] else []
        )
        if result['server_log']:
            reasons.append('the server logged errors')
        lines.append('[FAIL] ' + '; '.join(reasons))
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.soak')
    parser.add_argument('--smoke', action='store_true')
    parser.add_argument('--cycles', type=int)
    args = parser.parse_args(argv)
    from bench.run import CLIENT_CORE, raise_nofile

    raise_nofile()
    if CLIENT_CORE:
        os.sched_setaffinity(0, {int(CLIENT_CORE[-1])})
    result = run(args.smoke, args.cycles)
    print(table(result))
    if result['server_log']:
        print(result['server_log'], file=sys.stderr)
    sys.exit(0 if result['ok'] else 1)


if __name__ == '__main__':
    main()
