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
import ipaddress
import logging
import re
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


#: The headers in which proxies name the client and the proxies between.
FORWARDING = (b'x-forwarded-for', b'forwarded', b'x-real-ip')

_FOR = re.compile(r'(?:^|[;,\s])for\s*=\s*("[^"]*"|[^;,\s]*)', re.I)


def _header(scope: dict[str, Any], wanted: bytes) -> str:
    return ', '.join(
        value.decode('latin-1')
        for name, value in scope.get('headers') or ()
        if name.lower() == wanted
    )


def _encoder(scope: dict[str, Any]) -> tuple[Any, str]:
    """The format the scraper asks for in ``Accept``; the text format
    when it asks in words prometheus_client cannot read (its
    ``choose_encoder`` raises on a version that is no version)."""
    try:
        return choose_encoder(_header(scope, b'accept'))
    except (TypeError, ValueError):
        return choose_encoder('')


def _address(entry: str) -> str:
    """An address of a forwarding header, without quotes, brackets, port."""
    entry = entry.strip().strip('"')
    if entry.startswith('['):
        return entry[1:].partition(']')[0]
    return entry.partition(':')[0] if entry.count(':') == 1 else entry


def forwarded_addresses(scope: dict[str, Any]) -> list[tuple[str, str]]:
    """Every address the forwarding headers name, with its header.

    ``X-Forwarded-For`` and ``X-Real-IP`` hold addresses, ``Forwarded``
    (RFC 7239) its ``for=`` parameters; an empty or obfuscated entry
    (``unknown``, ``_hidden``) stays as it is, and no list allows it.
    """
    found: list[tuple[str, str]] = []
    for name in FORWARDING:
        text = _header(scope, name)
        if not text:
            continue
        if name == b'forwarded':
            entries = _FOR.findall(text)
        else:
            entries = text.split(',')
        found += [(_address(entry), name.decode()) for entry in entries]
    return found


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
        encoder, content_type = _encoder(scope)
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
        """Refuse a client not allowed (403), or a method not served.

        Every address the request names must be allowed: the peer the
        server reports (which it may have taken from ``X-Forwarded-For``)
        and each one the forwarding headers name. A client cannot get in
        by naming an allowed address, since the proxy it connects to
        appends its real one, and a proxy on the machine cannot let the
        world in by being the peer.
        """
        client = scope.get('client')
        if not is_trusted(client, self.allow):
            who = client[0] if client else 'a unix socket peer'
            return self._forbidden(who)
        if '*' not in self.allow:
            for address, header in forwarded_addresses(scope):
                if not self._allows(address):
                    return self._forbidden(f'{address!r} (in {header})')
        return refuse_method(scope, METHODS, 'the metrics endpoint')

    def _allows(self, address: str) -> bool:
        try:
            ipaddress.ip_address(address)
        except ValueError:  # 'unknown', '_hidden', '', 'unix'...
            return False
        return is_trusted((address, 0), self.allow)

    @staticmethod
    def _forbidden(who: str) -> Refusal:
        reason = f'{who} is not in asgi_ws.metrics_allow'
        return Refusal(403, reason, b'403 Forbidden', kind='client')

    def _expose(self, encoder: Any) -> bytes:
        """Encode the metrics: this process's, or in multiprocess mode
        those of every process, merged from their files."""
        if not multiprocess():
            return bytes(encoder(self.metrics.collector_registry))
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        return bytes(encoder(merged))
