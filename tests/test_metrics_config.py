"""The metrics settings, their errors, and the metrics in the registry."""

from __future__ import annotations

import sys

from prometheus_client import REGISTRY, CollectorRegistry
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
import pytest

from pyramid_asgi_ws.interfaces import IConsumerRouter, IMetrics
from pyramid_asgi_ws.metrics import ENDPOINT_NAME, get_metrics


async def ok(scope, receive, send):  # pragma: no cover - never served
    pass


def make_app(**settings):
    config = Configurator(
        settings={f'asgi_ws.{k}': v for k, v in settings.items()}
    )
    config.include('pyramid_asgi_ws')
    return config.make_asgi_app()


def test_metrics_are_off_by_default():
    app = make_app()
    assert app.metrics is None
    assert app.registry.queryUtility(IMetrics) is None
    with pytest.raises(RuntimeError, match='metrics are off'):
        get_metrics(app.registry)


def test_a_blank_path_is_no_endpoint():
    assert make_app(metrics_path='  ').metrics is None


def test_metrics_on_without_an_endpoint():
    app = make_app(metrics='true')
    metrics = get_metrics(app.registry)
    assert app.metrics is metrics
    assert isinstance(metrics.collector_registry, CollectorRegistry)
    assert metrics.collector_registry is not REGISTRY
    router = app.registry.getUtility(IConsumerRouter)
    assert router.get(ENDPOINT_NAME) is None


def test_the_endpoint_is_an_http_consumer():
    app = make_app(metrics_path='/-/metrics')
    consumer = app.registry.getUtility(IConsumerRouter).get(ENDPOINT_NAME)
    assert (consumer.pattern, consumer.protocol) == ('/-/metrics', 'http')
    assert consumer.target.allow == ('127.0.0.0/8', '::1')


def test_two_applications_keep_their_own_metrics():
    one, two = make_app(metrics='on'), make_app(metrics='on')
    registries = one.metrics.collector_registry, two.metrics.collector_registry
    assert registries[0] is not registries[1]
    one.metrics.children('c')[1].inc()
    name = 'pyramid_asgi_ws_websocket_accepted_total'
    assert registries[0].get_sample_value(name, {'consumer': 'c'}) == 1
    assert registries[1].get_sample_value(name, {'consumer': 'c'}) is None


def test_the_default_registry_holds_one_application():
    app = make_app(metrics='on', metrics_default_registry='true')
    try:
        assert app.metrics.collector_registry is REGISTRY
        with pytest.raises(
            ConfigurationError, match='metrics_default_registry'
        ):
            make_app(metrics='on', metrics_default_registry='true')
    finally:
        collectors = {
            collector
            for name, collector in list(REGISTRY._names_to_collectors.items())
            if name.startswith('pyramid_asgi_ws_')
        }
        for collector in collectors:
            REGISTRY.unregister(collector)


@pytest.mark.parametrize(
    'settings, message',
    [
        ({'metrics_path': 'metrics'}, "must be a path .* not 'metrics'"),
        ({'metrics_path': '/m/{name}'}, 'must be a path'),
        ({'metrics_path': '/m?x=1'}, 'must be a path'),
        ({'metrics': 'maybe'}, "asgi_ws.metrics must be true or false"),
        (
            {'metrics_path': '/m', 'metrics': 'off'},
            "metrics_path is '/m' but asgi_ws.metrics is off",
        ),
        (
            {'metrics_path': '/m', 'metrics_allow': 'localhost'},
            "asgi_ws.metrics_allow: 'localhost' is not an IP address",
        ),
        (
            {'metrics_path': '/m', 'metrics_allow': ''},
            'metrics_allow is empty',
        ),
        (
            {'metrics': 'on', 'metrics_default_registry': 'perhaps'},
            'asgi_ws.metrics_default_registry must be true or false',
        ),
        (  # the application would find nothing in REGISTRY
            {'metrics_default_registry': 'true'},
            'metrics_default_registry is on but the metrics are off',
        ),
        (
            {'metrics': 'off', 'metrics_default_registry': 'true'},
            'metrics_default_registry is on but the metrics are off',
        ),
    ],
)
def test_settings_not_understood_are_errors(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        make_app(**settings)


def test_metrics_without_prometheus_client(monkeypatch):
    monkeypatch.setitem(sys.modules, 'prometheus_client', None)
    monkeypatch.delitem(sys.modules, 'pyramid_asgi_ws.metrics.collectors')
    with pytest.raises(
        ConfigurationError, match=r'pyramid_asgi_ws\[metrics\]'
    ):
        make_app(metrics_path='/metrics')
    assert make_app().metrics is None  # the package works without it


def test_a_consumer_of_the_app_at_the_path_overrides_the_endpoint():
    # as an application overrides what an add-on it includes registers
    config = Configurator(settings={'asgi_ws.metrics_path': '/metrics'})
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/metrics', ok, protocol='http', name='mine')
    config.commit()
    router = config.registry.getUtility(IConsumerRouter)
    assert router.match('http', '/metrics')[0].name == 'mine'
    assert router.get(ENDPOINT_NAME) is None
