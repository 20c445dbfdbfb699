"""A package whose consumer has a typo in a boolean option."""

from pyramid_asgi_ws import websocket_consumer


@websocket_consumer('/typo', require_origin='ture')
async def typo(ws):  # pragma: no cover - never registered
    await ws.accept()
