"""Group history in Redis Streams, next to the pub/sub subscription.

:class:`RedisStreamsMixin` gives the
:class:`~pyramid_asgi_ws.broadcast.redis.RedisBackend` its ``append``,
``read`` and ``order``. A group's history is the stream
``<prefix>history:<group>``, each entry's field ``m`` holding the
payload, and a position is the entry's stream id. One Lua script adds
the entry (``XADD ... MAXLEN ~ size``), trims what is older than the
ttl (``XTRIM ... MINID ~``, the key expiring ``ttl`` after the last
message) and publishes the payload with its id on the group's channel,
atomically: every process hears the message with the position it has
in the stream. A replay reads the stream with ``XRANGE``; ``tail`` tells
where a stream ends, for catching a group up after the subscription was
lost (:mod:`~pyramid_asgi_ws.broadcast.recovery`).
"""

from __future__ import annotations

from collections.abc import Callable
import re
from typing import Any

from pyramid_asgi_ws.broadcast.backend import BroadcastError, Entries

#: Adds a payload to the history of a group and publishes it with its id.
#: KEYS[1]: the stream; ARGV: size, ttl in ms (0: none), payload, channel.
#: Numbers go back to Redis as strings of digits: a Lua number would be
#: written ``%.14g``, ``1e+14`` for a long ttl, which Redis refuses after
#: the ``XADD``, leaving a kept message unpublished.
APPEND = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                      'm', ARGV[3])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  local ms = tonumber(string.match(id, '^%d+'))
  local oldest = string.format('%.0f', math.max(0, ms - ttl))
  redis.call('XTRIM', KEYS[1], 'MINID', '~', oldest)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[4], '@' .. id .. ' ' .. ARGV[3])
return id
"""

#: The longest ttl, in milliseconds, given to Redis (some 285,000 years):
#: exact as a Lua number, and far from the end of Redis's clock.
MAX_TTL = 2**53

#: What a stream id looks like: milliseconds, a dash, a sequence number
#: (each under 2**63 here, so that Redis never refuses one as too big),
#: in ASCII digits (``\d`` takes ``'١'``, which Redis refuses).
STREAM_ID = re.compile(r'([0-9]{1,19})-([0-9]{1,19})')

#: The position before every message: ``tail`` of a group with nothing
#: kept, read from the first entry of its stream.
START = '0-0'


class RedisStreamsMixin:
    """The history side of the Redis backend.

    The class using it provides ``client`` (redis-py's asyncio client),
    ``prefix`` and ``_fail(what, exc)``, ``errors`` (the exceptions that
    mean Redis is away), ``on_message``, ``on_resubscribed`` and
    ``_restoring`` (the channels the reader subscribed to again).
    """

    client: Any
    prefix: str
    errors: tuple[type[Exception], type[Exception]]
    on_resubscribed: Callable[[str], None] | None
    _restoring: set[str]  # channels subscribed to again, not confirmed
    _script: Any = None

    def _fail(self, what: str, exc: BaseException) -> BroadcastError:
        raise NotImplementedError  # pragma: no cover - the class provides it

    def _stream(self, channel: str) -> str:
        return f'{self.prefix}history:{channel}'

    def _restored(self, channel: str) -> None:
        """Redis confirmed ``channel`` subscribed to again after the
        subscription was lost: tell ``on_resubscribed`` (once), so that
        what was published meanwhile is read back from its history."""
        if channel in self._restoring and self.on_resubscribed is not None:
            self._restoring.discard(channel)
            self.on_resubscribed(channel)

    async def append(
        self, channel: str, payload: bytes, size: int, ttl: float | None
    ) -> None:
        if self._script is None:
            self._script = self.client.register_script(APPEND)
        ms = 0 if ttl is None else min(max(1, round(ttl * 1000)), MAX_TTL)
        try:
            await self._script(
                keys=[self._stream(channel)],
                args=[size, ms, payload, self.prefix + channel],
            )
        except self.errors as exc:
            raise self._fail(
                f'cannot publish to group {channel!r}', exc
            ) from exc

    def order(self, position: str) -> tuple[int, ...]:
        """A stream id as ``(milliseconds, sequence)``."""
        return tuple(map(int, position.split('-')))

    async def read(
        self, channel: str, since: str, count: int
    ) -> Entries | None:
        """Return the entries after ``since``, or ``None`` unless the
        stream still holds the entry at ``since`` itself: trimming takes
        the oldest first, so then nothing after it is missing."""
        match = STREAM_ID.fullmatch(since)
        if match is None or max(map(int, match.groups())) >= 2**63:
            return None
        key = self._stream(channel)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                if since == START:
                    pipe.xinfo_stream(key)  # an error when there is none
                    pipe.xrange(key, '-', '+', count=count)
                else:
                    pipe.xrange(key, since, since, count=1)
                    pipe.xrange(key, '(' + since, '+', count=count)
                found, entries = await pipe.execute(since != START)
        except self.errors as exc:
            raise self._fail(
                f'cannot read the history of group {channel!r}', exc
            ) from exc
        if since == START and isinstance(found, dict):
            # Whole unless the stream was ever trimmed.
            found = found['entries-added'] == found['length']
        elif since == START:
            return []  # no stream: nothing was kept since
        if not found:
            return None
        return [(entry.decode(), fields[b'm']) for entry, fields in entries]

    async def tail(self, channel: str) -> str:
        """Return the position of the last message the group's history
        holds, or :data:`START` when it holds none."""
        try:
            found = await self.client.xrevrange(self._stream(channel), count=1)
        except self.errors as exc:
            raise self._fail(
                f'cannot read the history of group {channel!r}', exc
            ) from exc
        return found[0][0].decode() if found else START


def split_position(data: bytes) -> tuple[bytes, str | None]:
    """Return ``(payload, position)`` of a message heard on a channel:
    the script's ``@<id> <payload>``, or a plain payload."""
    if data[:1] != b'@':
        return data, None
    position, _, payload = data[1:].partition(b' ')
    return payload, position.decode('ascii')
