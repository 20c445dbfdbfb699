"""Waiting from a thread for work done in an event loop."""

from __future__ import annotations

from collections.abc import Callable
import concurrent.futures
from typing import TypeVar

T = TypeVar('T')


def result_within(
    future: concurrent.futures.Future[T],
    timeout: float,
    error: Callable[[], BaseException],
) -> T:
    """Return ``future``'s result, waiting at most ``timeout`` seconds.

    Past the timeout the future is cancelled (the coroutine behind one
    from :func:`asyncio.run_coroutine_threadsafe` is cancelled in its
    loop) and ``error()`` is raised instead.
    """
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise error() from None


__all__ = ['result_within']
