"""The application's side of one test WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import concurrent.futures
import queue

from pyramid_asgi_ws.broadcast.threads import result_within
from pyramid_asgi_ws.testing.exceptions import WebSocketTimeout
from pyramid_asgi_ws.testing.lifespan import ENDED
from pyramid_asgi_ws.testing.loop import LoopThread, Message

#: What an application may send on a WebSocket scope.
APP_MESSAGES = frozenset(
    {
        'websocket.accept',
        'websocket.send',
        'websocket.close',
        'websocket.http.response.start',
        'websocket.http.response.body',
    }
)


class Channel:
    """Runs the application on one WebSocket scope, as a server would.

    The application's ``receive`` and ``send`` run in the client's loop;
    the test's thread puts messages for the application with :meth:`put`
    and takes the application's with :meth:`next`. Once either side has
    closed, a send from the application raises :class:`OSError`, as a
    server's does.
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        scope: Message,
        runner: LoopThread,
        timeout: float,
    ) -> None:
        self.app = app
        self.scope = scope
        self.runner = runner
        #: Bounds the channel's own waits, as the session's timeout.
        self.timeout = timeout
        self.app_closed = False
        self.client_closed = False
        self._to_app: asyncio.Queue[Message] = runner.queue(timeout)
        self._from_app: queue.Queue[Message] = queue.Queue()
        self._error_seen = False
        self._task: concurrent.futures.Future[None] | None = None

    def start(self) -> None:
        """Connect: run the application with a ``websocket.connect``."""
        self.put({'type': 'websocket.connect'})
        self._task = self.runner.spawn(self._run())

    # -- in the client's loop ---------------------------------------------

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        finally:
            self._from_app.put(ENDED)

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        if message['type'] not in APP_MESSAGES:
            raise RuntimeError(
                f'unexpected ASGI message {message["type"]!r} sent on a '
                'WebSocket'
            )
        if self.client_closed or self.app_closed:
            raise OSError('the WebSocket is closed')
        if message['type'] == 'websocket.close':
            self.app_closed = True
            # What a server tells the app once the close handshake is over.
            self._to_app.put_nowait(
                {'type': 'websocket.disconnect', 'code': message.get('code')}
            )
        self._from_app.put(message)

    # -- in the test's thread ---------------------------------------------

    def put(self, message: Message) -> None:
        """Hand ``message`` to the application's ``receive``."""
        self.runner.put(self._to_app, message)

    def next(self, timeout: float, what: str) -> Message:
        """The next message the application sent, within ``timeout``.

        Once the application has ended, what it raised is raised here,
        once; ``what`` names the awaited message in a timeout's text.
        """
        try:
            message = self._from_app.get(timeout=timeout)
        except queue.Empty:
            raise WebSocketTimeout(
                f'no {what} from the application on {self.scope["path"]} '
                f'within {timeout} s'
            ) from None
        if message is ENDED:
            assert self._task is not None
            self._error_seen = True
            # ENDED is queued just before the task completes.
            self._task.result(self.timeout)
        return message

    def cancel(self) -> None:
        """Cancel the application, if it still runs."""
        assert self._task is not None
        self._task.cancel()

    def wait(self, timeout: float, raising: bool = True) -> None:
        """Wait for the application to end after the connection closed.

        With ``raising``, a consumer still running after ``timeout`` is a
        :class:`WebSocketTimeout` and an error of the application not yet
        raised by :meth:`next` is raised here.
        """
        assert self._task is not None
        try:
            result_within(
                self._task,
                timeout,
                lambda: WebSocketTimeout(
                    f'the consumer for {self.scope["path"]} was still '
                    f'running {timeout} s after the connection closed'
                ),
            )
        except concurrent.futures.CancelledError:
            pass
        except WebSocketTimeout:
            if raising:
                raise
        except Exception:
            if raising and not self._error_seen:
                raise
