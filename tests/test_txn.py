"""pyramid_asgi_ws.txn: work that waits for the transaction's answer.

Through a real server and pyramid_tm: tests/test_syncdb.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from types import SimpleNamespace
from typing import Any

from pyramid.config import Configurator
import pytest
import transaction

from pyramid_asgi_ws.broadcast import (
    BroadcastError,
    broadcast,
    get_broadcaster,
)
from pyramid_asgi_ws.txn import (
    active_transaction,
    after_commit,
    request_transaction,
)


@pytest.fixture(autouse=True)
def no_transaction_left():
    """Each test starts and ends with the thread's manager idle."""
    transaction.abort()
    yield
    transaction.abort()


class FailingVote:
    """A data manager whose vote fails, so the commit does."""

    transaction_manager = transaction.manager

    def tpc_vote(self, txn):
        raise RuntimeError('vote failed')

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_abort = tpc_finish = abort

    def sortKey(self):
        return 'failing'


def test_with_no_transaction_the_action_runs_now_and_may_raise():
    sent = []
    after_commit(None, sent.append, 'now')
    assert sent == ['now']
    with pytest.raises(ZeroDivisionError):
        after_commit(SimpleNamespace(), lambda: 1 / 0)


def test_asking_never_begins_a_transaction():
    assert active_transaction() is None
    assert transaction.manager.manager._txn is None


def test_without_the_transaction_package_everything_runs_now(monkeypatch):
    monkeypatch.setitem(sys.modules, 'transaction', None)
    transaction.begin()  # invisible without the package
    sent = []
    after_commit(None, sent.append, 'now')
    assert sent == ['now']


def test_the_threads_manager_holds_it_until_the_commit_in_order():
    sent = []
    transaction.begin()
    after_commit(None, sent.append, 'first')
    after_commit(SimpleNamespace(), sent.append, 'second')
    assert sent == []
    transaction.commit()
    assert sent == ['first', 'second']


def test_an_abort_drops_it():
    sent = []
    transaction.begin()
    after_commit(None, sent.append, 'dropped')
    transaction.abort()
    assert sent == []


def test_a_failed_commit_drops_it():
    sent = []
    txn = transaction.begin()
    txn.join(FailingVote())
    after_commit(None, sent.append, 'dropped')
    with pytest.raises(RuntimeError, match='vote failed'):
        transaction.commit()
    transaction.abort()
    assert sent == []


def test_the_requests_explicit_manager_comes_first():
    sent = []
    manager = transaction.TransactionManager(explicit=True)
    request = SimpleNamespace(tm=manager)
    assert active_transaction(request) is None
    txn = manager.begin()
    assert active_transaction(request) is txn
    after_commit(request, sent.append, 'kept')
    manager.commit()
    assert sent == ['kept']


def test_an_idle_request_manager_is_not_the_threads():
    request = SimpleNamespace(tm=transaction.TransactionManager(explicit=True))
    txn = transaction.begin()
    assert active_transaction(request) is None  # the request's is idle
    assert active_transaction(SimpleNamespace()) is txn  # no request.tm
    request.tm = transaction.manager  # pyramid_tm's default manager
    assert active_transaction(request) is txn


def tm_request(manager: Any) -> Any:
    """A request as pyramid_tm makes it, with ``manager`` as its tm."""
    return SimpleNamespace(
        tm=manager, environ={}, registry=SimpleNamespace(settings={})
    )


@pytest.mark.parametrize(
    'manager',
    [transaction.manager, transaction.TransactionManager(explicit=True)],
    ids=['implicit', 'explicit'],
)
def test_a_failed_commit_is_aborted_and_raised(manager):
    request = tm_request(manager)
    sent = []
    with pytest.raises(RuntimeError, match='vote failed'):
        with request_transaction(request):
            manager.get().join(FailingVote())
            after_commit(request, sent.append, 'dropped')
    # nothing is left in the thread: the next transaction is a new one
    assert active_transaction(request) is None
    assert request.environ == {}
    with request_transaction(request) as again:
        assert again is manager
        after_commit(request, sent.append, 'kept')
    assert sent == ['kept']


@pytest.mark.parametrize(
    'action, name',
    [
        (lambda: 1 / 0, '<lambda>'),
        (functools.partial(divmod, 1, 0), 'functools.partial(<built-in'),
    ],
)
def test_a_failure_after_the_commit_is_logged_and_the_commit_stands(
    caplog, action, name
):
    sent = []
    transaction.begin()
    after_commit(None, action)
    after_commit(None, sent.append, 'still sent')
    with caplog.at_level(logging.ERROR, 'pyramid_asgi_ws'):
        transaction.commit()
    assert sent == ['still sent']
    (record,) = [r for r in caplog.records if r.name == 'pyramid_asgi_ws']
    assert record.getMessage().startswith(name)
    assert record.getMessage().endswith('after the commit failed')
    assert record.exc_info[0] is ZeroDivisionError


# -- request.broadcast in a transaction -------------------------------------


@pytest.fixture
def request_():
    """A request of an app with a broadcaster and no server loop."""
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
    return SimpleNamespace(registry=config.registry)


def test_request_broadcast_publishes_only_after_the_commit(request_):
    broadcaster = get_broadcaster(request_.registry)
    with transaction.manager:
        broadcast(request_, 'g', {'n': 1})
        assert broadcaster.published == 0
    assert broadcaster.published == 1


@pytest.mark.parametrize(
    'group, message, error, match',
    [
        ('g', object(), TypeError, 'a group message must be text, bytes or'),
        ('', 'x', ValueError, "a group name must be a non-empty str, not ''"),
        (None, 'x', ValueError, 'a group name must be a non-empty str'),
    ],
)
def test_request_broadcast_in_a_transaction_checks_at_the_call(
    request_, caplog, group, message, error, match
):
    # the view hears of it, not only the log after the commit
    with caplog.at_level(logging.ERROR, 'pyramid_asgi_ws'):
        with transaction.manager:
            with pytest.raises(error, match=match):
                broadcast(request_, group, message)
    assert not caplog.records
    assert get_broadcaster(request_.registry).published == 0


def test_a_closed_broadcaster_refuses_request_broadcast_in_a_transaction(
    request_,
):
    broadcaster = get_broadcaster(request_.registry)
    asyncio.run(broadcaster.close())
    with transaction.manager:
        with pytest.raises(BroadcastError, match='the broadcaster is closed'):
            broadcast(request_, 'g', 'late')
    assert broadcaster.published == 0
