"""Fixtures shared by the test modules."""

from __future__ import annotations

from pyramid import testing
import pytest

from tests.support import SERVERS, serve


@pytest.fixture
def config():
    """A configurator with the add-on included, not autocommitting."""
    config = testing.setUp(settings={}, autocommit=False)
    config.include('pyramid_asgi_ws')
    yield config
    testing.tearDown()


@pytest.fixture(scope='module', params=SERVERS)
def server(request):
    """tests/apps/core.py served by each real ASGI server in turn."""
    with serve(request.param, 'tests.apps.core:app') as running:
        yield running
