"""Presence in Redis: who is in a group, across processes.

:class:`RedisPresenceMixin` gives the
:class:`~pyramid_asgi_ws.broadcast.redis.RedisBackend` its
``add_member``, ``remove_member`` and ``members``. Presence lives in one
sorted set per group whose scores are expiry times, refreshed every third
of ``presence_ttl``, so the members of a crashed process vanish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pyramid_asgi_ws.broadcast.backend import BroadcastError

log = logging.getLogger('pyramid_asgi_ws.backends')


class RedisPresenceMixin:
    """The presence side of the Redis backend.

    The class using it provides ``client`` (redis-py's asyncio client),
    ``prefix``, ``presence_ttl``, ``timeout``, ``errors`` (the exceptions
    that mean Redis is away), ``connected`` (set while the subscription
    is up), ``local`` (this process's members: ``{group: {id: info}}``)
    and ``_fail(what, exc)``.
    """

    client: Any
    prefix: str
    presence_ttl: float
    timeout: float
    errors: tuple[type[Exception], type[Exception]]
    connected: asyncio.Event
    local: dict[str, dict[str, bytes]]

    def _fail(self, what: str, exc: BaseException) -> BroadcastError:
        raise NotImplementedError  # pragma: no cover - the class provides it

    def _key(self, channel: str) -> str:
        return f'{self.prefix}presence:{channel}'

    async def _refresh(self, only: str | None = None) -> None:
        """Write local members (of ``only``, or all) with a fresh expiry."""
        expires = time.time() + self.presence_ttl
        async with self.client.pipeline(transaction=False) as pipe:
            for channel, members in self.local.items():
                if only is not None and channel != only or not members:
                    continue
                key = self._key(channel)
                pipe.zadd(
                    key, {_entry(m, i): expires for m, i in members.items()}
                )
                pipe.expire(key, int(self.presence_ttl) + 1)
            await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            if self.connected.is_set():
                try:
                    await self._refresh()
                except self.errors as exc:
                    log.info('Redis presence refresh failed: %s', exc)

    async def _forget_local(self) -> None:
        """Remove this process's members from Redis, for at most
        ``timeout`` seconds each group: past it they expire by
        themselves."""
        local, self.local = self.local, {}
        try:
            for channel, members in local.items():
                await asyncio.wait_for(
                    self.client.zrem(
                        self._key(channel),
                        *[_entry(m, i) for m, i in members.items()],
                    ),
                    self.timeout,
                )
        except (asyncio.TimeoutError, *self.errors):
            pass

    async def add_member(self, channel: str, member: str, info: bytes) -> None:
        self.local.setdefault(channel, {})[member] = info
        try:
            await self._refresh(channel)
        except self.errors as exc:
            # Written by the heartbeat once Redis is back.
            log.warning('Redis presence for %r not written: %s', channel, exc)

    async def remove_member(self, channel: str, member: str) -> None:
        members = self.local.get(channel, {})
        info = members.pop(member, None)
        if not members:
            self.local.pop(channel, None)
        if info is None:
            return
        try:
            await self.client.zrem(self._key(channel), _entry(member, info))
        except self.errors as exc:
            log.warning('Redis presence for %r not removed: %s', channel, exc)

    async def members(self, channel: str) -> dict[str, bytes]:
        key = self._key(channel)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, '-inf', time.time())
                pipe.zrange(key, 0, -1)
                _, found = await pipe.execute()
        except self.errors as exc:
            raise self._fail(f'cannot list group {channel!r}', exc) from exc
        result = {}
        for entry in found:
            member, _, info = entry.partition(b'\n')
            result[member.decode('utf-8')] = info
        return result


def _entry(member: str, info: bytes) -> bytes:
    """A presence sorted-set member: the id, a newline, the info."""
    return member.encode('utf-8') + b'\n' + info
