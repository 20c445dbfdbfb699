"""The ASGI lifespan protocol, spoken to the application by the client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import queue

from pyramid_asgi_ws.testing.exceptions import (
    LifespanFailure,
    WebSocketTimeout,
)
from pyramid_asgi_ws.testing.loop import LoopThread, Message

#: Put on the queue of messages from the application once it returned.
ENDED: Message = {'type': 'testclient.app.ended'}


class Lifespan:
    """One run of the application's lifespan: a startup, then a shutdown.

    An application that does not speak lifespan (it raises or returns on
    the scope) is fine: the client then goes on without one, as servers
    do.
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        runner: LoopThread,
        timeout: float,
    ) -> None:
        self.app = app
        self.runner = runner
        self.timeout = timeout
        #: Whether the application is in its lifespan, to be shut down.
        self.running = False
        self._to_app = runner.queue(timeout)
        self._from_app: queue.Queue[Message] = queue.Queue()

    def startup(self) -> None:
        """Start the lifespan and wait for the startup to complete."""
        scope = {
            'type': 'lifespan',
            'asgi': {'version': '3.0', 'spec_version': '2.0'},
            'state': {},
        }
        self.runner.spawn(self._run(scope))
        self.running = True
        self._phase('startup')

    def shutdown(self) -> None:
        """Wait for the shutdown to complete, if the startup did."""
        if self.running:
            self._phase('shutdown')

    def _phase(self, phase: str) -> None:
        self.runner.put(self._to_app, {'type': f'lifespan.{phase}'})
        try:
            message = self._from_app.get(timeout=self.timeout)
        except queue.Empty:
            raise WebSocketTimeout(
                f'lifespan {phase} did not complete within {self.timeout} s'
            ) from None
        if message is ENDED:
            self.running = False
        elif message['type'] == f'lifespan.{phase}.failed':
            self.running = False
            raise LifespanFailure(
                f'lifespan {phase} failed: {message.get("message", "")}'
            )

    async def _run(self, scope: Message) -> None:
        try:
            await self.app(scope, self._to_app.get, self._send)
        except Exception:
            pass
        self._from_app.put(ENDED)

    async def _send(self, message: Message) -> None:
        self._from_app.put(message)
