"""Consumers that send far more than a slow client reads."""

import asyncio
import json
import os

from pyramid.config import Configurator

from tests.support import until

CHUNK = 'x' * 10_000
COUNT = 5_000  # 50 MB in all


def rss_kib() -> int:
    with open(f'/proc/{os.getpid()}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('no VmRSS')  # pragma: no cover


def report(data: dict) -> None:
    print('REPORT', json.dumps(data), flush=True)


def held(outbox) -> bool:
    """Whether the client holds the outbox up: a send in flight that the
    client does not read and a full queue behind it (or, with the close
    policy, the close queued)."""
    return outbox.closing or (
        outbox._busy and outbox.pending >= outbox.size
    )


async def pushed(ws):
    """Fan-out style: the outbox never waits; the queue policy decides."""
    await ws.accept()
    outbox = ws.membership.outbox
    before = rss_kib()
    for n in range(COUNT):
        outbox.push({'type': 'websocket.send', 'text': CHUNK})
        if n % 100 == 0:
            await asyncio.sleep(0)
    await until(lambda: held(outbox), 'the outbox held up')
    report({'grown_kib': rss_kib() - before, 'dropped': ws.dropped})
    await ws.receive_text()


async def sent(ws):
    """Direct sends wait for the client: the consumer is slowed down."""
    await ws.accept()
    before = rss_kib()
    sent = 0
    try:
        while sent < COUNT:
            await asyncio.wait_for(ws.send_text(CHUNK), 1)
            sent += 1
    except asyncio.TimeoutError:
        pass
    report({'grown_kib': rss_kib() - before, 'sent': sent})
    await ws.receive_text()


async def stuck(ws):
    """Direct sends until one waits for the client, then group messages
    queued behind the send that the sender is stuck in: one more than the
    queue holds."""
    await ws.accept()
    try:
        while True:
            await asyncio.wait_for(ws.send_text(CHUNK), 0.5)
    except asyncio.TimeoutError:
        pass
    outbox = ws.membership.outbox
    outbox.push({'type': 'websocket.send', 'text': CHUNK})
    await until(
        lambda: outbox._busy and not outbox.pending,
        'the sender to take it and wait',
    )
    for _ in range(outbox.size + 1):
        outbox.push({'type': 'websocket.send', 'text': CHUNK})
    report({'closing': outbox.closing, 'dropped': ws.dropped})
    await ws.receive_text()


def make_app(overflow):
    config = Configurator(
        settings={
            'asgi_ws.send_queue_size': '64',
            'asgi_ws.send_overflow': overflow,
        }
    )
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/pushed', pushed)
    config.add_asgi_consumer('/sent', sent)
    config.add_asgi_consumer('/stuck', stuck)
    return config.make_asgi_app()


drop_oldest = make_app('drop_oldest')
close = make_app('close')
