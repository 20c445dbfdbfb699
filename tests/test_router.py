"""The consumer router and request.consumer_url."""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.request import Request, apply_request_extensions
import pytest

from pyramid_asgi_ws.interfaces import IConsumerRouter
from pyramid_asgi_ws.router import Consumer, ConsumerRouter, path_info


async def consumer(ws):
    await ws.accept()


def make_request(environ=None, **kw):
    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws/{room}', consumer, name='room')
    config.add_asgi_consumer(
        '/files/*rest', consumer, name='files', protocol='http'
    )
    config.commit()
    request = Request.blank('/', environ=environ, **kw)
    request.registry = config.registry
    apply_request_extensions(request)
    return request


def test_ws_url_follows_scheme_host_and_script_name():
    request = make_request(base_url='https://example.com:8443/app')
    assert (
        request.consumer_url('room', room='a b')
        == 'wss://example.com:8443/app/ws/a%20b'
    )
    plain = make_request(base_url='http://example.com')
    assert plain.consumer_url('room', room='x') == 'ws://example.com/ws/x'


def test_http_consumer_url_elements_and_query():
    request = make_request(base_url='http://example.com')
    assert (
        request.consumer_url('files', 'a', 'b', rest=('x',), _query='q=1')
        == 'http://example.com/files/x/a/b?q=1'
    )
    assert request.consumer_url(
        'room', room='r', _query={'token': 't'}
    ).endswith('/ws/r?token=t')


def test_placeholder_called_name():
    request = make_request(base_url='http://example.com')
    config = request.registry
    from pyramid_asgi_ws.interfaces import IConsumerRouter
    from pyramid_asgi_ws.router import Consumer

    config.getUtility(IConsumerRouter).add(
        Consumer('profile', '/u/{name}', consumer)
    )
    assert (
        request.consumer_url('profile', name='al') == 'ws://example.com/u/al'
    )


def test_shared_default_name_builds_no_url():
    request = make_request()
    routes = request.registry.getUtility(IConsumerRouter)
    for pattern in ('/a', '/b'):
        routes.add(Consumer('dup', pattern, consumer, explicit=False))
    with pytest.raises(KeyError, match="'/a', '/b'; give each"):
        request.consumer_url('dup')


def test_elements_are_quoted_and_route_url_keywords_work():
    request = make_request(base_url='http://example.com')
    url = request.consumer_url('room', 'a b', 'c/d?x', room='r')
    assert url == 'ws://example.com/ws/r/a%20b/c%2Fd%3Fx'
    url = request.consumer_url(
        'room', room='r', _app_url='https://public.example/app', _anchor='top'
    )
    assert url == 'wss://public.example/app/ws/r#top'
    with pytest.raises(TypeError, match="unknown keyword '_host'"):
        request.consumer_url('room', room='r', _host='x')


def test_unknown_name():
    request = make_request()
    with pytest.raises(KeyError, match="no ASGI consumer named 'nope'"):
        request.consumer_url('nope')


def test_router_order_and_lookup():
    router = ConsumerRouter()
    first = Consumer('first', '/a/{x}', consumer)
    second = Consumer('second', '/a/b', consumer)
    router.add(first)
    router.add(second)
    assert router.match('websocket', '/a/b')[0] is first
    assert router.get('second') is second
    assert list(router) == [first, second]
    assert router.has('websocket') and not router.has('http')
    assert router.match('lifespan', '/') is None
    with pytest.raises(ValueError, match='already exists'):
        router.add(Consumer('first', '/c', consumer))
    with pytest.raises(AttributeError):
        getattr(first, '__wrapped__')  # noqa: B009


@pytest.mark.parametrize(
    'path, root, expected',
    [('/app/ws', '/app', '/ws'), ('/app', '/app', '/'), ('/ws', '', '/ws'),
     ('/other', '/app', '/other'), ('/application/ws', '/app',
     '/application/ws'), ('/app/ws', '/app/', '/ws')],
)  # fmt: skip
def test_path_info(path, root, expected):
    assert path_info({'path': path, 'root_path': root}) == expected


@pytest.mark.parametrize(
    'elements, kw',
    [
        ((), {'_query': {'a': ['1', '2'], 'b': 'x y'}}),
        ((), {'_query': [('k', 'v/w'), ('k', 'ü')]}),
        ((), {'_query': 'q=a b&c=/'}),
        (('a b', 'c/d?x', 'é', 3), {'_anchor': 'top part/ü'}),
        (('x',), {'_query': {'t': ''}, '_anchor': ''}),
        ((), {'_app_url': 'http://public.example/app', '_query': None}),
    ],
)
def test_consumer_url_quotes_as_route_url_does(elements, kw):
    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/f/{x}', consumer, name='f', protocol='http')
    config.add_asgi_consumer('/w/{x}', consumer, name='w')
    config.add_route('f', '/f/{x}')
    config.commit()
    request = Request.blank('/', base_url='http://example.com')
    request.registry = config.registry
    apply_request_extensions(request)
    expected = request.route_url('f', *elements, x='a b/c', **kw)
    assert request.consumer_url('f', *elements, x='a b/c', **kw) == expected
    assert request.consumer_url(
        'w', *elements, x='a b/c', **kw
    ) == 'ws' + expected[4:].replace('/f/', '/w/', 1)


def test_consumer_attribute_typos_raise():
    entry = Consumer('c', '/ws', consumer, options={'permission': 'chat'})
    assert entry.permission == 'chat'
    assert entry.factory is None  # a known option, not given
    with pytest.raises(AttributeError):
        entry.permision  # noqa: B018
    assert Consumer.permission.name == 'permission'


def test_elements_after_a_trailing_slash():
    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/dir/', consumer, name='dir')
    config.commit()
    request = Request.blank('/', base_url='http://example.com')
    request.registry = config.registry
    apply_request_extensions(request)
    assert request.consumer_url('dir', 'a') == 'ws://example.com/dir/a'
