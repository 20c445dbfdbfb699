"""Server-sent events consumers in the configuration: the directive's
options, the router, ``request.consumer_url``, ``pconsumers``, the
setting and the wire format's own checks."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.request import Request
import pytest

from pyramid_asgi_ws.interfaces import IConsumerRouter
from pyramid_asgi_ws.router import consumer_url
from pyramid_asgi_ws.scripts import pconsumers
from pyramid_asgi_ws.settings import parse_settings
from pyramid_asgi_ws.sse_format import (
    check_field,
    format_comment,
    format_event,
)
from pyramid_asgi_ws.testing import Event, EventParser


async def stream_consumer(stream: Any) -> None:
    await stream.send('hi')


def sync_consumer(stream: Any) -> None:
    pass  # pragma: no cover - refused before it could run


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    pass  # pragma: no cover - never served


def configure(*registrations: tuple[Any, ...], **settings: Any) -> Any:
    config = Configurator(settings=settings)
    config.include('pyramid_asgi_ws')
    for args, options in registrations:
        config.add_asgi_consumer(*args, **options)
    config.commit()
    return config


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'consumer': sync_consumer}, 'must be an async def function taking '
            'the EventStream'),
        ({'raw': True}, "raw=True does not go with protocol='sse'"),
        ({'subprotocols': 'chat'}, "option 'subprotocols' is for "
            "protocol='websocket' only, not 'sse'"),
        ({'max_message_size': 10}, "'max_message_size' is for"),
        ({'heartbeat': 'often'}, 'heartbeat must be a number of seconds'),
        ({'retry': -1}, 'retry must not be negative'),
    ],
)  # fmt: skip
def test_bad_options_fail_at_configuration(options, message):
    consumer = options.pop('consumer', stream_consumer)
    with pytest.raises(ConfigurationError, match=message.replace('(', '.')):
        configure((('/e', consumer), dict(options, protocol='sse')))


def test_stream_options_are_for_streams_only():
    for option in ('heartbeat', 'retry'):
        with pytest.raises(ConfigurationError, match='sse'):
            configure((('/ws', stream_consumer), {option: 1}))


def test_the_heartbeat_setting():
    assert parse_settings({})['sse_heartbeat'] == 15.0
    assert (
        parse_settings({'asgi_ws.sse_heartbeat': '2.5'})['sse_heartbeat']
        == 2.5
    )
    with pytest.raises(ConfigurationError, match='asgi_ws.sse_heartbeat'):
        parse_settings({'asgi_ws.sse_heartbeat': 'never'})


def test_streams_and_http_consumers_match_in_registration_order():
    config = configure(
        (('/a', stream_consumer), {'protocol': 'sse', 'name': 'a'}),
        (('/a', raw_app), {'protocol': 'http', 'name': 'raw-a'}),
        (('/b', raw_app), {'protocol': 'http', 'name': 'raw-b'}),
        (('/b', stream_consumer), {'protocol': 'sse', 'name': 'b'}),
    )
    router = config.registry.getUtility(IConsumerRouter)
    assert router.match('http', '/a')[0].name == 'a'
    assert router.match('http', '/b')[0].name == 'raw-b'
    assert router.match('websocket', '/a') is None
    assert router.has('sse') and router.has('http')
    assert not router.has('websocket')
    intr = config.registry.introspector.get(
        'asgi consumers', ('asgi consumer', 'sse', '/a')
    )
    assert intr['protocol'] == 'sse' and intr['heartbeat'] is None


def test_consumer_url_of_a_stream_is_http():
    config = configure(
        (
            ('/events/{room}', stream_consumer),
            {'protocol': 'sse', 'name': 'events'},
        ),
        (('/ws', stream_consumer), {'name': 'ws'}),
    )
    for base, scheme in (('http://h', 'http'), ('https://h', 'https')):
        request = Request.blank('/', base_url=base)
        request.registry = config.registry
        url = consumer_url(request, 'events', room='r1', _query={'x': 1})
        assert url == f'{scheme}://h/events/r1?x=1'
        assert consumer_url(request, 'ws').startswith(f'ws{scheme[4:]}://')


def test_pconsumers_lists_streams():
    config = configure(
        (
            ('/events', stream_consumer),
            {
                'protocol': 'sse',
                'name': 'events',
                'allowed_origins': 'https://a.example',
                'permission': 'view',
            },
        ),
    )
    rows = pconsumers.consumer_rows(config.registry)
    assert rows == [
        (
            'sse',
            '/events',
            'events',
            'tests.test_sse_config.stream_consumer',
            'view (unchecked: no security policy)',
            'same-origin https://a.example',
        )
    ]


# -- the wire format ---------------------------------------------------------


@pytest.mark.parametrize(
    ('value', 'name', 'error'),
    [
        ('a\nb', 'event', ValueError),
        ('a\rb', 'id', ValueError),
        ('a\0b', 'id', ValueError),
        (3, 'event', TypeError),
        (True, 'id', TypeError),
    ],
)
def test_fields_that_would_break_the_stream_are_refused(value, name, error):
    with pytest.raises(error, match=name):
        check_field(value, name)


def test_ids_may_be_ints_and_nul_is_fine_in_data():
    assert check_field(12, 'id') == '12'
    assert format_event('a\0b') == b'data: a\x00b\n\n'
    with pytest.raises(TypeError, match='event data must be a str or'):
        format_event(object())


def test_every_line_break_splits_the_data():
    assert format_event('a\rb\nc\r\nd', 'e', 'i', retry=0.25) == (
        b'event: e\nid: i\nretry: 250\ndata: a\ndata: b\ndata: c\ndata: d\n\n'
    )
    assert format_event('') == b'data: \n\n'
    assert format_comment('x\ny') == b':x\n:y\n\n'


def _text(forbidden: str = '') -> Any:
    # lone surrogates are no UTF-8: encoding them raises, as it should
    return st.text(
        st.characters(
            blacklist_categories=('Cs',), blacklist_characters=forbidden
        )
    )


@given(
    data=_text(),
    event=st.none() | _text('\r\n'),
    id=st.none() | _text('\r\n\0'),
    cut=st.integers(0, 200),
)
def test_what_a_browser_parses_is_what_was_sent(data, event, id, cut):
    wire = format_event(data, event, id)
    parser = EventParser()
    events = parser.feed(wire[:cut]) + parser.feed(wire[cut:])
    assert len(events) == 1
    expected = data.replace('\r\n', '\n').replace('\r', '\n')
    assert events[0].data == expected
    assert events[0].event == (event or 'message')
    assert events[0].id == (id or None)


def test_the_parser_reads_as_a_browser_does():
    parser = EventParser()
    wire = '\ufeffid: 1\nretry: \u00b2\ndata: a\r'.encode()
    assert parser.feed(wire) == []
    assert parser.feed(b'') == []  # between the CR and the LF of a CRLF
    assert parser.feed(b'\ndata: b\n') == []
    assert parser.last_event_id is None  # the event is not complete
    assert parser.feed(b'\n') == [Event('a\nb', id='1')]
    assert (parser.last_event_id, parser.retry) == ('1', None)
    # an id without data counts too, at its blank line
    assert parser.feed(b'id: 2\n\nretry: 30\ndata: c\n\n') == [
        Event('c', id='2', retry=30)
    ]
