"""Bounded channels between the event loop and a worker thread.

A :class:`Feed` carries request body messages to the worker, a
:class:`Pipe` carries response items back; either side that cannot go
on wakes the other.
"""

import asyncio
from collections import deque
import queue
import threading
import typing

Message = dict[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]


class PipeClosed(Exception):
    """The event loop stopped consuming the response."""


class Feed:
    """Request body messages from the event loop to a worker thread,
    received ahead of the reads by at most ``limit`` bytes."""

    task: 'asyncio.Task[None] | None' = None

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._queue: queue.SimpleQueue[typing.Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._size = 0
        self._room: asyncio.Future[None] | None = None

    async def run(self, receive: Receive) -> None:
        """Receive until the body ends (event loop)."""
        while True:
            try:
                message = await receive()
            except Exception as exc:
                self._queue.put(exc)
                return
            self._queue.put(message)
            if message['type'] != 'http.request' or not message.get(
                'more_body'
            ):
                return
            with self._lock:
                self._size += len(message.get('body', b''))
                if self._size < self._limit:
                    continue
                room = self._room = self._loop.create_future()
            await room

    def close(self, exc: Exception) -> None:
        """Stop receiving (event loop); reads past what was received
        raise ``exc``."""
        if self.task is not None:
            self.task.cancel()
        self._queue.put(exc)

    def get(self) -> Message:
        """The next message, waiting for it (worker thread)."""
        item = self._queue.get()
        if isinstance(item, Exception):
            self._queue.put(item)  # and for every later read
            raise item
        with self._lock:
            self._size -= len(item.get('body', b''))
            room = None
            if self._room is not None and self._size < self._limit:
                room, self._room = self._room, None
        if room is not None:
            self._loop.call_soon_threadsafe(wake, room)
        return item


class Pipe:
    """Response items from a worker thread to the event loop, at most
    ``limit`` queued bytes: a full pipe blocks the worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._lock = threading.Lock()
        # Made when the worker first waits for room: most responses never
        # fill the pipe.
        self._room: threading.Condition | None = None
        self._items: deque[typing.Any] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, *items: typing.Any) -> None:
        """Queue ``items`` (worker thread); blocks while the pipe is full
        and raises :exc:`PipeClosed` once the loop has stopped."""
        with self._lock:
            if self._size >= self._limit and not self.closed:
                if self._room is None:
                    self._room = threading.Condition(self._lock)
                while self._size >= self._limit and not self.closed:
                    self._room.wait()
            if self.closed:
                raise PipeClosed
            for item in items:
                self._items.append(item)
                if type(item) is bytes:
                    self._size += len(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(wake, waiter)

    async def get(self) -> list[typing.Any]:
        """Take everything queued, waiting for at least one item; raises
        :exc:`PipeClosed` once closed."""
        while True:
            with self._lock:
                if self.closed:
                    raise PipeClosed
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    self._size = 0
                    if self._room is not None:
                        self._room.notify()
                    return items
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def close(self) -> None:
        """Stop consuming (event loop): wakes and fails the worker."""
        with self._lock:
            self.closed = True
            if self._room is not None:
                self._room.notify_all()
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            wake(waiter)


def wake(waiter: 'asyncio.Future[None]') -> None:
    """Resolve ``waiter`` unless it is already done (or cancelled)."""
    if not waiter.done():
        waiter.set_result(None)
