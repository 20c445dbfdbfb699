"""A connection's bounded queue of group messages, and its one sender.

Fan-out never waits for a client: a group message is pushed into the
recipient's :class:`Outbox` and the publisher moves on. One long-lived
task per connection sends what is queued; a task per message would leave
thousands of dead tasks for the garbage collector on every broadcast.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
import contextlib
import logging
from typing import Any

from pyramid_asgi_ws.closecodes import CloseCode

Message = dict[str, Any]

log = logging.getLogger('pyramid_asgi_ws.websocket')

#: Seconds a close waits for queued group messages to reach the client.
FLUSH_TIMEOUT = 1.0

#: What may happen when the queue is full; see :meth:`Outbox.push`.
OVERFLOW_POLICIES = ('drop_oldest', 'drop_newest', 'close')


class Outbox:
    """The bounded send queue of one connection.

    ``send`` transmits one ASGI message and raises once the connection is
    gone; ``is_open`` says whether the connection still takes messages;
    ``on_close(code)`` is told when the outbox ends the connection: with
    1013 when the ``close`` policy closes it, with ``None`` when ``send``
    failed. ``name`` and ``kind`` name the connection in log lines (its
    path; ``'WebSocket'``, or ``'event stream'``, which ends without a
    close code).
    """

    def __init__(
        self,
        send: Callable[[Message], Awaitable[None]],
        is_open: Callable[[], bool],
        on_close: Callable[[int | None], None],
        *,
        size: int = 256,
        policy: str = 'close',
        name: str = '',
        kind: str = 'WebSocket',
    ) -> None:
        self._send = send
        self._is_open = is_open
        self._on_close = on_close
        self.size = size
        self.policy = policy
        self.name = name
        self.kind = kind
        self.dropped = 0
        self.closing = False
        self._queue: deque[Message] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._busy = False
        self._drained: asyncio.Event | None = None

    @property
    def pending(self) -> int:
        """How many pushed messages wait to be sent."""
        return len(self._queue)

    def push(self, message: Message) -> bool:
        """Queue a ``websocket.send`` message without waiting for the client.

        The queue holds ``size`` messages; past that ``policy`` decides:
        ``drop_oldest``, ``drop_newest`` or ``close`` (with 1013, sent
        ahead of anything in flight). Returns whether it was queued.
        """
        if self.closing or not self._is_open():
            return False
        queue = self._queue
        if len(queue) >= self.size:
            self.dropped += 1
            if self.policy == 'drop_newest':
                return False
            if self.policy == 'close':
                self._overflow()
                return False
            queue.popleft()
        queue.append(message)
        if self._sender is None:
            self._start()
        else:  # the common case, inline: this runs once per member
            self._wakeup.set()
        return True

    def _overflow(self) -> None:
        code = CloseCode.TRY_AGAIN_LATER
        closing = f'closing {self.kind} {self.name}'
        if self.kind == 'WebSocket':  # an event stream ends with no code
            closing += f' with {code}'
        log.warning(
            '%s: its send queue of %d messages is full '
            '(asgi_ws.send_overflow = close)',
            closing,
            self.size,
        )
        self.close(code, 'send queue full')

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` ahead of everything queued,
        without waiting for a send in flight; messages pushed from then
        on are refused."""
        if self.closing:
            return
        self.closing = True
        self._queue.clear()
        self._queue.append(
            {'type': 'websocket.close', 'code': code, 'reason': reason}
        )
        self._on_close(code)
        if self._busy:
            # The send in flight may wait for the slow client for ever: the
            # close must not wait behind it.
            assert self._sender is not None
            self._sender.cancel()
            self._sender = None
            self._busy = False
        self._start()

    def _start(self) -> None:
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._run())
        else:
            self._wakeup.set()

    async def _run(self) -> None:
        queue, wakeup = self._queue, self._wakeup
        try:
            while True:
                while queue:
                    self._busy = True
                    await self._send(queue.popleft())
                    self._busy = False
                if self._drained is not None:
                    self._drained.set()
                wakeup.clear()
                await wakeup.wait()
        except Exception:  # the client is gone; nothing left to tell it
            self._on_close(None)
            self._busy = False
            queue.clear()
            if self._drained is not None:
                self._drained.set()

    async def wait_room(self) -> bool:
        """Wait, while the queue is full, until it has been sent; return
        whether the connection still takes messages.

        A replay of group history awaits it before each message, so that
        a long history reaches a slow client without overflowing its
        queue, and ends once the connection is gone (``False``, at once).
        """
        while len(self._queue) >= self.size and not self.closing:
            if not self._is_open():
                return False
            drained = self._drained = self._drained or asyncio.Event()
            self._start()
            # Bounded, and the state looked at again: a flush meanwhile
            # may have replaced the event.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(drained.wait(), FLUSH_TIMEOUT)
            if self._drained is drained:
                self._drained = None
        return not self.closing and self._is_open()

    async def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait, for at most ``timeout`` seconds, until the queue is sent."""
        if not (self._queue or self._busy):
            return
        drained = self._drained = asyncio.Event()
        self._start()
        try:
            await asyncio.wait_for(drained.wait(), timeout)
        except asyncio.TimeoutError:
            log.info(
                'closing %s %s with %d queued messages unsent',
                self.kind,
                self.name,
                self.pending,
            )
        finally:
            self._drained = None

    async def finish(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Stop the sender once the connection is done.

        A close the ``close`` policy queued is given ``timeout`` seconds to
        go out first; group messages still queued are dropped.
        """
        if self.closing:
            await self.flush(timeout)
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        self._queue.clear()
