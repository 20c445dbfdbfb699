"""The request's transaction: around the add-on's calls, and after it.

``pyramid_tm``'s tween begins a transaction around each view; no tween
runs for a WebSocket, so the add-on begins the request's transaction
itself around the application code it calls in the pool
(:func:`request_transaction`): the handshake's context and permission
check, each method of a ``SyncWebSocketConsumer``.

With ``pyramid_tm`` (or any use of the ``transaction`` package) the
transaction decides whether a request's work is kept, so what the rest of
the world hears about that work, such as a published group message, must
wait for its answer: it goes out after the commit and is dropped with an
abort (:func:`after_commit`). ``transaction`` is optional: without it, or
with no transaction in progress, the work is done at once.

An after-commit hook, not a data manager, carries the work: it runs only
once the commit has succeeded, and a failure then is logged instead of
turning a commit the database has made into an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import logging
from typing import Any

from pyramid.path import DottedNameResolver

log = logging.getLogger('pyramid_asgi_ws')


def _manager(request: Any) -> Any:
    """The transaction manager to ask: the request's, else the thread's."""
    manager = getattr(request, 'tm', None)  # pyramid_tm's request method
    if manager is not None:
        return manager
    try:
        import transaction
    except ImportError:  # an application without the transaction package
        return None
    return transaction.manager


def active_transaction(request: Any = None) -> Any:
    """Return the transaction in progress for ``request``, or ``None``.

    The request's manager (``pyramid_tm``'s ``request.tm``, explicit or
    not) is asked when it has one: a transaction of another manager is
    not the request's. Without ``request.tm``, the thread's default
    manager, ``transaction.manager``, is asked. Asking never begins a
    transaction, not even in a manager's implicit mode, where
    ``manager.get()`` would.
    """
    manager = _manager(request)
    # A ThreadTransactionManager holds this thread's manager as
    # ``manager``; a manager's ``_txn`` is the transaction it has begun and
    # not yet finished (``transaction`` has no public question for it:
    # ``get()`` begins one).
    return getattr(getattr(manager, 'manager', manager), '_txn', None)


def after_commit(
    request: Any, action: Callable[..., object], *args: Any
) -> None:
    """Call ``action(*args)`` once the transaction in progress commits.

    With no transaction in progress (see :func:`active_transaction`) the
    call is made now, and what it raises goes to the caller. Otherwise it
    is made after a successful commit, in the thread that commits, and
    dropped when the transaction aborts or its commit fails; what it
    raises then is logged, since the commit has been made.
    """
    txn = active_transaction(request)
    if txn is None:
        action(*args)
        return
    txn.addAfterCommitHook(_committed, (action, args))


def _committed(
    committed: bool, action: Callable[..., object], args: tuple[Any, ...]
) -> None:
    if not committed:
        return
    try:
        action(*args)
    except Exception:
        name = getattr(action, '__qualname__', repr(action))
        log.exception('%s after the commit failed', name)


@contextlib.contextmanager
def request_transaction(request: Any) -> Iterator[Any]:
    """Run the block in a transaction of ``request.tm``, if there is one.

    As ``pyramid_tm``'s tween does for a view: the transaction begins on
    entry, commits when the block ends (aborts if it was doomed) and
    aborts when it raises or when its commit fails (raised too);
    ``request.environ['tm.active']`` and ``['tm.manager']`` say so
    meanwhile. The block gets the manager, or
    ``None`` when there is no ``pyramid_tm`` or its ``tm.activate_hook``
    leaves this request out: then nothing is begun.
    """
    manager = _request_manager(request)
    if manager is None:
        yield None
        return
    environ = request.environ
    manager.begin()
    environ['tm.active'] = True
    environ['tm.manager'] = manager
    try:
        yield manager
    except BaseException:
        _finish(environ, manager.abort)
        raise
    if manager.isDoomed():
        _finish(environ, manager.abort)
        return
    try:
        _finish(environ, manager.commit)
    except BaseException:
        # as pyramid_tm's tween does: a transaction whose commit failed is
        # still the manager's until aborted, and the next begin() would
        # meet it (an explicit manager raises AlreadyInTransaction)
        manager.abort()
        raise


def _request_manager(request: Any) -> Any:
    """``request.tm``, unless there is no ``pyramid_tm`` or its
    ``tm.activate_hook`` leaves this request out."""
    manager = getattr(request, 'tm', None)
    if manager is None:
        return None
    hook = (request.registry.settings or {}).get('tm.activate_hook')
    if hook and not DottedNameResolver().maybe_resolve(hook)(request):
        return None
    return manager


def _finish(environ: dict[str, Any], finisher: Callable[[], None]) -> None:
    # inactive before it finishes, as in pyramid_tm, so that code run by
    # the commit sees no transaction to join
    environ.pop('tm.active', None)
    environ.pop('tm.manager', None)
    finisher()


__all__ = ['active_transaction', 'after_commit', 'request_transaction']
