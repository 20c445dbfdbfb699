"""SyncWebSocketConsumer and its SyncWebSocket handle, in process.

The database and the 200 sockets are in tests/test_syncdb.py, through a
real uvicorn; here the test client drives each branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPForbidden, HTTPTooManyRequests
from pyramid.threadlocal import get_current_request
import pytest
import transaction

from pyramid_asgi_ws import SyncWebSocketConsumer, WebSocketDisconnect
from pyramid_asgi_ws.syncconsumer import SyncWebSocket
from pyramid_asgi_ws.testing import HandshakeRefused, TestClient
from tests.asgi import Channel, ws_scope
from tests.support import until, wait_until
from tests.test_docs_examples import load


def make_app(*consumers: tuple[str, Any], tm: bool = False, **settings):
    config = Configurator(settings=settings)
    if tm:
        config.include('pyramid_tm')
    config.include('pyramid_asgi_ws')
    for pattern, consumer in consumers:
        config.add_asgi_consumer(pattern, consumer)
    return config.make_asgi_app()


def test_the_default_methods_accept_and_ignore():
    class Plain(SyncWebSocketConsumer):
        pass

    with TestClient(make_app(('/plain', Plain))) as client:
        with client.websocket_connect('/plain') as ws:
            ws.send_text('ignored')
            ws.close()
    assert Plain.encoding == 'text'


class Recorder(SyncWebSocketConsumer):
    """Records where and with what each method runs."""

    encoding = 'json'
    log: list[Any] = []

    def on_connect(self, ws):
        with pytest.raises(RuntimeError):  # not on the event loop
            asyncio.get_running_loop()
        assert get_current_request() is ws.request
        assert self.ws is ws
        ws.accept(headers={'x-sync': 'yes'})
        ws.send_json({'room': ws.matchdict['room']})

    def on_receive(self, ws, data):
        self.log.append(data)
        if data == 'bytes':
            ws.send_bytes(b'\x00raw')
        elif data == 'mode':
            ws.send_json({'as': 'binary'}, mode='binary')
        elif data == 'close':
            ws.close(4000, 'asked')
            with pytest.raises(RuntimeError, match='closed the socket'):
                ws.send_text('too late')
        else:
            ws.send_text(f'got {data}')

    def on_disconnect(self, ws, code):
        self.log.append(('gone', code))


def serve_recorder() -> TestClient:
    return TestClient(make_app(('/rooms/{room}', Recorder)))


def test_methods_run_in_the_pool_in_order_with_the_request_current():
    Recorder.log = []
    with serve_recorder() as client:
        with client.websocket_connect('/rooms/lobby') as ws:
            assert ws.receive_json() == {'room': 'lobby'}
            for number in range(5):
                ws.send_json(number)
            assert [ws.receive_text() for _ in range(5)] == [
                f'got {number}' for number in range(5)
            ]
            ws.send_json('bytes')
            assert ws.receive_bytes() == b'\x00raw'
            ws.send_json('mode')
            assert ws.receive_bytes() == b'{"as":"binary"}'
            ws.send_json('close')
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 4000
        # on_disconnect hears the close the consumer made
        wait_until(lambda: ('gone', 4000) in Recorder.log, 'on_disconnect')
    assert Recorder.log == [0, 1, 2, 3, 4, 'bytes', 'mode', 'close'] + [
        ('gone', 4000)
    ]


def test_on_disconnect_gets_the_clients_code():
    Recorder.log = []
    with serve_recorder() as client:
        with client.websocket_connect('/rooms/x') as ws:
            ws.receive_json()
            ws.close(4321)
        wait_until(lambda: ('gone', 4321) in Recorder.log, 'on_disconnect')


class Failing(SyncWebSocketConsumer):
    def on_connect(self, ws):
        if ws.matchdict['when'] == 'connect':
            raise HTTPForbidden()
        ws.accept()

    def on_receive(self, ws, data):
        if data == 'http':
            raise HTTPTooManyRequests()
        raise ValueError(data)


@pytest.mark.parametrize('message, code', [('http', 4429), ('other', 1011)])
def test_an_exception_closes_as_in_an_async_consumer(message, code):
    with TestClient(make_app(('/fail/{when}', Failing))) as client:
        with client.websocket_connect('/fail/receive') as ws:
            ws.send_text(message)
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == code


def test_an_exception_before_accepting_refuses_the_handshake():
    with TestClient(make_app(('/fail/{when}', Failing))) as client:
        with pytest.raises(HandshakeRefused) as info:
            with client.websocket_connect('/fail/connect'):
                pass
        assert info.value.status == 403


class Groups(SyncWebSocketConsumer):
    def on_receive(self, ws, data):
        op, group = data.split()
        if op == 'join':
            ws.join(group)
        elif op == 'leave':
            ws.leave(group)
        else:
            ws.broadcast(group, f'to {group}')
        ws.send_text(f'{op} done')


class BadBroadcast(SyncWebSocketConsumer):
    def on_receive(self, ws, data):
        group, message = ('', 'x') if data == 'group' else ('g', {1j})
        try:
            ws.broadcast(group, message)
        except (TypeError, ValueError) as exc:
            ws.send_text(type(exc).__name__)


def test_broadcast_in_the_transaction_checks_at_the_call():
    # with pyramid_tm the publish waits for the commit; the checks do not
    with TestClient(make_app(('/bad', BadBroadcast), tm=True)) as client:
        with client.websocket_connect('/bad') as ws:
            ws.send_text('group')
            assert ws.receive_text() == 'ValueError'
            ws.send_text('message')
            assert ws.receive_text() == 'TypeError'


def test_groups_from_the_pool():
    with TestClient(make_app(('/groups', Groups))) as client:
        with client.websocket_connect('/groups') as ws:
            ws.send_text('join g')
            assert ws.receive_text() == 'join done'
            ws.send_text('publish g')
            assert sorted([ws.receive_text(), ws.receive_text()]) == [
                'publish done',
                'to g',
            ]
            ws.send_text('leave g')
            assert ws.receive_text() == 'leave done'
            ws.send_text('publish g')
            assert ws.receive_text() == 'publish done'
            ws.send_text('leave g')  # nothing came for g in between
            assert ws.receive_text() == 'leave done'


def test_a_handle_called_from_the_loop_refuses_to_wait_for_itself():
    async def on_the_loop() -> None:
        handle = SyncWebSocket(object(), asyncio.get_running_loop())  # type: ignore[arg-type]

        async def never() -> None:
            raise AssertionError('never run')

        with pytest.raises(RuntimeError, match='from the event loop'):
            handle._wait(never())

    asyncio.run(on_the_loop())


@pytest.mark.parametrize('encoding', ['xml', None])
def test_an_unknown_encoding_fails_when_the_class_is_defined(encoding):
    with pytest.raises(ConfigurationError) as info:
        type('Wrong', (SyncWebSocketConsumer,), {'encoding': encoding})

    message = str(info.value)
    assert 'Wrong.encoding must be one of text, bytes, json' in message
    assert message.endswith(f'not {encoding!r}')


class Saver(SyncWebSocketConsumer):
    """Joins a data manager to each call's transaction."""

    kept: list[Any] = []

    def on_receive(self, ws, data):
        request = ws.request
        assert request.environ['tm.active'] is True
        assert request.environ['tm.manager'] is request.tm
        request.tm.get().join(Recording(data, self.kept))
        if data == 'doom':
            request.tm.doom()
        elif data == 'raise':
            raise ValueError(data)
        ws.send_text(data)


class Recording:
    """A data manager recording whether its transaction committed."""

    def __init__(self, data: str, kept: list[Any]) -> None:
        self.data = data
        self.kept = kept
        self.transaction_manager = transaction.manager

    def abort(self, txn):
        self.kept.append(('aborted', self.data))

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        pass

    def tpc_finish(self, txn):
        self.kept.append(('committed', self.data))

    def tpc_abort(self, txn):
        self.abort(txn)

    def sortKey(self):
        return 'recording'


@pytest.mark.parametrize('hook', [None, lambda request: True])
def test_each_call_runs_in_the_requests_transaction(hook):
    Saver.kept = []
    settings = {'tm.manager_hook': 'pyramid_tm.explicit_manager'}
    if hook is not None:
        settings['tm.activate_hook'] = hook
    app = make_app(('/save', Saver), tm=True, **settings)
    with TestClient(app) as client:
        with client.websocket_connect('/save') as ws:
            ws.send_text('one')
            assert ws.receive_text() == 'one'
            ws.send_text('doom')
            ws.send_text('two')
            assert [ws.receive_text(), ws.receive_text()] == ['doom', 'two']
            ws.send_text('raise')
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 1011
    assert Saver.kept == [
        ('committed', 'one'),
        ('aborted', 'doom'),
        ('committed', 'two'),
        ('aborted', 'raise'),
    ]


class FailingVote(Recording):
    """A data manager whose vote fails, so the commit does."""

    def tpc_vote(self, txn):
        raise RuntimeError('vote failed')


class FailingCommit(SyncWebSocketConsumer):
    """Its message's commit fails; its on_disconnect commits."""

    def on_receive(self, ws, data):
        ws.request.tm.get().join(FailingVote(data, Saver.kept))

    def on_disconnect(self, ws, code):
        ws.request.tm.get().join(Recording('gone', Saver.kept))
        Saver.kept.append(('code', code))


@pytest.mark.parametrize(
    'hook', [None, 'pyramid_tm.explicit_manager'], ids=['implicit', 'explicit']
)
def test_a_failed_commit_is_aborted_and_on_disconnect_still_runs(hook):
    Saver.kept = []
    settings = {'asgi_ws.threads': '1'}  # one thread: the next call's too
    if hook is not None:
        settings['tm.manager_hook'] = hook
    app = make_app(('/commit', FailingCommit), tm=True, **settings)
    with TestClient(app) as client:
        with client.websocket_connect('/commit') as ws:
            ws.send_text('fails')
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 1011
        wait_until(lambda: ('committed', 'gone') in Saver.kept, 'the end')
    # the failed commit aborts the data manager (tpc_abort, then abort)
    assert set(Saver.kept[:-2]) == {('aborted', 'fails')}
    assert Saver.kept[-2:] == [('code', 1011), ('committed', 'gone')]


class Untouched(SyncWebSocketConsumer):
    def on_receive(self, ws, data):
        ws.send_text(repr(ws.request.environ.get('tm.active')))


def test_an_activate_hook_can_leave_consumers_out():
    app = make_app(
        ('/out', Untouched),
        tm=True,
        **{'tm.activate_hook': lambda request: False},
    )
    with TestClient(app) as client:
        with client.websocket_connect('/out') as ws:
            ws.send_text('x')
            assert ws.receive_text() == 'None'


def test_the_docs_example_saves_and_publishes(tmp_path):
    path = tmp_path / 'notes.sqlite'
    app = load('syncconsumers').make_app(f'sqlite:///{path}')
    with TestClient(app) as client:
        with (
            client.websocket_connect('/notes') as writer,
            client.websocket_connect('/notes') as reader,
        ):
            writer.send_json({'text': 'hello'})
            note = {'id': 1, 'text': 'hello'}
            assert reader.receive_json() == writer.receive_json() == note
            writer.send_json({'no': 'text'})
            with pytest.raises(WebSocketDisconnect) as info:
                writer.receive_json()
            assert info.value.code == 1011
            reader.send_json({'text': 'again'})
            assert reader.receive_json() == {'id': 2, 'text': 'again'}
    with sqlite3.connect(path) as connection:
        rows = connection.execute('SELECT id, text FROM notes').fetchall()
    assert rows == [(1, 'hello'), (2, 'again')]


class Overlap(SyncWebSocketConsumer):
    """Records when each call starts and ends; its on_receive runs until
    on_disconnect starts beside it, or for a bounded time."""

    log: list[str] = []
    disconnecting = threading.Event()

    def on_connect(self, ws):
        ws.request.add_finished_callback(lambda r: self.log.append('finished'))
        ws.accept()

    def on_receive(self, ws, data):
        self.log.append('receive')
        self.disconnecting.wait(0.5)  # never set once calls are one at a time
        self.log.append('received')
        if data == 'raise':
            raise ValueError('raised while cancelled')

    def on_disconnect(self, ws, code):
        self.disconnecting.set()
        self.log.append(f'disconnect {code}')


@pytest.mark.parametrize('message', ['return', 'raise'])
def test_a_cancelled_consumer_waits_for_its_call(message, caplog):
    Overlap.log = []
    Overlap.disconnecting.clear()
    app = make_app(('/overlap', Overlap), **{'asgi_ws.threads': '4'})

    async def cancelled_mid_call() -> None:
        channel = Channel(
            {'type': 'websocket.connect'},
            {'type': 'websocket.receive', 'text': message},
        )
        task = asyncio.create_task(
            app(ws_scope('/overlap'), channel.receive, channel.send)
        )
        await until(lambda: 'receive' in Overlap.log, 'the call')
        task.cancel()  # as a server's shutdown does
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR, 'pyramid_asgi_ws'):
        asyncio.run(cancelled_mid_call())
    ended = ['received', 'disconnect 1011', 'finished']
    assert Overlap.log == ['receive', *ended]
    logged = [r.getMessage() for r in caplog.records]
    raised = 'Overlap.on_receive raised while its task was cancelled'
    assert (raised in logged) is (message == 'raise')



class Ends(SyncWebSocketConsumer):
    """Ends as its path says; records the code on_disconnect gets."""

    codes: list[int] = []

    def on_connect(self, ws):
        ws.accept()
        if ws.matchdict['how'] == 'connect':
            raise ValueError('after accepting')

    def on_receive(self, ws, data):
        raise HTTPTooManyRequests()

    def on_disconnect(self, ws, code):
        self.codes.append(code)
        if ws.matchdict['how'] == 'disconnect':
            raise ValueError('in on_disconnect')


@pytest.mark.parametrize(
    'how, code', [('connect', 1011), ('receive', 4429), ('disconnect', 1000)]
)
def test_on_disconnect_gets_the_code_the_socket_closes_with(how, code, caplog):
    Ends.codes = []
    with TestClient(make_app((r'/ends/{how}', Ends))) as client:
        with client.websocket_connect(f'/ends/{how}') as ws:
            if how == 'disconnect':
                ws.close(1000)
            else:
                ws.send_text('x')
                with pytest.raises(WebSocketDisconnect) as info:
                    ws.receive_text()
                assert info.value.code == code
        wait_until(lambda: Ends.codes, 'on_disconnect')
    assert Ends.codes == [code]
    failed = [r for r in caplog.records if r.exc_info]
    if how == 'disconnect':  # what on_disconnect raises is logged
        assert 'in on_disconnect' in str(failed[-1].exc_info[1])


class Doomed(SyncWebSocketConsumer):
    def on_connect(self, ws):
        ws.accept()
        ws.join('g')

    def on_receive(self, ws, data):
        ws.broadcast('g', data)
        if data == 'doomed':
            ws.request.tm.doom()
        ws.send_text(f'{data} done')


def test_a_broadcast_from_a_doomed_transaction_is_dropped():
    with TestClient(make_app(('/doomed', Doomed), tm=True)) as client:
        with client.websocket_connect('/doomed') as ws:
            ws.send_text('doomed')
            assert ws.receive_text() == 'doomed done'
            ws.send_text('kept')
            heard = [ws.receive_text(), ws.receive_text()]
            assert sorted(heard) == ['kept', 'kept done']  # no 'doomed'


class Gauge:
    """Counts the calls running at once; each waits for one more to join
    it, for a bounded time."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.changed = threading.Condition()

    def __call__(self, beyond: int) -> None:
        with self.changed:
            self.running += 1
            self.most = max(self.most, self.running)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.running > beyond, 0.5)
            self.running -= 1


@pytest.mark.parametrize('threads', [1, 2])
def test_run_sync_runs_at_most_asgi_ws_threads_calls_at_once(threads):
    gauge = Gauge()

    async def busy(ws):
        await ws.accept()
        await ws.run_sync(gauge, threads)
        await ws.send_text('done')

    config = Configurator(settings={'asgi_ws.threads': str(threads)})
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/busy', busy)
    with TestClient(config.make_asgi_app()) as client:
        with contextlib.ExitStack() as stack:
            sockets = [
                stack.enter_context(client.websocket_connect('/busy'))
                for _ in range(threads + 2)
            ]
            assert [ws.receive_text() for ws in sockets] == ['done'] * (
                threads + 2
            )
    assert gauge.most == threads


class Shutdown(SyncWebSocketConsumer):
    """Its on_receive waits for the server to close the socket, then
    sends."""

    kept: list[Any] = []
    closed = threading.Event()

    def on_receive(self, ws, data):
        ws.request.tm.get().join(Recording(data, self.kept))
        self.kept.append('waiting')
        assert self.closed.wait(5)
        ws.send_text('too late')

    def on_disconnect(self, ws, code):
        self.kept.append(('disconnect', code))


def test_a_shutdown_mid_call_fails_its_next_send_and_aborts():
    Shutdown.kept = []
    Shutdown.closed.clear()
    app = make_app(('/shutdown', Shutdown), tm=True)

    async def shut_down_mid_call() -> list[dict[str, Any]]:
        channel = Channel(
            {'type': 'websocket.connect'},
            {'type': 'websocket.receive', 'text': 'mid-call'},
        )
        serving = asyncio.create_task(
            app(ws_scope('/shutdown'), channel.receive, channel.send)
        )
        await until(lambda: 'waiting' in Shutdown.kept, 'the call')
        await app.close_connections(timeout=0.1)  # the close is sent
        Shutdown.closed.set()
        await asyncio.wait_for(serving, 5)
        return channel.sent

    sent = asyncio.run(shut_down_mid_call())
    assert sent[-1] == {
        'type': 'websocket.close',
        'code': 1001,
        'reason': 'server shutting down',
    }
    assert Shutdown.kept == [
        'waiting',
        ('aborted', 'mid-call'),
        ('disconnect', 1001),
    ]
