"""The metrics of one application, and the reading of what others count.

:class:`Metrics` defines every collector in a
:class:`prometheus_client.CollectorRegistry` of its own, or in the
default ``REGISTRY``. Two kinds of metrics:

- counted as they happen, by the watchers of :mod:`~.watch`:
  connections, handshakes, refusals, messages, bytes, close codes, HTTP
  requests through the bridge;
- read by :meth:`Metrics.sample` from the parts that count already (the
  broadcaster, its backend, the thread pool, the send queues) on the
  event loop when the endpoint is scraped, and every :data:`INTERVAL`
  seconds without an endpoint or in multiprocess mode: the hot paths
  pay nothing for them.
"""

from __future__ import annotations

import os
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pyramid_asgi_ws.interfaces import IBroadcaster
from pyramid_asgi_ws.metrics import watch as watching

#: The prefix of every metric name.
NAMESPACE = 'pyramid_asgi_ws'

#: Seconds between two samples of a worker, without an endpoint or in
#: multiprocess mode.
INTERVAL = 5.0


def multiprocess() -> bool:
    """Whether prometheus_client runs in multiprocess mode here."""
    return bool(os.environ.get('PROMETHEUS_MULTIPROC_DIR'))


class Metrics:
    """The collectors of one application, in ``collector_registry``.

    ``default_registry`` puts them in prometheus_client's ``REGISTRY``
    instead of a private :class:`~prometheus_client.CollectorRegistry`;
    one application per process may do so.
    """

    def __init__(self, default_registry: bool = False) -> None:
        self.collector_registry: CollectorRegistry = (
            prometheus_client.REGISTRY
            if default_registry
            else CollectorRegistry(auto_describe=True)
        )
        self._seen: dict[str, tuple[Any, int]] = {}
        self._children: dict[str, tuple[Any, ...]] = {}
        self.sampler: Any = None  # the task sampling in multiprocess mode
        registry = self.collector_registry
        by_consumer = ['consumer']

        def counter(name: str, doc: str, labels: Any = ()) -> Counter:
            return Counter(
                name, doc, labels, namespace=NAMESPACE, registry=registry
            )

        def gauge(
            name: str, doc: str, labels: Any = (), mode: str = 'livesum'
        ) -> Gauge:
            return Gauge(
                name,
                doc,
                labels,
                namespace=NAMESPACE,
                registry=registry,
                multiprocess_mode=mode,  # type: ignore[arg-type]
            )

        self.connections = gauge(
            'websocket_connections',
            'WebSocket connections open now (accepted, not yet ended).',
            by_consumer,
        )
        self.accepted = counter(
            'websocket_accepted', 'WebSocket handshakes accepted.', by_consumer
        )
        self.refusals = counter(
            'refusals',
            'Handshakes and HTTP consumer requests refused, by status and '
            'reason class.',
            ['protocol', 'consumer', 'status', 'reason'],
        )
        self.messages_received = counter(
            'websocket_messages_received',
            'WebSocket messages received from clients.',
            by_consumer,
        )
        self.messages_sent = counter(
            'websocket_messages_sent',
            'WebSocket messages sent to clients.',
            by_consumer,
        )
        self.bytes_received = counter(
            'websocket_received_bytes',
            'Bytes of WebSocket messages received (text as UTF-8).',
            by_consumer,
        )
        self.bytes_sent = counter(
            'websocket_sent_bytes',
            'Bytes of WebSocket messages sent (text as UTF-8).',
            by_consumer,
        )
        self.closes = counter(
            'websocket_closes',
            'WebSocket connections closed, by close code and by the side '
            'that closed first.',
            ['consumer', 'code', 'initiator'],
        )
        self.sse_streams = gauge(
            'sse_streams',
            'Event streams open now (started, consumer still running).',
            by_consumer,
        )
        self.sse_accepted = counter(
            'sse_accepted', 'Event streams started.', by_consumer
        )
        self.http_responses = counter(
            'bridge_responses',
            'HTTP responses of the Pyramid application, by status.',
            ['status'],
        )
        self.http_duration = Histogram(
            'bridge_request_duration_seconds',
            'Seconds from an HTTP request to the end of its response, for '
            'the Pyramid application.',
            namespace=NAMESPACE,
            registry=registry,
        )
        self.threads = gauge(
            'bridge_threads', 'Threads started by the bridge thread pool.'
        )
        self.threads_busy = gauge(
            'bridge_threads_busy', 'Bridge threads running a call now.'
        )
        self.waiting = gauge(
            'bridge_waiting', 'Calls waiting for a free bridge thread.'
        )
        self.suspended = gauge(
            'bridge_suspended',
            'Async views awaiting on the event loop, their threads free.',
        )
        self.queued = gauge(
            'send_queue_messages',
            'Group messages waiting in the send queues of all connections.',
        )
        self.deepest = gauge(
            'send_queue_deepest',
            'Group messages waiting in the fullest send queue.',
            mode='livemax',
        )
        self.groups = gauge('groups', 'Groups with members in this process.')
        self.published = counter(
            'group_published', 'Messages published to groups.'
        )
        self.received = counter(
            'group_received', 'Group messages the backend delivered here.'
        )
        self.delivered = counter(
            'group_delivered',
            'Group messages handed to the send queues or hooks of members.',
        )
        self.dropped = counter(
            'group_dropped', 'Group messages lost to full send queues.'
        )
        self.recovered = counter(
            'group_recovered',
            'Group messages read back from history after the subscription '
            'was lost.',
        )
        self.lost = counter(
            'group_lost',
            'Times a group could not be caught up after the subscription '
            'was lost (its connections closed with 1012).',
        )
        self.reconnects = counter(
            'backend_reconnects',
            'Times the broadcast backend lost its connection.',
            ['backend'],
        )
        self.backend_errors = counter(
            'backend_errors',
            'Operations the broadcast backend failed (BroadcastError).',
            ['backend'],
        )

    def children(self, consumer: str) -> tuple[Any, ...]:
        """Return the per-consumer collectors, labelled once per consumer:
        connections, accepted, messages and bytes received and sent."""
        found = self._children.get(consumer)
        if found is None:
            found = self._children[consumer] = tuple(
                metric.labels(consumer)
                for metric in (
                    self.connections,
                    self.accepted,
                    self.messages_received,
                    self.bytes_received,
                    self.messages_sent,
                    self.bytes_sent,
                )
            )
        return found

    def watch(
        self,
        scope: dict[str, Any],
        found: Any,
        receive: watching.Receive,
        send: watching.Send,
    ) -> tuple[watching.Receive, watching.Send]:
        """Return the scope's ``receive`` and ``send``, watched (see
        :func:`.watch.watch`)."""
        return watching.watch(self, scope, found, receive, send)

    def ended(self, scope: dict[str, Any]) -> None:
        """Tell the metrics that the consumer of a WebSocket or an event
        stream is done."""
        watching.ended(scope)

    # -- sampling ---------------------------------------------------------

    def sample(self, app: Any) -> None:
        """Read what the application's parts count into the collectors.

        On the event loop, which alone changes what it reads: the send
        queues of the open WebSockets and event streams, the bridge's
        thread pool, the broadcaster and its backend.
        """
        pool = app.wsgi.pool
        self.threads.set(len(pool.threads))
        self.threads_busy.set(pool.busy)
        self.waiting.set(pool.waiting)
        # the pool's set holds a job as long as its request does: count
        # those awaiting now
        self.suspended.set(
            sum(job.task is not None for job in list(pool.suspended))
        )
        depths = [conn.pending for conn in app.connections]
        depths += [stream.pending for stream in app.streams]
        self.queued.set(sum(depths))
        self.deepest.set(max(depths, default=0))
        broadcaster = app.registry.queryUtility(IBroadcaster)
        if broadcaster is None:
            return
        self.groups.set(len(broadcaster.groups))
        for name in ('published', 'received', 'delivered', 'dropped'):
            self._advance(name, broadcaster, getattr(broadcaster, name))
        recovery = broadcaster.recovery
        for name in ('recovered', 'lost'):
            self._advance(name, recovery, getattr(recovery, name))
        backend = broadcaster.backend
        if backend is not None:
            scheme = broadcaster.url.split('://', 1)[0]
            for name in ('reconnects', 'backend_errors'):
                count = getattr(backend, BACKEND_COUNTS[name], 0)
                self._advance(name, backend, count, scheme)

    def _advance(
        self, name: str, source: Any, count: int, *labels: str
    ) -> None:
        """Add to the counter ``name`` what ``source`` counted since the
        last sample; a new source (a restarted backend) starts at 0."""
        last_source, last = self._seen.get(name, (None, 0))
        if last_source is not source:
            last = 0
        if count > last:
            counter = getattr(self, name)
            (counter.labels(*labels) if labels else counter).inc(count - last)
        self._seen[name] = (source, count)


#: The backend attribute each backend counter reads.
BACKEND_COUNTS = {'reconnects': 'reconnects', 'backend_errors': 'failures'}
