"""The application the cancelled-call test serves under uvicorn.

Its consumer, at ``/slow``, runs a call through ``ws.run_sync`` that
lasts until the file named by ``CANCELCALL_RELEASE`` exists (at most 10
s); it prints when the call starts and ends and when the request's
finished callbacks run, for the test to read the order in the log.
"""

from __future__ import annotations

import os
from pathlib import Path
import time

from pyramid.config import Configurator
from pyramid.threadlocal import get_current_request

RELEASE = Path(os.environ.get('CANCELCALL_RELEASE', '/nonexistent'))


def say(line: str) -> None:
    print(line, flush=True)


def slow_call() -> None:
    request = get_current_request()
    request.add_finished_callback(lambda request: say('finished'))
    say('call started')
    deadline = time.monotonic() + 10
    while not RELEASE.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    say('call ended')


async def slow(ws):
    await ws.accept()
    await ws.receive_text()
    await ws.run_sync(slow_call)


def make_app():
    # two threads: the finished callbacks could run beside the call
    config = Configurator(settings={'asgi_ws.threads': '2'})
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/slow', slow)
    return config.make_asgi_app()


app = make_app()
