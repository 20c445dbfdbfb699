"""The scrape endpoint: the metrics as Prometheus reads them.

:class:`MetricsEndpoint` is registered as an HTTP consumer at
``asgi_ws.metrics_path``, so the application answers it itself, ahead of
the Pyramid router, with no Pyramid request and no thread of the
bridge's pool. Where its parts run:

- the client check and :meth:`Metrics.sample
  <pyramid_asgi_ws.metrics.collectors.Metrics.sample>` run on the event
  loop, which alone changes what the sample reads (the set of open
  connections, their send queues);
- the exposition (``generate_latest``) runs in the event loop's default
  executor: it takes each metric's lock, which threads of the pool take
  too, grows with the label sets, and reads files in multiprocess mode;
  and it is not queued behind the bridge's pool, which is full exactly
  when an operator needs to see why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from pyramid_asgi_ws.interfaces import IASGIApp
from pyramid_asgi_ws.metrics.collectors import Metrics, multiprocess
from pyramid_asgi_ws.origin import is_trusted
from pyramid_asgi_ws.refusal import Refusal, refuse_http, refuse_method

log = logging.getLogger('pyramid_asgi_ws')

#: The methods the endpoint answers.
METHODS = ('GET', 'HEAD')


def _accept(scope: dict[str, Any]) -> str:
    return ', '.join(
        value.decode('latin-1')
        for name, value in scope.get('headers') or ()
        if name.lower() == b'accept'
    )


class MetricsEndpoint:
    """The ASGI application serving ``metrics`` to clients of ``allow``.

    ``allow`` holds addresses, networks, ``unix`` (for a unix socket's
    peers) and ``*``, as ``asgi_ws.metrics_allow`` does; any other client
    gets 403, and a method other than GET or HEAD gets 405.
    """

    def __init__(self, metrics: Metrics, allow: tuple[str, ...]) -> None:
        self.metrics = metrics
        self.allow = allow

    async def __call__(
        self, scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        refusal = self.check(scope)
        if refusal is not None:
            await refuse_http(scope, send, refusal)
            return
        app = scope['registry'].queryUtility(IASGIApp)
        self.metrics.sample(app)
        encoder, content_type = choose_encoder(_accept(scope))
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, self._expose, encoder)
        headers = [
            (b'content-type', content_type.encode('latin-1')),
            (b'content-length', str(len(body)).encode()),
            (b'cache-control', b'no-store'),
        ]
        await send(
            {'type': 'http.response.start', 'status': 200, 'headers': headers}
        )
        if scope['method'] == 'HEAD':
            body = b''
        await send({'type': 'http.response.body', 'body': body})

    def check(self, scope: dict[str, Any]) -> Refusal | None:
        """Refuse a client not allowed (403), or a method not served."""
        client = scope.get('client')
        if not is_trusted(client, self.allow):
            who = client[0] if client else 'a unix socket peer'
            reason = f'{who} is not in asgi_ws.metrics_allow'
            return Refusal(403, reason, b'403 Forbidden', kind='client')
        return refuse_method(scope, METHODS, 'the metrics endpoint')

    def _expose(self, encoder: Any) -> bytes:
        """Encode the metrics: this process's, or in multiprocess mode
        those of every process, merged from their files."""
        if not multiprocess():
            return bytes(encoder(self.metrics.collector_registry))
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        return bytes(encoder(merged))
