"""Reading the metrics of tests/apps/metrics.py through its endpoint."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
import requests

from tests.support import ServerProcess, wait_until
from tests.wsclient import TIMEOUT

P = 'pyramid_asgi_ws_'
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: ServerProcess) -> Samples:
    """GET the metrics and return every sample by name and labels."""
    response = requests.get(server.url + '/metrics', timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: Any) -> float:
    """The sample ``name`` with exactly ``labels``; 0 if absent."""
    key = frozenset((k, str(v)) for k, v in labels.items())
    return samples.get((P + name, key), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: Any) -> float:
    """How much the sample ``name`` with ``labels`` grew between scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


def scraped_until(server, condition, what: str) -> Samples:
    """Scrape until ``condition(samples)`` holds; return those samples."""
    found: list[Samples] = []

    def check() -> bool:
        found[:] = [scrape(server)]
        return bool(condition(found[0]))

    wait_until(check, what)
    return found[0]


def flooded(server: ServerProcess, room: Any, before: Samples) -> Samples:
    """Publish 1 MB at a time through ``room`` (a socket of ``/room``,
    which reads what it publishes) until a group message was dropped
    (a stalled client's queue is full); return that scrape."""
    big = 'x' * 100_000 + '*10'
    for _ in range(100):  # 100 MB at most; it takes about 3
        room.send(big)
        for _ in range(10):
            room.recv(timeout=TIMEOUT)
        stalled = scrape(server)
        if grew(before, stalled, 'group_dropped_total'):
            return stalled
    raise AssertionError('no group message was dropped')
