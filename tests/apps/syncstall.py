"""A SyncWebSocketConsumer flooding a client, with one pool thread.

Served as ``tests.apps.syncstall:app`` with ``asgi_ws.threads = 1`` and
``asgi_ws.send_timeout = 0.5``: ``/flood`` accepts and sends 64 KiB
messages until its send fails; ``GET /hello`` (the same single thread)
answers ``hello``; ``GET /codes`` lists the codes of the
``WebSocketDisconnect`` the flooding sends raised.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_asgi_ws import SyncWebSocketConsumer, WebSocketDisconnect
from pyramid_asgi_ws.syncconsumer import SyncWebSocket

CHUNK = b'x' * 65536

#: The close codes the flood's sends raised, in order.
codes: list[int] = []


class Flood(SyncWebSocketConsumer):
    def on_connect(self, ws: SyncWebSocket) -> None:
        ws.accept()
        try:
            for _ in range(4096):  # 256 MiB: far more than buffers hold
                ws.send_bytes(CHUNK)
        except WebSocketDisconnect as exc:
            codes.append(exc.code)
            raise


def hello(request: Any) -> Response:
    return Response('hello')


def listed(request: Any) -> Response:
    return Response(' '.join(map(str, codes)))


def make_app() -> Any:
    settings = {'asgi_ws.threads': '1', 'asgi_ws.send_timeout': '0.5'}
    config = Configurator(settings=settings)
    config.include('pyramid_asgi_ws')
    config.add_route('hello', '/hello')
    config.add_view(hello, route_name='hello')
    config.add_route('codes', '/codes')
    config.add_view(listed, route_name='codes')
    config.add_asgi_consumer('/flood', Flood)
    return config.make_asgi_app()


app = make_app()
