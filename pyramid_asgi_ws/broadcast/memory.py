"""The ``memory://`` backend: groups within one process."""

from __future__ import annotations

import asyncio

from pyramid_asgi_ws.broadcast.backend import Backend, OnMessage


class MemoryBackend(Backend):
    """Delivers within one process: ``memory://``."""

    def __init__(self, url: str = 'memory://') -> None:
        super().__init__(url)
        self.on_message: OnMessage | None = None
        self.channels: set[str] = set()
        self.presence: dict[str, dict[str, bytes]] = {}

    async def connect(self, on_message: OnMessage) -> None:
        self.on_message = on_message

    async def disconnect(self) -> None:
        self.on_message = None
        self.channels.clear()
        self.presence.clear()

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def publish(self, channel: str, payload: bytes) -> None:
        if self.on_message is not None and channel in self.channels:
            self.on_message(channel, payload)
        # Let the send queues drain between two publishes, as they do
        # while a network backend waits for its server.
        await asyncio.sleep(0)

    async def add_member(self, channel: str, member: str, info: bytes) -> None:
        self.presence.setdefault(channel, {})[member] = info

    async def remove_member(self, channel: str, member: str) -> None:
        members = self.presence.get(channel, {})
        members.pop(member, None)
        if not members:
            self.presence.pop(channel, None)

    async def members(self, channel: str) -> dict[str, bytes]:
        return dict(self.presence.get(channel, {}))
