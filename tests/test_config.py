"""The directives, the decorators' scan and the introspection they leave."""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError
from pyramid.interfaces import IRequestExtensions
import pytest

from pyramid_asgi_ws.interfaces import IASGISettings, IConsumerRouter
from tests.pkgs.scanned import scanned


async def echo(ws):
    await ws.accept()


async def other(ws):
    await ws.accept()


def router(config):
    return config.registry.getUtility(IConsumerRouter)


def test_includeme_adds_directives_and_request_method(config):
    assert callable(config.add_asgi_consumer)
    assert callable(config.make_asgi_app)
    config.commit()
    extensions = config.registry.getUtility(IRequestExtensions)
    assert 'consumer_url' in extensions.methods
    assert config.registry.getUtility(IASGISettings)['max_message_size'] == (
        1024 * 1024
    )


def test_add_consumer_registers_it(config):
    config.add_asgi_consumer('/ws/{room}', echo)
    config.commit()
    consumer, matchdict = router(config).match('websocket', '/ws/lobby')
    assert consumer.name == 'tests.test_config.echo'
    assert consumer.original is echo
    assert matchdict == {'room': 'lobby'}
    assert router(config).match('http', '/ws/lobby') is None
    assert router(config).match('websocket', '/other') is None


def test_dotted_name_consumer(config):
    config.add_asgi_consumer('/ws', 'tests.test_config.echo', name='dotted')
    config.commit()
    assert router(config).get('dotted').original is echo


def test_route_prefix_applies(config):
    def include(config):
        config.add_asgi_consumer('/ws', echo, name='prefixed')

    config.include(include, route_prefix='/chat')
    config.commit()
    assert router(config).get('prefixed').pattern == '/chat/ws'
    assert router(config).match('websocket', '/chat/ws') is not None


def test_same_pattern_conflicts(config):
    config.add_asgi_consumer('/ws', echo, name='a')
    config.add_asgi_consumer('/ws', other, name='b')
    with pytest.raises(ConfigurationConflictError):
        config.commit()


def test_same_pattern_other_protocol_does_not_conflict(config):
    config.add_asgi_consumer('/ws', echo, name='a')
    config.add_asgi_consumer('/ws', echo, name='b', protocol='http')
    config.commit()
    assert router(config).match('http', '/ws')[0].name == 'b'


def test_duplicate_explicit_name_is_an_error(config):
    config.add_asgi_consumer('/one', echo, name='same')
    config.add_asgi_consumer('/two', other, name='same')
    with pytest.raises(ConfigurationError, match='pass name='):
        config.commit()


def test_explicit_name_equal_to_a_default_name_is_an_error(config):
    config.add_asgi_consumer('/one', echo)
    config.add_asgi_consumer('/two', other, name='tests.test_config.echo')
    with pytest.raises(ConfigurationError, match='already exists'):
        config.commit()


def test_one_callable_for_several_patterns_shares_its_default_name(config):
    config.add_asgi_consumer('/one', echo)
    config.add_asgi_consumer('/two', echo)
    config.add_asgi_consumer('/three', echo)
    config.commit()
    assert router(config).match('websocket', '/two')[0].original is echo
    assert router(config).get('tests.test_config.echo') is None
    assert len(router(config).sharing('tests.test_config.echo')) == 3
    assert len(router(config)) == 3


def test_including_app_overrides_library_consumer(config):
    def library(config):
        config.add_asgi_consumer('/ws', echo, name='lib')

    config.include(library)
    config.add_asgi_consumer('/ws', other, name='app')
    config.commit()
    assert router(config).match('websocket', '/ws')[0].name == 'app'


def test_introspectable(config):
    config.add_asgi_consumer('/ws', echo, name='intro', permission='view')
    config.commit()
    intr = config.registry.introspector.get(
        'asgi consumers', ('asgi consumer', 'websocket', '/ws')
    )
    assert intr['name'] == 'intro'
    assert intr['pattern'] == '/ws'
    assert intr['permission'] == 'view'
    assert intr['consumer'] is echo
    assert intr['object'].name == 'intro'
    assert intr.type_name == 'asgi consumer'


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'protocol': 'ftp'}, "not 'ftp'"),
        ({'bogus': 1}, "unknown add_asgi_consumer option 'bogus'"),
        ({'max_message_size': 'big'}, 'max_message_size must be a byte'),
        ({'send_overflow': 'explode'}, 'send_overflow must be one of'),
        ({'send_queue_size': 0}, 'send_queue_size must be positive'),
        ({'send_queue_size': 'x'}, 'send_queue_size must be a whole'),
        ({'send_queue_size': 2.5}, 'send_queue_size must be a whole'),
        ({'raw': 'ture'}, "raw must be true or false .*not 'ture'"),
        ({'raw': 'enabled'}, "raw must be true or false .*not 'enabled'"),
        ({'require_origin': 'ture'}, 'require_origin must be true or false'),
        ({'subprotocols': 5}, 'subprotocols must be a list of strings'),
        ({'subprotocols': [b'v1']}, 'subprotocols must be a list of str'),
        ({'allowed_origins': 5}, 'allowed_origins must be a list of str'),
        ({'allowed_origins': 'a.example'}, "origins: 'a.example' is not an"),
        ({'factory': 42}, 'factory 42 is not callable'),
        ({'factory': 'pyramid_asgi_ws.settings.PREFIX'}, "factory 'pyramid"),
    ],
)
def test_bad_arguments_name_the_problem(config, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        config.add_asgi_consumer('/ws', echo, **kwargs)


def test_sync_function_consumer_is_refused(config):
    def sync(ws):
        pass

    with pytest.raises(ConfigurationError, match='must be an async def'):
        config.add_asgi_consumer('/ws', sync)

    class SyncCall:
        def __call__(self, ws):
            pass

    class AsyncCall:
        async def __call__(self, ws):
            pass

    for bad in (SyncCall, SyncCall(), SyncCall().__call__):
        with pytest.raises(ConfigurationError, match='must be an async def'):
            config.add_asgi_consumer('/ws', bad)
    config.add_asgi_consumer('/a', AsyncCall, name='a')
    config.add_asgi_consumer('/b', AsyncCall(), name='b')
    config.add_asgi_consumer('/raw', sync, raw=True)  # any ASGI callable


def test_uncallable_and_bad_pattern(config):
    with pytest.raises(ConfigurationError, match='is not callable'):
        config.add_asgi_consumer('/ws', 42)
    with pytest.raises(ConfigurationError, match='pattern must be a string'):
        config.add_asgi_consumer(None, echo)


def test_none_options_mean_the_settings(config):
    config.add_asgi_consumer(
        '/ws', echo, allowed_origins=None, permission=None,
        require_origin=None, max_message_size=None,
    )  # fmt: skip
    config.commit()
    consumer = router(config).get('tests.test_config.echo')
    assert consumer.options == {'max_message_size': None}


def test_blank_max_message_size_means_the_setting(config):
    # only None (or 'none') lifts the limit; a blank string keeps it
    config.add_asgi_consumer('/ws', echo, max_message_size=' ')
    config.add_asgi_consumer('/no', echo, name='no', max_message_size='none')
    config.commit()
    assert router(config).get('tests.test_config.echo').options == {}
    assert router(config).get('no').options == {'max_message_size': None}


def test_options_are_normalized(config):
    config.add_asgi_consumer(
        '/ws',
        echo,
        allowed_origins='https://a.example https://b.example',
        subprotocols=['v1'],
        max_message_size='64KiB',
        require_origin='true',
        factory='tests.apps.core.Root',
    )
    config.commit()
    consumer = router(config).get('tests.test_config.echo')
    assert consumer.allowed_origins == (
        'https://a.example',
        'https://b.example',
    )
    assert consumer.subprotocols == ('v1',)
    assert consumer.max_message_size == 65536
    assert consumer.require_origin is True
    assert consumer.factory.__name__ == 'Root'
    assert consumer.permission is None
    assert 'websocket' in repr(consumer)


def test_scan_registers_decorated_consumers(config):
    config.scan('tests.pkgs.scanned')
    config.commit()
    names = {consumer.name for consumer in router(config)}
    assert names == {
        'scanned-func',
        'tests.pkgs.scanned.ScannedClass',
        'tests.pkgs.scanned.scanned_http',
        'raw-ws',
    }
    assert router(config).get('scanned-func').original is scanned
    assert router(config).get('raw-ws').raw is True
    assert router(config).get('tests.pkgs.scanned.scanned_http').raw is True


def test_scan_conflict_names_the_decorator_lines(config):
    config.scan('tests.pkgs.conflicting')
    with pytest.raises(ConfigurationConflictError) as excinfo:
        config.commit()
    text = str(excinfo.value)
    assert "@websocket_consumer('/same', name='first')" in text
    assert "@websocket_consumer('/same', name='second')" in text


def test_scan_without_include_says_what_is_missing():
    config = Configurator()
    with pytest.raises(ConfigurationError, match=r"config.include\('pyramid"):
        config.scan('tests.pkgs.conflicting')


def test_make_asgi_app_wraps_the_router():
    config = Configurator(settings={'asgi_ws.threads': '3'})
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', echo)
    app = config.make_asgi_app()
    assert app.registry is config.registry
    assert app.wsgi_app.registry is config.registry
    assert app.settings['threads'] == 3
    assert app.consumers.get('tests.test_config.echo') is not None


def test_bad_setting_fails_at_commit():
    config = Configurator(settings={'asgi_ws.max_mesage_size': '1'})
    config.include('pyramid_asgi_ws')
    with pytest.raises(ConfigurationError, match='asgi_ws.max_mesage_size'):
        config.commit()


def test_raw_takes_pyramids_words(config):
    async def raw(scope, receive, send):  # pragma: no cover - never runs
        pass

    config.add_asgi_consumer('/a', raw, name='a', raw='yes')
    config.add_asgi_consumer('/b', echo, name='b', raw='off')
    config.commit()
    assert router(config).get('a').raw is True
    assert router(config).get('b').raw is False


def test_a_decorator_option_typo_fails_at_scan(config):
    with pytest.raises(ConfigurationError, match="require_origin.*'ture'"):
        config.scan('tests.pkgs.typo')


def test_every_option_reads_as_a_consumer_attribute():
    from pyramid_asgi_ws.config import OPTIONS
    from pyramid_asgi_ws.router import Consumer

    entry = Consumer('c', '/ws', echo, options={})
    for name in OPTIONS:
        assert getattr(entry, name) is None


def test_option_lists_and_empty_queue_size(config):
    config.add_asgi_consumer('/ws', echo, subprotocols=('a', 'b'))
    with pytest.raises(
        ConfigurationError, match="send_queue_size must be a positive"
    ):
        config.add_asgi_consumer('/q', echo, send_queue_size='')
    config.commit()
    assert router(config).get('tests.test_config.echo').subprotocols == (
        'a',
        'b',
    )


def test_raw_consumer_classes_get_an_instance_per_scope(config):
    from tests.asgi import Channel, run, ws_scope

    made = []

    class Raw:
        def __init__(self):
            made.append(self)

        async def __call__(self, scope, receive, send):
            await receive()
            await send({'type': 'websocket.close', 'code': 1000})

    config.add_asgi_consumer('/raw', Raw, raw=True)
    app = config.make_asgi_app()
    for _ in range(2):
        channel = Channel({'type': 'websocket.connect'})
        run(app(ws_scope('/raw'), channel.receive, channel.send))
    assert len(made) == 2 and made[0] is not made[1]


def test_settings_registered_twice_keep_one_router(config):
    from pyramid_asgi_ws.config import register_settings

    config.commit()
    first = router(config)
    register_settings(config)
    config.commit()
    assert router(config) is first


def test_option_strings_and_class_consumers(config):
    from tests.asgi import Channel, run, ws_scope

    made = []

    class Echo:
        def __init__(self):
            made.append(self)

        async def __call__(self, ws):
            await ws.accept()

    config.add_asgi_consumer(
        '/s', echo, subprotocols='a b', send_queue_size='4'
    )
    config.add_asgi_consumer('/c', Echo, name='class')
    config.commit()
    consumer = router(config).get('tests.test_config.echo')
    assert consumer.subprotocols == ('a', 'b')
    assert consumer.send_queue_size == 4
    assert router(config).get('class').original is Echo
    app = config.make_asgi_app()
    channel = Channel({'type': 'websocket.connect'})
    run(app(ws_scope('/c'), channel.receive, channel.send))
    assert channel.sent[0] == {'type': 'websocket.accept'}
    assert len(made) == 1
