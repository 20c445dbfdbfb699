"""Fixtures shared by the test modules."""

from __future__ import annotations

from pyramid import testing
from pyramid.threadlocal import manager
import pytest
import transaction

from tests.support import SERVERS, serve


@pytest.fixture(autouse=True)
def _nothing_left_in_the_thread():
    """Fail a test that leaves a pushed request or a transaction in the
    test thread: the tests after it would run under them (a publish
    waiting for a commit that never comes)."""
    yield
    pushed = list(manager.stack)
    begun = getattr(transaction.manager.manager, '_txn', None)
    manager.clear()
    if begun is not None:
        transaction.abort()
    assert not pushed, f'the test left {pushed} pushed'
    assert begun is None, f'the test left {begun} in progress'


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
