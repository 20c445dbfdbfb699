"""Running a server-sent events consumer: from the request to the end.

The request is checked as a WebSocket handshake is
(:func:`~pyramid_asgi_ws.handshake.check_handshake`: origin, permission,
``factory=``) and refused with an HTTP status before any byte of the
stream; then the response starts and the consumer runs in a task of its
own, beside two helpers: one waits for the client to go
(``http.disconnect``), the other sends the heartbeats. What ends the
stream, and what the consumer sees:

=====================================  ==================================
the stream ends because                the consumer
=====================================  ==================================
the consumer returns                   is done
the consumer raises                    is logged (HTTP exceptions at INFO)
the client goes                        gets :class:`~.sse.StreamClosed`
                                       from a send, or is cancelled
its group send queue overflows         the same (``send_overflow=close``)
the server shuts down                  is cancelled
=====================================  ==================================

Once the stream is over the browser's ``EventSource`` reconnects by
itself, with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

from pyramid.httpexceptions import HTTPException

from pyramid_asgi_ws.origin import cors_origin
from pyramid_asgi_ws.refusal import Refusal, refuse_method
from pyramid_asgi_ws.request import RunSync, make_request
from pyramid_asgi_ws.router import Consumer
from pyramid_asgi_ws.sse import EventStream, Receive, Send, StreamClosed
from pyramid_asgi_ws.sse_format import HEARTBEAT

log = logging.getLogger('pyramid_asgi_ws')

#: Seconds a cancelled consumer may take to end when its own request is
#: cancelled (by the server, at its shutdown).
CANCEL_WAIT = 1.0

#: The methods an event stream answers; ``EventSource`` sends GET.
METHODS = ('GET',)


def make_stream(
    consumer: Consumer,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    settings: dict[str, Any],
    runner: RunSync,
) -> EventStream:
    """Return the stream of a request to ``consumer``, with its options
    (or the settings) and the application's ``runner`` for ``run_sync``."""
    heartbeat = consumer.heartbeat
    if heartbeat is None:
        heartbeat = settings['sse_heartbeat']
    return EventStream(
        scope,
        receive,
        send,
        request_factory=functools.partial(
            make_request, scope['registry'], factory=consumer.factory
        ),
        heartbeat=heartbeat or None,
        retry=consumer.retry,
        send_queue_size=consumer.setting('send_queue_size', settings),
        send_overflow=consumer.setting('send_overflow', settings),
        runner=runner,
        allow_origin=cors_origin(scope, consumer, settings),
    )


def check_method(scope: dict[str, Any]) -> Refusal | None:
    """Refuse a request that is not a GET with 405."""
    return refuse_method(scope, METHODS, 'an event stream')


async def heartbeats(stream: EventStream, interval: float) -> None:
    """Send a heartbeat whenever ``interval`` seconds pass unwritten."""
    loop = asyncio.get_running_loop()
    while True:
        idle = loop.time() - stream._last_write
        if idle >= interval:
            await stream._write(HEARTBEAT)
            idle = 0.0
        await asyncio.sleep(interval - idle)


async def watch(stream: EventStream) -> None:
    """Wait for the client to go, then end the stream."""
    while (await stream._receive())['type'] != 'http.disconnect':
        pass
    stream._gone()


async def run_stream(consumer: Consumer, stream: EventStream) -> None:
    """Start the response, run the consumer, and end the stream."""
    if not await stream._start():
        await stream._finish()
        return
    helpers = [asyncio.ensure_future(watch(stream))]
    if stream.heartbeat:
        helpers.append(
            asyncio.ensure_future(heartbeats(stream, stream.heartbeat))
        )
    task = stream._consumer = asyncio.ensure_future(consumer.target(stream))
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:  # the server cancels this request
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_WAIT)
        raise
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await stream.close()
    _outcome(consumer, stream, task)


def _outcome(
    consumer: Consumer, stream: EventStream, task: asyncio.Future[Any]
) -> None:
    """Log what ended the consumer, if it raised."""
    with contextlib.suppress(asyncio.CancelledError):
        error = task.exception()
        if error is None or isinstance(error, StreamClosed):
            return
        if isinstance(error, HTTPException):
            log.info(
                'ending event stream %s: consumer %r raised %s %s',
                stream.path,
                consumer.name,
                error.code,
                error.title,
            )
            return
        log.error(
            'consumer %r failed on event stream %s',
            consumer.name,
            stream.path,
            exc_info=error,
        )
