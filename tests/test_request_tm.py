"""The handshake's check runs in the request's transaction (``pyramid_tm``).

No tween runs for a handshake, so the add-on begins ``request.tm``'s
transaction around the root factory (or ``factory=``), the security
policy and the forbidden view, as ``pyramid_tm``'s tween does around a
view: with the explicit manager, a policy querying ``request.dbsession``
works there. A data manager joined by the root factory records whether
the transaction committed; the consumer reports what it saw once it runs.
Through real servers and the notes example: tests/test_notes.py.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.security import Allowed, Denied
from pyramid_tm import is_tm_active
import pytest

from pyramid_asgi_ws.testing import HandshakeRefused, TestClient
from pyramid_asgi_ws.txn import request_transaction
from tests.asgi import Channel, http_scope, run, ws_scope
from tests.test_syncconsumer import Recording

#: What the root factories and the transactions did, in order.
SEEN: list[Any] = []


@pytest.fixture(autouse=True)
def seen() -> list[Any]:
    SEEN.clear()
    return SEEN


class Root:
    """Joins the transaction as ``request.dbsession`` does, if one is
    active; ``?root=`` makes it raise or doom the transaction."""

    def __init__(self, request: Any) -> None:
        SEEN.append(('active', is_tm_active(request)))
        request.add_finished_callback(lambda request: SEEN.append('finished'))
        if is_tm_active(request):
            request.tm.get().join(Recording('root', SEEN))
        what = request.params.get('root')
        if what == 'raise':
            raise KeyError('hostile')
        if what == 'http':
            raise HTTPNotFound('no such room')
        if what == 'doom':
            request.tm.doom()


class Policy:
    """Allows the ``?user=`` there is, once it has asked the transaction,
    as a query through ``request.dbsession`` would."""

    def identity(self, request: Any) -> Any:
        manager = getattr(request, 'tm', None)
        if manager is not None:
            manager.get()  # NoTransaction with the explicit manager, if none
        return request.params.get('user')

    def authenticated_userid(self, request: Any) -> Any:
        return self.identity(request)

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        if self.identity(request) is None:
            return Denied('nobody')
        return Allowed('somebody')


async def report(ws: Any) -> None:
    """Says whether a transaction is active now, and what happened."""
    await ws.accept()
    active = is_tm_active(ws.request)
    await ws.send_json({'active': active, 'seen': SEEN})
    await ws.close()


async def no_content(scope: Any, receive: Any, send: Any) -> None:
    await send({'type': 'http.response.start', 'status': 204})
    await send({'type': 'http.response.body', 'body': b''})


def make_app(tm: bool = True, **settings: Any) -> Any:
    config = Configurator(
        settings={
            'tm.manager_hook': 'pyramid_tm.explicit_manager',
            **settings,
        },
        root_factory=Root,
        security_policy=Policy(),
    )
    if tm:
        config.include('pyramid_tm')
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', report, permission='view')
    config.add_asgi_consumer('/open', report, factory=Root)
    config.add_asgi_consumer(
        '/http', no_content, protocol='http', permission='view'
    )
    return config.make_asgi_app()


def get(app: Any, path: str, query: bytes = b'') -> tuple[int, bytes]:
    """The status and body ``app`` answers to GET ``path?query``."""
    request = {'type': 'http.request', 'body': b'', 'more_body': False}
    channel = Channel(request)
    scope = http_scope(path, query_string=query)
    run(app(scope, channel.receive, channel.send))
    body = b''.join(m.get('body', b'') for m in channel.sent[1:])
    return channel.sent[0]['status'], body


def connect(app: Any, path: str) -> Any:
    """The consumer's report on a handshake to ``path``."""
    with TestClient(app) as client:
        with client.websocket_connect(path) as ws:
            return ws.receive_json()


def refusal(app: Any, path: str) -> int:
    """The status a handshake to ``path`` is refused with."""
    with TestClient(app) as client:
        with pytest.raises(HandshakeRefused) as info:
            with client.websocket_connect(path):
                pass  # pragma: no cover - the handshake is refused
    return info.value.status


def test_a_handshake_that_passes_commits_before_the_consumer_runs():
    report = connect(make_app(), '/ws?user=bob')
    # the policy asked request.tm inside the transaction: no NoTransaction
    assert report == {
        'active': False,
        'seen': [['active', True], ['committed', 'root']],
    }


@pytest.mark.parametrize(
    'query, status',
    [('root=raise&user=bob', 500), ('root=http&user=bob', 404), ('', 401)],
    ids=['raises', 'http-exception', 'refused'],
)
def test_a_handshake_that_raises_or_is_refused_aborts(query, status, seen):
    assert refusal(make_app(), f'/ws?{query}') == status
    # aborted before its finished callbacks run, as after a view
    assert seen == [('active', True), ('aborted', 'root'), 'finished']


def test_a_doomed_handshake_aborts_and_is_accepted():
    report = connect(make_app(), '/ws?root=doom&user=bob')
    assert report['seen'] == [['active', True], ['aborted', 'root']]


def test_a_factory_without_permission_runs_in_the_transaction_too():
    report = connect(make_app(), '/open')
    assert report['seen'] == [['active', True], ['committed', 'root']]


def test_an_http_consumers_check_runs_in_the_transaction(seen):
    app = make_app()
    assert get(app, '/http', b'user=bob') == (204, b'')
    assert seen == [('active', True), ('committed', 'root'), 'finished']
    seen.clear()
    assert get(app, '/http') == (401, b'401 Unauthorized')
    assert seen == [('active', True), ('aborted', 'root'), 'finished']


def test_an_activate_hook_can_leave_handshakes_out():
    app = make_app(**{'tm.activate_hook': lambda request: False})
    report = connect(app, '/open')
    assert report['seen'] == [['active', False]]


def test_apps_without_pyramid_tm_are_unaffected():
    app = make_app(tm=False)
    assert connect(app, '/ws?user=bob') == {
        'active': False,
        'seen': [['active', False]],
    }
    assert refusal(app, '/ws?root=raise&user=bob') == 500


def test_request_transaction_without_a_manager_begins_nothing():
    class Bare:
        environ: dict[str, Any] = {}

    with request_transaction(Bare()) as manager:
        assert manager is None
    assert Bare.environ == {}


def test_check_permission_reads_the_sockets_request():
    # the public check of a built request: no transaction of its own
    from pyramid_asgi_ws.handshake import check_permission, make_request
    from pyramid_asgi_ws.websocket import WebSocket

    app = make_app(tm=False)
    consumer = app.consumers.match('websocket', '/ws')[0]
    registry = app.registry

    def socket(query: bytes) -> WebSocket:
        scope = {**ws_scope('/ws', query_string=query), 'registry': registry}
        return WebSocket(
            scope,
            None,
            None,
            request_factory=lambda ws: make_request(registry, ws),
        )

    assert check_permission(socket(b'user=bob'), consumer) is None
    assert check_permission(socket(b''), consumer).status == 401
