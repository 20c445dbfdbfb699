import asyncio
import contextlib
import contextvars
import io
import logging
import sys
import threading
import time

import pytest

from tests.support import until, wait_until

TIMEOUT = 5


def blocked_in(*functions):
    """Whether a thread waits with ``functions`` innermost on its stack,
    the innermost first: where a blocking call holds it."""
    wanted = [function.__code__ for function in functions]
    for frame in sys._current_frames().values():
        found = []
        while frame is not None and len(found) < len(wanted):
            found.append(frame.f_code)
            frame = frame.f_back
        if found == wanted:
            return True
    return False


async def until_blocked_in(*functions):
    """Wait (bounded) until a thread is held in ``functions``, as
    :func:`blocked_in` says."""
    names = ' in '.join(function.__qualname__ for function in functions)
    await until(
        lambda: blocked_in(*functions), f'a thread held in {names}', TIMEOUT
    )


def _scope(path='/', method='GET', headers=(), **kw):
    scope = {
        'type': 'http',
        'asgi': {'version': '3.0'},
        'http_version': '1.1',
        'method': method,
        'scheme': 'http',
        'path': path,
        'raw_path': path.encode('utf-8'),
        'query_string': b'',
        'root_path': '',
        'headers': list(headers),
        'client': ('127.0.0.1', 5000),
        'server': ('127.0.0.1', 8000),
    }
    scope.update(kw)
    return scope


class Client:
    """Drives an ASGI app like a server: feeds ``messages`` to receive,
    then blocks receive until the response ends and answers
    ``http.disconnect``."""

    def __init__(self, app, scope=None, messages=None, send_delay=0):
        self.app = app
        self.scope = scope or _scope()
        self.messages = list(
            messages if messages is not None else [{'type': 'http.request'}]
        )
        self.send_delay = send_delay
        self.sent = []
        self.receives = 0

    async def receive(self):
        self.receives += 1
        if self.messages:
            message = self.messages.pop(0)
            if callable(message):
                message = await message()
            return message
        await self.done.wait()
        return {'type': 'http.disconnect'}

    async def send(self, message):
        if self.send_delay:
            await asyncio.sleep(self.send_delay)
        self.sent.append(message)
        if message['type'] != 'http.response.start' and not message.get(
            'more_body'
        ):
            self.done.set()

    async def arun(self):
        self.done = asyncio.Event()
        await asyncio.wait_for(
            self.app(self.scope, self.receive, self.send), TIMEOUT
        )
        return self

    def run(self):
        return asyncio.run(self.arun())

    @property
    def status(self):
        return self.sent[0]['status']

    @property
    def headers(self):
        return self.sent[0]['headers']

    @property
    def body(self):
        return b''.join(m.get('body', b'') for m in self.sent[1:])


@pytest.fixture
def make_bridge():
    from pyramid_asgi_ws.wsgi import WsgiToAsgi

    bridges = []

    def make(app, *args, **kw):
        kw.setdefault('threads', 4)
        bridge = WsgiToAsgi(app, *args, **kw)
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        bridge.close()


def hello_app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello', b' world']


class ClosingFile(io.FileIO):
    """A file that says when it is closed."""

    def __init__(self, path):
        super().__init__(path)
        self.closed_event = threading.Event()

    def close(self):
        super().close()
        self.closed_event.set()


class ClosingIter:
    def __init__(self, chunks, fail_at=None, close_error=None):
        self.chunks = chunks
        self.fail_at = fail_at
        self.close_error = close_error
        self.closed = threading.Event()
        self.produced = 0

    def __iter__(self):
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise ValueError('boom in iteration')
            self.produced += 1
            yield chunk

    def close(self):
        self.closed.set()
        if self.close_error is not None:
            raise self.close_error


def iter_app(iterable, status='200 OK', headers=()):
    def app(environ, start_response):
        start_response(status, list(headers))
        return iterable

    return app


def stream_until_closed(bridge, iterable, messages=None, send=None, delay=0):
    """Serve an endless ``iterable`` until the bridge stops it; True once
    its ``close()`` was called."""

    async def main():
        client = Client(bridge, None, messages, send_delay=delay)
        if send is not None:
            client.send = send
        await client.arun()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, iterable.closed.wait, TIMEOUT)

    asyncio.run(main())
    return iterable.closed.is_set()


class Test_build_environ:
    def _callFUT(self, scope, body=None, **kw):
        from pyramid_asgi_ws.wsgi import build_environ

        return build_environ(scope, body or io.BytesIO(), **kw)

    def test_http_scope(self):
        body = io.BytesIO(b'x')
        scope = _scope(
            '/app/caf\u00e9',
            'POST',
            headers=[
                (b'content-type', b'text/plain'),
                (b'content-length', b'1'),
                (b'x-name', b'\xe9t\xe9'),
                (b'accept', b'a'),
                (b'accept', b'b'),
                (b'cookie', b'a=1'),
                (b'cookie', b'b=2'),
            ],
            root_path='/app',
            query_string=b'q=%C3%A9&r=\xc3\xa9',
        )
        environ = self._callFUT(scope, body)
        assert environ['REQUEST_METHOD'] == 'POST'
        assert environ['SCRIPT_NAME'] == '/app'
        assert environ['PATH_INFO'] == '/caf\u00c3\u00a9'
        assert environ['QUERY_STRING'] == 'q=%C3%A9&r=\u00c3\u00a9'
        assert environ['SERVER_NAME'] == '127.0.0.1'
        assert environ['SERVER_PORT'] == '8000'
        assert environ['SERVER_PROTOCOL'] == 'HTTP/1.1'
        assert environ['REMOTE_ADDR'] == '127.0.0.1'
        assert environ['REMOTE_PORT'] == '5000'
        assert environ['CONTENT_TYPE'] == 'text/plain'
        assert environ['CONTENT_LENGTH'] == '1'
        assert environ['HTTP_X_NAME'] == '\u00e9t\u00e9'
        assert environ['HTTP_ACCEPT'] == 'a,b'
        assert environ['HTTP_COOKIE'] == 'a=1; b=2'
        assert environ['wsgi.input'] is body
        assert environ['wsgi.url_scheme'] == 'http'
        assert environ['wsgi.version'] == (1, 0)
        assert environ['wsgi.input_terminated'] is True
        assert environ['wsgi.multithread'] is True
        assert environ['wsgi.run_once'] is False
        assert environ['asgi.scope'] is scope
        from pyramid_asgi_ws.wsgi import FileWrapper

        assert environ['wsgi.file_wrapper'] is FileWrapper

    def test_path_outside_root_path_kept(self):
        environ = self._callFUT(_scope('/other', root_path='/app'))
        assert environ['SCRIPT_NAME'] == '/app'
        assert environ['PATH_INFO'] == '/other'

    def test_root_path_is_a_whole_segment(self):
        environ = self._callFUT(_scope('/application/ws', root_path='/app'))
        assert environ['PATH_INFO'] == '/application/ws'
        environ = self._callFUT(_scope('/app', root_path='/app'))
        assert environ['PATH_INFO'] == ''

    def test_root_path_trailing_slash_not_in_script_name(self):
        # SCRIPT_NAME + PATH_INFO is the path: /app/ + /x made /app//x
        for path, rest in (('/app/x', '/x'), ('/app', '')):
            environ = self._callFUT(_scope(path, root_path='/app/'))
            assert (environ['SCRIPT_NAME'], environ['PATH_INFO']) == (
                '/app',
                rest,
            )

    @pytest.mark.parametrize(
        'scheme, expected, port',
        [('ws', 'http', '80'), ('wss', 'https', '443'), (None, 'http', '80')],
    )
    def test_websocket_scope(self, scheme, expected, port):
        scope = _scope('/ws', type='websocket', scheme=scheme, server=None)
        del scope['method']
        environ = self._callFUT(scope)
        assert environ['REQUEST_METHOD'] == 'GET'
        assert environ['wsgi.url_scheme'] == expected
        assert environ['SERVER_NAME'] == 'localhost'
        assert environ['SERVER_PORT'] == port

    def test_minimal_scope(self):
        scope = {
            'type': 'http',
            'method': 'GET',
            'path': '/',
            'server': ('/tmp/sock', None),
        }
        environ = self._callFUT(scope)
        assert environ['SERVER_NAME'] == 'localhost'
        assert environ['SERVER_PORT'] == '80'
        assert environ['SCRIPT_NAME'] == ''
        assert environ['QUERY_STRING'] == ''
        assert environ['SERVER_PROTOCOL'] == 'HTTP/1.1'
        assert 'REMOTE_ADDR' not in environ

    def test_duplicate_header_limit(self):
        scope = _scope(headers=[(b'x-a', b'1')] * 3)
        environ = self._callFUT(scope, duplicate_header_limit=3)
        assert environ['HTTP_X_A'] == '1,1,1'
        scope = _scope(headers=[(b'x-a', b'1')] * 4)
        with pytest.raises(ValueError, match='HTTP_X_A'):
            self._callFUT(scope, duplicate_header_limit=3)
        environ = self._callFUT(scope)
        assert environ['HTTP_X_A'] == '1,1,1,1'

    def test_undecodable_path(self):
        from pyramid_asgi_ws.wsgi import BadRequest

        outside = _scope()
        outside['path'] = '/caf\udce9'
        for scope in (outside, _scope('/x', root_path='/\udcff')):
            with pytest.raises(BadRequest, match='Undecodable path') as info:
                self._callFUT(scope)
            assert info.value.answer == b'Bad Request: undecodable path'

    def test_undecodable_query_string(self):
        from pyramid_asgi_ws.wsgi import BadRequest

        for query in (b'a=%FF', b'%C3', b'r=\xe9', b'a=%C3&%A9'):
            scope = _scope(query_string=query)
            with pytest.raises(BadRequest, match='Undecodable query') as info:
                self._callFUT(scope)
            answer = info.value.answer
            assert answer == b'Bad Request: undecodable query string'
        for query in (b'a=%', b'%zz=1', b'q=%C3%A9&r=\xc3\xa9', b'+&;='):
            environ = self._callFUT(_scope(query_string=query))
            assert environ['QUERY_STRING'] == query.decode('latin-1')

    def test_header_keys_kept_up_to_a_limit(self, monkeypatch):
        from pyramid_asgi_ws.wsgi import environ as module

        monkeypatch.setattr(module, '_KEYS', {})
        monkeypatch.setattr(module, 'KEYS_LIMIT', 2)
        headers = [(b'x-%d' % i, b'v') for i in range(4)]
        for _ in range(2):  # the second time from the cache for two
            environ = self._callFUT(_scope(headers=headers))
            assert [environ[f'HTTP_X_{i}'] for i in range(4)] == ['v'] * 4
        assert module._KEYS == {b'x-0': 'HTTP_X_0', b'x-1': 'HTTP_X_1'}

    def test_long_header_names_are_not_kept(self, monkeypatch):
        from pyramid_asgi_ws.wsgi import environ as module

        # a server may pass names of megabytes: 512 of them kept for good
        # would be gigabytes
        monkeypatch.setattr(module, '_KEYS', {})
        longest = b'x' * module.NAME_LIMIT
        headers = [(longest, b'1'), (longest + b'x', b'2')]
        environ = self._callFUT(_scope(headers=headers))
        assert environ['HTTP_' + 'X' * module.NAME_LIMIT] == '1'
        assert environ['HTTP_' + 'X' * (module.NAME_LIMIT + 1)] == '2'
        assert list(module._KEYS) == [longest]

    def test_names_with_underscores_are_left_out(self):
        # '-' and '_' both map to '_': a client's X_Forwarded_For would be
        # joined to the proxy's X-Forwarded-For, content_length would set
        # CONTENT_LENGTH
        headers = [
            (b'x_forwarded_for', b'6.6.6.6'),
            (b'x-forwarded-for', b'10.0.0.1'),
            (b'content_length', b'5'),
            (b'_', b'x'),
        ]
        for _ in range(2):  # the second time from the cache
            scope = _scope(headers=headers)
            environ = self._callFUT(scope)
            assert environ['HTTP_X_FORWARDED_FOR'] == '10.0.0.1'
            assert 'CONTENT_LENGTH' not in environ
            assert not [k for k in environ if k.startswith('HTTP__')]
            assert environ['asgi.scope']['headers'] == headers

    def test_constant_part_is_not_shared(self):
        first = self._callFUT(_scope())
        first['wsgi.version'] = 'changed'
        first['HTTP_X'] = 'added'
        second = self._callFUT(_scope())
        assert second['wsgi.version'] == (1, 0)
        assert 'HTTP_X' not in second
        assert second['wsgi.errors'] is sys.stderr


class Test_WsgiToAsgi_responses:
    def test_list_body_in_one_message(self, make_bridge):
        client = Client(make_bridge(hello_app)).run()
        assert client.sent == [
            {
                'type': 'http.response.start',
                'status': 200,
                'headers': [(b'content-type', b'text/plain')],
            },
            {
                'type': 'http.response.body',
                'body': b'Hello world',
                'more_body': False,
            },
        ]

    def test_latin1_response_headers(self, make_bridge):
        app = iter_app(
            [b''], '201 Cr\u00e9\u00e9', [('X-Caf\u00e9', 'd\u00e9')]
        )
        client = Client(make_bridge(app)).run()
        assert client.status == 201
        assert client.headers == [(b'x-caf\xe9', b'd\xe9')]

    def test_header_names_kept_up_to_a_limit(self, make_bridge, monkeypatch):
        from pyramid_asgi_ws.wsgi import response

        monkeypatch.setattr(response, '_NAMES', {})
        monkeypatch.setattr(response, 'NAMES_LIMIT', 1)
        headers = [('X-A', '1'), ('X-B', '2')]
        for _ in range(2):  # the second time X-A from the cache
            client = Client(make_bridge(iter_app([b''], headers=headers)))
            assert client.run().headers == [(b'x-a', b'1'), (b'x-b', b'2')]
        assert response._NAMES == {'X-A': b'x-a'}

    def test_generator_streams_and_closes(self, make_bridge):
        iterable = ClosingIter([b'', b'a', b'', b'b', b'c'])
        client = Client(make_bridge(iter_app(iterable))).run()
        assert client.status == 200
        assert client.body == b'abc'
        assert not client.sent[-1].get('more_body')
        assert iterable.closed.is_set()

    def test_empty_generator(self, make_bridge):
        iterable = ClosingIter([b'', b''])
        client = Client(make_bridge(iter_app(iterable))).run()
        assert client.status == 200
        assert client.body == b''
        assert len(client.sent) == 2
        assert iterable.closed.is_set()

    def test_content_length_clips_list(self, make_bridge):
        app = iter_app([b'abc', b'def'], headers=[('Content-Length', '4')])
        client = Client(make_bridge(app)).run()
        assert client.body == b'abcd'

    def test_content_length_stops_generator(self, make_bridge):
        iterable = ClosingIter([b'abc', b'def', b'ghi'])
        app = iter_app(iterable, headers=[('Content-Length', '5')])
        client = Client(make_bridge(app)).run()
        assert client.body == b'abcde'
        assert iterable.produced == 2
        assert iterable.closed.is_set()

    def test_write(self, make_bridge):
        def app(environ, start_response):
            write = start_response('200 OK', [])
            write(b'a')
            write(bytearray(b'b'))
            write(b'')
            return [b'c']

        client = Client(make_bridge(app)).run()
        assert client.status == 200
        assert client.body == b'abc'

    def test_write_then_generator(self, make_bridge):
        iterable = ClosingIter([b'b'])

        def app(environ, start_response):
            start_response('200 OK', [])(memoryview(b'a'))
            return iterable

        client = Client(make_bridge(app)).run()
        assert client.body == b'ab'
        assert iterable.closed.is_set()

    def test_contextvars_reach_thread(self, make_bridge):
        var = contextvars.ContextVar('var', default='unset')
        seen = []

        def app(environ, start_response):
            seen.append(var.get())
            var.set('changed in thread')
            return hello_app(environ, start_response)

        async def main():
            var.set('from the loop')
            client = Client(make_bridge(app))
            await client.arun()
            return var.get()

        assert asyncio.run(main()) == 'from the loop'
        assert seen == ['from the loop']

    def test_threads_bounded(self, make_bridge):
        lock = threading.Lock()
        running = [0, 0]

        def app(environ, start_response):
            with lock:
                running[0] += 1
                running[1] = max(running)
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return hello_app(environ, start_response)

        bridge = make_bridge(app, threads=2)

        async def main():
            clients = [Client(bridge) for _ in range(6)]
            await asyncio.gather(*(c.arun() for c in clients))
            return [c.status for c in clients]

        assert asyncio.run(main()) == [200] * 6
        assert running[1] == 2

    def test_default_threads(self):
        from pyramid_asgi_ws.wsgi import DEFAULT_THREADS, WsgiToAsgi

        bridge = WsgiToAsgi(hello_app)
        try:
            assert bridge.threads == DEFAULT_THREADS
            assert bridge.duplicate_header_limit == 100
            assert bridge.pool.size == DEFAULT_THREADS
        finally:
            bridge.close()

    def test_pool_survives_a_failing_call(self, make_bridge, caplog):
        bridge = make_bridge(hello_app, threads=1)
        done = threading.Event()

        def fail():
            raise ValueError('pool call failed')

        bridge.pool.submit(fail)
        bridge.pool.submit(done.set)
        assert done.wait(TIMEOUT)
        assert len(bridge.pool.threads) == 1
        assert 'pool call failed' in caplog.text

    def test_duplicate_headers_400(self, make_bridge):
        scope = _scope(headers=[(b'x-a', b'1')] * 3)
        client = Client(make_bridge(hello_app, 2), scope).run()
        assert client.status == 400
        assert client.body == b'Bad Request: Too many duplicate headers'

    def test_undecodable_query_string_400(self, make_bridge):
        scope = _scope(query_string=b'token=%FF')
        client = Client(make_bridge(hello_app), scope).run()
        assert client.status == 400
        assert client.body == b'Bad Request: undecodable query string'

    def test_undecodable_path_400(self, make_bridge):
        scope = _scope()
        scope['path'] = '/\udcff'
        client = Client(make_bridge(hello_app), scope).run()
        assert client.status == 400
        assert client.body == b'Bad Request: undecodable path'


class Test_WsgiToAsgi_errors:
    def test_error_before_start_is_500(self, make_bridge, caplog):
        def app(environ, start_response):
            raise ValueError('boom')

        with caplog.at_level(logging.ERROR, 'pyramid_asgi_ws.wsgi'):
            client = Client(make_bridge(app)).run()
        assert client.status == 500
        assert client.body == b'Internal Server Error'
        assert 'boom' in caplog.text

    def test_error_in_iteration_before_start(self, make_bridge, caplog):
        iterable = ClosingIter([b'a'], fail_at=0)
        client = Client(make_bridge(iter_app(iterable))).run()
        assert client.status == 500
        assert iterable.closed.is_set()
        assert 'boom in iteration' in caplog.text

    def test_error_after_start_ends_connection(self, make_bridge, caplog):
        iterable = ClosingIter([b'a', b'b'], fail_at=1)
        client = Client(make_bridge(iter_app(iterable)))
        with pytest.raises(ValueError, match='boom in iteration'):
            client.run()
        assert client.status == 200
        assert client.body == b'a'
        assert client.sent[-1]['more_body'] is True
        assert iterable.closed.is_set()
        assert 'after the response started' in caplog.text

    def test_close_error_is_500(self, make_bridge, caplog):
        iterable = ClosingIter([b''], close_error=ValueError('in close'))
        client = Client(make_bridge(iter_app(iterable))).run()
        assert client.status == 500
        assert 'in close' in caplog.text

    def test_no_start_response(self, make_bridge, caplog):
        client = Client(make_bridge(lambda environ, sr: [b'x'])).run()
        assert client.status == 500
        assert 'did not call start_response' in caplog.text

    def test_start_response_twice(self, make_bridge, caplog):
        def app(environ, start_response):
            start_response('200 OK', [])
            start_response('200 OK', [])
            return [b'']

        client = Client(make_bridge(app)).run()
        assert client.status == 500
        assert 'already called' in caplog.text

    def test_start_response_exc_info_replaces(self, make_bridge):
        def app(environ, start_response):
            start_response('200 OK', [('X-A', '1')])
            try:
                raise ValueError('oops')
            except ValueError:
                import sys

                start_response('502 Bad Gateway', [], sys.exc_info())
            return [b'bad']

        client = Client(make_bridge(app)).run()
        assert client.status == 502
        assert client.headers == []
        assert client.body == b'bad'

    def test_start_response_exc_info_after_start(self, make_bridge):
        def app(environ, start_response):
            start_response('200 OK', [])(b'partial')
            try:
                raise KeyError('late')
            except KeyError:
                import sys

                start_response('500 Error', [], sys.exc_info())
            return [b'never']  # pragma: no cover

        client = Client(make_bridge(app))
        with pytest.raises(KeyError, match='late'):
            client.run()
        assert client.status == 200
        assert client.body == b'partial'

    def test_error_after_disconnect_logged(self, make_bridge, caplog):
        iterable = ClosingIter(
            [b'x'] * 100000, close_error=ValueError('close after gone')
        )

        async def send(message):
            if message['type'] == 'http.response.body':
                raise OSError('client gone')

        bridge = make_bridge(iter_app(iterable))
        assert stream_until_closed(bridge, iterable, send=send)
        wait_until(
            lambda: 'close after gone' in caplog.text,
            'the error of close() logged',
            TIMEOUT,
        )
        assert 'after disconnect' in caplog.text


def reader_app(reads, read=lambda f: f.read()):
    def app(environ, start_response):
        try:
            data = read(environ['wsgi.input'])
        except Exception as exc:
            reads.append(exc)
            raise
        reads.append(data)
        start_response('200 OK', [])
        return [b'%d' % len(data if isinstance(data, bytes) else b'')]

    return app


#: A first body chunk too large to be received before the app starts.
BIG = b'a' * (65536 + 1)


def body_messages(*chunks):
    return [
        {'type': 'http.request', 'body': chunk, 'more_body': True}
        for chunk in chunks[:-1]
    ] + [{'type': 'http.request', 'body': chunks[-1]}]


class Test_WsgiToAsgi_body:
    def _run(self, make_bridge, read, *chunks, **kw):
        reads = []
        app = reader_app(reads, read)
        client = Client(
            make_bridge(app, **kw),
            _scope(method='POST'),
            body_messages(*chunks),
        ).run()
        return reads[0], client

    def test_read_all(self, make_bridge):
        data, client = self._run(make_bridge, lambda f: f.read(), b'ab', b'c')
        assert data == b'abc'
        assert client.body == b'3'

    def test_read_none(self, make_bridge):
        data, _ = self._run(make_bridge, lambda f: f.read(None), b'a', b'b')
        assert data == b'ab'

    def test_read_sized(self, make_bridge):
        def read(f):
            return [f.read(2), f.read(3), f.read(10), f.read(1)]

        data, _ = self._run(make_bridge, read, b'a', b'bcd', b'ef')
        assert data == [b'ab', b'cde', b'f', b'']

    def test_reads_that_wait_for_more_of_a_large_body(self, make_bridge):
        # past PREREAD_SIZE the body streams: reads block for the next chunk
        def read(f):
            return [
                f.read(len(BIG) + 2),
                f.readline(),
                f.readline(),
                f.read(),
            ]

        data, _ = self._run(make_bridge, read, BIG, b'bc', b'd\ne', b'f')
        assert data == [BIG + b'bc', b'd\n', b'ef', b'']

    def test_readline(self, make_bridge):
        def read(f):
            return [
                f.readline(),
                f.readline(2),
                f.readline(None),
                f.readline(),
                f.readline(),
            ]

        data, _ = self._run(make_bridge, read, b'a\nbc', b'd\ne', b'f')
        assert data == [b'a\n', b'bc', b'd\n', b'ef', b'']

    def test_readlines_and_iter(self, make_bridge):
        data, _ = self._run(
            make_bridge, lambda f: f.readlines(), b'a\nb', b'\nc'
        )
        assert data == [b'a\n', b'b\n', b'c']
        data, _ = self._run(
            make_bridge, lambda f: f.readlines(3), b'a\nb\nc\n'
        )
        assert data == [b'a\n', b'b\n']
        data, _ = self._run(make_bridge, list, b'a\n', b'b')
        assert data == [b'a\n', b'b']

    def test_view_reads_before_upload_ends(self, make_bridge):
        first_read = threading.Event()

        def read(f):
            first = f.read(3)
            first_read.set()
            return first + f.read()

        async def later():
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(None, first_read.wait, TIMEOUT)
            return {'type': 'http.request', 'body': b'def', 'more_body': ok}

        reads = []
        messages = body_messages(BIG, b'')
        messages.insert(1, later)
        client = Client(
            make_bridge(reader_app(reads, read)), _scope(), messages
        ).run()
        assert reads == [BIG + b'def']
        assert client.body == b'%d' % (len(BIG) + 3)

    def test_disconnect_mid_upload_raises(self, make_bridge):
        from pyramid_asgi_ws.wsgi import ClientDisconnect

        reads = []
        messages = [
            {'type': 'http.request', 'body': BIG, 'more_body': True},
            {'type': 'http.disconnect'},
        ]

        def read(f):
            try:
                f.read()
            except ClientDisconnect:
                assert f.read(1) == b'a'
                with pytest.raises(ClientDisconnect):
                    f.read()
                raise

        client = Client(
            make_bridge(reader_app(reads, read)), _scope(), messages
        ).run()
        assert isinstance(reads[0], ClientDisconnect)
        assert client.sent == []

    def test_disconnect_during_a_small_upload_never_calls_the_app(
        self, make_bridge
    ):
        reads = []
        messages = [
            {'type': 'http.request', 'body': b'abc', 'more_body': True},
            {'type': 'http.disconnect'},
        ]
        client = Client(
            make_bridge(reader_app(reads)), _scope(), messages
        ).run()
        assert reads == [] and client.sent == []

    def test_unexpected_message_before_the_body_ends(self, make_bridge):
        messages = [
            {'type': 'http.request', 'body': b'abc', 'more_body': True},
            {'type': 'websocket.receive'},
        ]
        client = Client(make_bridge(reader_app([])), _scope(), messages)
        with pytest.raises(RuntimeError, match="got 'websocket.receive'"):
            client.run()

    def test_a_stalled_small_upload_holds_no_thread(self, make_bridge):
        bridge = make_bridge(reader_app([]), threads=1)

        async def scenario():
            stalled = asyncio.Event()

            async def stall():
                if not stalled.is_set():
                    stalled.set()
                    return {
                        'type': 'http.request',
                        'body': b'ab',
                        'more_body': True,
                    }
                await asyncio.Event().wait()  # never sends the rest

            async def ignore(message):
                pass  # pragma: no cover - the stalled request never answers

            task = asyncio.ensure_future(bridge(_scope(), stall, ignore))
            await stalled.wait()
            # the only worker thread is free for the next request
            client = await Client(
                bridge, _scope(), body_messages(b'xy')
            ).arun()
            task.cancel()
            return client

        client = asyncio.run(scenario())
        assert (client.status, client.body) == (200, b'2')

    def test_unexpected_message(self, make_bridge, caplog):
        reads = []
        messages = [
            {'type': 'http.request', 'body': BIG, 'more_body': True},
            {'type': 'websocket.receive'},
        ]
        client = Client(make_bridge(reader_app(reads)), _scope(), messages)
        client.run()
        assert isinstance(reads[0], RuntimeError)
        assert 'websocket.receive' in str(reads[0])
        assert client.status == 500

    def test_content_length_over_limit_413(self, make_bridge):
        called = []
        scope = _scope(method='POST', headers=[(b'content-length', b'11')])
        client = Client(
            make_bridge(lambda e, s: called.append(1), max_body_size=10),
            scope,
        ).run()
        assert client.status == 413
        assert (b'connection', b'close') in client.headers
        assert client.receives == 0
        assert called == []

    def test_content_length_under_limit(self, make_bridge):
        scope = _scope(method='POST', headers=[(b'content-length', b'3')])
        reads = []
        client = Client(
            make_bridge(reader_app(reads), max_body_size=3),
            scope,
            body_messages(b'abc'),
        ).run()
        assert reads == [b'abc']
        assert client.status == 200

    def test_streamed_body_over_limit_413(self, make_bridge):
        from pyramid_asgi_ws.wsgi import (
            BODY_BUFFER_SIZE,
            RequestEntityTooLarge,
        )

        reads = []
        chunk = b'x' * 65536
        count = 4 * BODY_BUFFER_SIZE // len(chunk)
        client = Client(
            make_bridge(reader_app(reads), max_body_size=300000),
            _scope(method='POST'),
            body_messages(*[chunk] * count),
        ).run()
        assert isinstance(reads[0], RequestEntityTooLarge)
        assert client.status == 413
        # Not read to the end: five chunks read, the rest at most read ahead.
        assert client.receives <= 6 + BODY_BUFFER_SIZE // len(chunk) < count

    def test_small_streamed_body_over_limit_413_before_the_app(
        self, make_bridge
    ):
        reads = []
        client = Client(
            make_bridge(reader_app(reads), max_body_size=5),
            _scope(method='POST'),
            body_messages(b'abc', b'def', b'ghi'),
        ).run()
        assert reads == []
        assert client.status == 413
        assert client.receives == 2

    def test_first_chunk_over_limit_413(self, make_bridge):
        reads = []
        client = Client(
            make_bridge(reader_app(reads), max_body_size=2),
            _scope(method='POST'),
            body_messages(b'abc'),
        ).run()
        assert client.status == 413

    def test_disconnect_before_body(self, make_bridge):
        called = []
        client = Client(
            make_bridge(lambda e, s: called.append(1)),
            messages=[{'type': 'http.disconnect'}],
        ).run()
        assert client.sent == []
        assert called == []

    def test_cancelled_while_reading(self, make_bridge, caplog):
        from pyramid_asgi_ws.wsgi import ClientDisconnect
        from pyramid_asgi_ws.wsgi.channels import Feed

        reads = []
        read_started = threading.Event()

        def read(f):
            read_started.set()
            return f.read()

        async def never():
            await asyncio.Event().wait()

        # one thread: a call queued after the request runs once the
        # request's call, logging included, has finished
        bridge = make_bridge(reader_app(reads, read), threads=1)
        finished = threading.Event()

        async def main():
            client = Client(bridge, _scope())
            client.messages = body_messages(BIG, b'')
            client.messages[1] = never
            task = asyncio.create_task(client.arun())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, read_started.wait, TIMEOUT)
            # cancelled while the read waits for the body's next message
            await until_blocked_in(Feed.get)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            bridge.pool.submit(finished.set)

        with caplog.at_level(logging.DEBUG, 'pyramid_asgi_ws.wsgi'):
            asyncio.run(main())
            assert finished.wait(TIMEOUT)
        assert isinstance(reads[0], ClientDisconnect)
        assert 'after disconnect' not in caplog.text


class Test_WsgiToAsgi_streaming:
    def test_backpressure_and_close_on_disconnect(self, make_bridge):
        from pyramid_asgi_ws.wsgi import STREAM_BUFFER_SIZE
        from pyramid_asgi_ws.wsgi.channels import Pipe

        chunk = b'x' * 4096
        iterable = ClosingIter(iter(lambda: chunk, None))
        state = {}

        async def send(message):
            state['sent'] = state.get('sent', 0) + 1
            if state['sent'] >= 3:
                # Blocked until the client goes, as a server does.
                await state['gone'].wait()

        async def receive():
            if 'first' not in state:
                state['first'] = True
                return {'type': 'http.request'}
            await state['gone'].wait()
            return {'type': 'http.disconnect'}

        async def main():
            state['gone'] = asyncio.Event()
            bridge = make_bridge(iter_app(iterable))
            task = asyncio.create_task(bridge(_scope(), receive, send))
            # the worker waits for room in the full pipe: nothing more
            # is produced until the client goes
            await until_blocked_in(threading.Condition.wait, Pipe.put)
            produced = iterable.produced
            assert state['sent'] == 3
            state['gone'].set()
            await asyncio.wait_for(task, TIMEOUT)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, iterable.closed.wait, TIMEOUT)
            return produced

        produced = asyncio.run(main())
        # A blocked client holds the generator to about one buffer.
        # Two batches went to send() (one is still blocked); at most one
        # buffer more waits in the pipe.
        assert produced * len(chunk) <= 3 * (STREAM_BUFFER_SIZE + 4096)
        assert iterable.closed.is_set()

    def test_send_error_closes_iterable(self, make_bridge):
        iterable = ClosingIter(iter(lambda: b'x', None))
        sent = []

        async def send(message):
            sent.append(message)
            if len(sent) > 3:
                raise OSError('gone')

        bridge = make_bridge(iter_app(iterable))
        assert stream_until_closed(bridge, iterable, send=send)

    def test_watcher_ignores_other_messages(self, make_bridge):
        iterable = ClosingIter(iter(lambda: b'x', None))
        messages = [
            {'type': 'http.request'},
            {'type': 'http.request', 'body': b''},
            {'type': 'http.disconnect'},
        ]

        bridge = make_bridge(iter_app(iterable))
        assert stream_until_closed(bridge, iterable, messages, delay=0.001)

    def test_watcher_receive_error_ends_stream(self, make_bridge):
        iterable = ClosingIter(iter(lambda: b'x', None))

        async def broken():
            raise OSError('receive failed')

        bridge = make_bridge(iter_app(iterable))
        messages = [{'type': 'http.request'}, broken]
        assert stream_until_closed(bridge, iterable, messages, delay=0.001)


class Test_FileWrapper:
    def _app(self, filelike, length=None, block_size=3):
        def app(environ, start_response):
            headers = []
            if length is not None:
                headers.append(('Content-Length', str(length)))
            start_response('200 OK', headers)
            return environ['wsgi.file_wrapper'](filelike, block_size)

        return app

    def test_iterates_blocks(self, make_bridge):
        f = io.BytesIO(b'abcdefg')
        client = Client(make_bridge(self._app(f))).run()
        assert client.body == b'abcdefg'
        assert f.closed

    def test_without_close(self):
        from pyramid_asgi_ws.wsgi import FileWrapper

        wrapper = FileWrapper(iter([b'a']))
        wrapper.close()
        assert wrapper.fileno() is None

    def test_zerocopysend(self, make_bridge, tmp_path):
        path = tmp_path / 'f'
        path.write_bytes(b'0123456789')
        f = open(path, 'rb')
        f.seek(2)
        scope = _scope(extensions={'http.response.zerocopysend': {}})
        client = Client(make_bridge(self._app(f, 8)), scope).run()
        assert client.status == 200
        message = client.sent[1]
        assert message['type'] == 'http.response.zerocopysend'
        assert message['file'] is f
        assert message['offset'] == 2
        assert message['count'] == 8
        assert message['more_body'] is False
        assert f.closed

    def test_zerocopysend_without_length(self, make_bridge, tmp_path):
        path = tmp_path / 'f'
        path.write_bytes(b'0123456789')
        f = open(path, 'rb')
        scope = _scope(extensions={'http.response.zerocopysend': {}})
        client = Client(make_bridge(self._app(f)), scope).run()
        assert 'count' not in client.sent[1]
        assert f.closed

    def test_iterates_itself(self):
        from pyramid_asgi_ws.wsgi import FileWrapper

        wrapper = FileWrapper(io.BytesIO(b'abcde'), 2)
        # PEP 3333's shape: middleware holding iter(wrapper) holds the
        # wrapper, whose close() reaches the file
        assert iter(wrapper) is wrapper
        assert list(wrapper) == [b'ab', b'cd', b'e']
        with pytest.raises(StopIteration):
            next(wrapper)

    def test_range_through_webob_closes_the_file(self, make_bridge):
        from webob.response import AppIterRange

        f = io.BytesIO(b'0123456789')

        def app(environ, start_response):
            start_response('206 Partial Content', [])
            wrapper = environ['wsgi.file_wrapper'](f, 4)
            return AppIterRange(wrapper, 2, 6)

        client = Client(make_bridge(app)).run()
        assert client.body == b'2345'
        assert f.closed

    def _zerocopy(self, make_bridge, tmp_path, send=None, cancel=None):
        """Serve a file with zero-copy sending; return it once closed."""
        path = tmp_path / 'f'
        path.write_bytes(b'0123456789')
        f = ClosingFile(path)
        started = threading.Event()
        go = threading.Event()

        def app(environ, start_response):
            started.set()
            go.wait(TIMEOUT)
            start_response('200 OK', [])
            return environ['wsgi.file_wrapper'](f)

        async def main():
            scope = _scope(extensions={'http.response.zerocopysend': {}})
            client = Client(make_bridge(app), scope)
            if send is not None:
                client.send = send
            task = asyncio.create_task(client.arun())
            if cancel:  # while the application runs
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, started.wait, TIMEOUT)
                task.cancel()
            go.set()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

        asyncio.run(main())
        assert f.closed_event.wait(TIMEOUT)
        return f

    def test_zerocopysend_closes_when_send_fails(self, make_bridge, tmp_path):
        async def send(message):
            if message['type'] == 'http.response.zerocopysend':
                raise OSError('client gone')

        self._zerocopy(make_bridge, tmp_path, send)

    def test_zerocopysend_closes_when_start_fails(self, make_bridge, tmp_path):
        async def send(message):
            raise OSError('client gone')

        self._zerocopy(make_bridge, tmp_path, send)

    def test_zerocopysend_closes_after_the_request_ended(
        self, make_bridge, tmp_path
    ):
        # the request's task is gone before the worker hands the file over
        self._zerocopy(make_bridge, tmp_path, cancel=True)

    def test_zerocopysend_without_fileno(self, make_bridge):
        f = io.BytesIO(b'abc')
        scope = _scope(extensions={'http.response.zerocopysend': {}})
        client = Client(make_bridge(self._app(f)), scope).run()
        assert client.body == b'abc'
        assert client.sent[1]['type'] == 'http.response.body'


class Test_other_scopes:
    def test_lifespan(self, make_bridge):
        bridge = make_bridge(hello_app)
        assert Client(bridge).run().status == 200
        assert len(bridge.pool.threads) == 1
        messages = [
            {'type': 'lifespan.startup'},
            {'type': 'lifespan.other'},
            {'type': 'lifespan.shutdown'},
        ]
        old_pool = bridge.pool
        client = Client(bridge, {'type': 'lifespan'}, messages).run()
        assert client.sent == [
            {'type': 'lifespan.startup.complete'},
            {'type': 'lifespan.shutdown.complete'},
        ]
        with pytest.raises(RuntimeError):
            old_pool.submit(print)
        old_pool.close()  # closing a pool twice is fine
        for thread in old_pool.threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
        # a second lifespan (a second test client) still gets answers
        assert bridge.pool is not old_pool and bridge.pool.threads == []
        assert Client(bridge).run().status == 200
        bridge.close()  # twice is fine

    def test_websocket_refused(self, make_bridge):
        scope = _scope('/ws', type='websocket')
        client = Client(
            make_bridge(hello_app), scope, [{'type': 'websocket.connect'}]
        ).run()
        assert client.sent == [{'type': 'websocket.close', 'code': 1000}]

    def test_unknown_scope(self, make_bridge):
        with pytest.raises(RuntimeError, match="'other'"):
            Client(make_bridge(hello_app), {'type': 'other'}).run()


class Test_edge_cases:
    def test_receive_error_while_reading(self, make_bridge, caplog):
        reads = []

        async def broken():
            raise ValueError('receive failed')

        messages = [
            {'type': 'http.request', 'body': BIG, 'more_body': True},
            broken,
        ]
        client = Client(make_bridge(reader_app(reads)), _scope(), messages)
        client.run()
        assert str(reads[0]) == 'receive failed'
        assert client.status == 500

    def test_other_headers_and_bad_content_length(self, make_bridge):
        reads = []
        scope = _scope(
            method='POST',
            headers=[(b'x-a', b'1'), (b'content-length', b'x')],
        )
        client = Client(
            make_bridge(reader_app(reads), max_body_size=10),
            scope,
            body_messages(b'abc'),
        ).run()
        assert client.status == 200
        assert reads == [b'abc']

    def test_receive_after_the_request_ended(self, make_bridge):
        from pyramid_asgi_ws.wsgi import ClientDisconnect
        from pyramid_asgi_ws.wsgi.channels import Feed as _Feed
        from pyramid_asgi_ws.wsgi.response import Call as _Call

        async def main():
            call = _Call(make_bridge(hello_app), _scope(), None, None)
            call.pipe.close()
            with pytest.raises(ClientDisconnect):
                call.receive_from_thread()
            feed = _Feed(call.loop, 10)
            call._start_feed(feed)
            assert feed.task is None
            with pytest.raises(ClientDisconnect):
                feed.get()
            with pytest.raises(ClientDisconnect):
                feed.get()

        asyncio.run(main())

    def test_body_read_ahead_is_bounded(self, make_bridge):
        from pyramid_asgi_ws.wsgi import BODY_BUFFER_SIZE
        from pyramid_asgi_ws.wsgi.channels import Feed

        chunk = b'x' * 65536
        count = 3 * BODY_BUFFER_SIZE // len(chunk)
        go = threading.Event()
        reads = []

        def read(f):
            # past what came before the app started (PREREAD_SIZE): the
            # feed starts reading ahead
            first = f.read(2 * len(chunk) + 1)
            go.wait(TIMEOUT)
            return first + f.read()

        def feed_waits_for_room():
            # the feed's task awaits the future the reads resolve, not
            # the client's receive()
            return any(
                getattr(coro := task.get_coro(), 'cr_code', None)
                is Feed.run.__code__
                and coro.cr_await is not None
                and not asyncio.iscoroutine(coro.cr_await)
                for task in asyncio.all_tasks()
            )

        async def main():
            client = Client(
                make_bridge(reader_app(reads, read)),
                _scope(method='POST'),
                body_messages(*[chunk] * count),
            )
            task = asyncio.create_task(client.arun())
            await until(feed_waits_for_room, 'the feed to be full', TIMEOUT)
            received = client.receives
            go.set()
            await task
            return received, client

        received, client = asyncio.run(main())
        # two before the app started, the one it read, one buffer ahead
        assert received <= 3 + BODY_BUFFER_SIZE // len(chunk)
        assert client.body == b'%d' % (count * len(chunk))
        assert client.receives == count
