"""The event loop the application runs in, on a thread of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import concurrent.futures
import threading
from typing import Any

from pyramid_asgi_ws.broadcast.threads import result_within
from pyramid_asgi_ws.testing.exceptions import WebSocketTimeout

Message = dict[str, Any]


class LoopThread:
    """An asyncio event loop running on a daemon thread.

    The test's thread hands it coroutines and messages; the loop is the
    only place the application runs, as under a real server.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name='TestClient', daemon=True
        )
        self._thread.start()

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any]
    ) -> concurrent.futures.Future[Any]:
        """Start ``coroutine`` in the loop; return its future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(
        self,
        function: Callable[..., Coroutine[Any, Any, Any]],
        *args: Any,
        timeout: float,
    ) -> Any:
        """Return ``await function(*args)``, run in the loop."""
        return result_within(
            self.spawn(function(*args)),
            timeout,
            lambda: WebSocketTimeout(
                f'the application did not finish within {timeout} s'
            ),
        )

    def queue(self, timeout: float) -> asyncio.Queue[Message]:
        """A new queue of the loop, for messages to the application."""
        return self.run(_make_queue, timeout=timeout)

    def put(self, queue: asyncio.Queue[Message], message: Message) -> None:
        """Put ``message`` on ``queue`` from the test's thread."""
        self.loop.call_soon_threadsafe(queue.put_nowait, message)

    def stop(self, timeout: float) -> None:
        """Cancel what still runs, then stop and close the loop."""
        try:
            self.run(_cancel_all, timeout=timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            self.loop.close()


async def _make_queue() -> asyncio.Queue[Message]:
    # Queues are made in the loop that uses them.
    return asyncio.Queue()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
