"""Prometheus metrics of the application, and their scrape endpoint.

Off by default. ``asgi_ws.metrics_path`` (say ``/metrics``) turns them on
and serves them there to the clients ``asgi_ws.metrics_allow`` allows;
``asgi_ws.metrics = true`` turns them on without an endpoint, for an
application that exports its metrics itself (see :func:`get_metrics`).
The package reads from the bottom up: :mod:`~.collectors` (the metrics
and their sampling), :mod:`~.watch` (what the ASGI messages of a scope
count) and :mod:`~.endpoint`. It needs ``prometheus_client`` (the
``metrics`` extra) only when metrics are on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from typing import TYPE_CHECKING, Any

from pyramid.config import PHASE2_CONFIG
from pyramid.exceptions import ConfigurationError
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_asgi_ws.events import ApplicationShutdown, ApplicationStartup
from pyramid_asgi_ws.interfaces import IASGISettings, IMetrics

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.metrics.collectors import Metrics

#: The name of the endpoint's consumer (``pconsumers`` lists it).
ENDPOINT_NAME = 'asgi_ws.metrics'

_PATH = re.compile(r'^/[^\s{}*?#]*$')


def get_metrics(registry: Any) -> Metrics:
    """Return the application's :class:`~.collectors.Metrics`.

    Its ``collector_registry`` is the
    :class:`prometheus_client.CollectorRegistry` holding them, for an
    application that exports metrics of its own (without an endpoint,
    the values read from the pool, the queues and the broadcaster are
    sampled every :data:`~.collectors.INTERVAL` seconds). Raises
    :class:`RuntimeError` when metrics are off.
    """
    metrics = registry.queryUtility(IMetrics)
    if metrics is None:
        raise RuntimeError(
            'metrics are off: set asgi_ws.metrics = true or '
            'asgi_ws.metrics_path'
        )
    return metrics


def _path(settings: dict[str, Any]) -> str | None:
    """The endpoint's path: a plain absolute path, not a pattern."""
    path: str | None = settings['metrics_path']
    if path is not None and not _PATH.match(path):
        raise ConfigurationError(
            'asgi_ws.metrics_path must be a path such as /metrics (no '
            f'placeholder, query or space), not {path!r}'
        )
    return path


def _enabled(settings: dict[str, Any]) -> bool:
    """Whether the settings turn metrics on; contradictions are errors."""
    path = _path(settings)
    enabled = settings['metrics']
    if enabled is None:
        enabled = path is not None
    elif not enabled and path is not None:
        raise ConfigurationError(
            f'asgi_ws.metrics_path is {path!r} but asgi_ws.metrics is off: '
            'remove one of them'
        )
    if not enabled and settings['metrics_default_registry']:
        raise ConfigurationError(
            'asgi_ws.metrics_default_registry is on but the metrics are '
            'off: set asgi_ws.metrics = true or asgi_ws.metrics_path'
        )
    return bool(enabled)


def _make(settings: dict[str, Any]) -> Metrics:
    try:
        from pyramid_asgi_ws.metrics.collectors import Metrics
    except ImportError as exc:
        raise ConfigurationError(
            'asgi_ws metrics need prometheus_client: install '
            f'pyramid_asgi_ws[metrics] ({exc})'
        ) from None
    try:
        return Metrics(settings['metrics_default_registry'])
    except ValueError as exc:  # prometheus_client: duplicated timeseries
        raise ConfigurationError(
            'asgi_ws.metrics_default_registry: the default registry '
            f'already holds these metrics, one application per process may '
            f'use it ({exc})'
        ) from None


async def _sample_every(metrics: Metrics, app: Any, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        metrics.sample(app)


def includeme(config: Any) -> None:
    """Register the metrics and the endpoint that the settings ask for.

    In a deferred action once the settings are parsed: the
    :class:`~pyramid_asgi_ws.interfaces.IMetrics` utility, the endpoint
    (an HTTP consumer named :data:`ENDPOINT_NAME`, which needs no
    permission: ``asgi_ws.metrics_allow`` guards it) and, without an
    endpoint or in prometheus_client's multiprocess mode (where a
    scrape reaches one worker), lifespan subscribers that sample this
    worker every few seconds and, in multiprocess mode, drop its live
    gauges when it stops.
    """

    def register() -> None:
        registry = config.registry
        settings = registry.getUtility(IASGISettings)
        if not _enabled(settings):
            return
        path = settings['metrics_path']
        if path is not None and not settings['metrics_allow']:
            raise ConfigurationError(
                'asgi_ws.metrics_allow is empty, so no client could read '
                "asgi_ws.metrics_path; list addresses or networks, or '*'"
            )
        metrics = _make(settings)
        registry.registerUtility(metrics, IMetrics)
        if path is not None:
            from pyramid_asgi_ws.metrics.endpoint import MetricsEndpoint

            config.add_asgi_consumer(
                path,
                MetricsEndpoint(metrics, settings['metrics_allow']),
                protocol='http',
                name=ENDPOINT_NAME,
                permission=NO_PERMISSION_REQUIRED,
            )
        from pyramid_asgi_ws.metrics import collectors

        # no scrape of the endpoint samples them: sample every few seconds
        if path is None or collectors.multiprocess():
            config.add_subscriber(_started, ApplicationStartup)
            config.add_subscriber(_stopped, ApplicationShutdown)

    config.action(('asgi_ws metrics',), register, order=PHASE2_CONFIG)


def _started(event: Any) -> None:
    from pyramid_asgi_ws.metrics.collectors import INTERVAL

    metrics = get_metrics(event.registry)
    metrics.sampler = asyncio.ensure_future(
        _sample_every(metrics, event.app, INTERVAL)
    )


async def _stopped(event: Any) -> None:
    from pyramid_asgi_ws.metrics.collectors import multiprocess

    metrics = get_metrics(event.registry)
    sampler, metrics.sampler = metrics.sampler, None
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    if multiprocess():
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(os.getpid())


__all__ = ['ENDPOINT_NAME', 'get_metrics', 'includeme']
