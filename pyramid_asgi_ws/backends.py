"""Broadcast backends: how group messages travel between processes.

The backends live in the :mod:`pyramid_asgi_ws.broadcast` package, one
module each; this module keeps their documented names in one place.
:class:`Backend` is the interface, :class:`MemoryBackend` serves one
process (``memory://``), :class:`RedisBackend` any number of them over
Redis pub/sub (``redis://``), and :data:`BACKENDS` maps URL schemes to
classes.
"""

from __future__ import annotations

from pyramid_asgi_ws.broadcast.backend import (
    BACKENDS,
    Backend,
    BroadcastError,
    OnMessage,
    backend_factory,
    split_options,
)
from pyramid_asgi_ws.broadcast.codec import decode, encode, to_json
from pyramid_asgi_ws.broadcast.memory import MemoryBackend
from pyramid_asgi_ws.broadcast.redis import RedisBackend

__all__ = [
    'BACKENDS',
    'Backend',
    'BroadcastError',
    'MemoryBackend',
    'OnMessage',
    'RedisBackend',
    'backend_factory',
    'decode',
    'encode',
    'split_options',
    'to_json',
]
