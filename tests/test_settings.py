"""Parsing of the asgi_ws.* settings."""

from __future__ import annotations

from pyramid.exceptions import ConfigurationError
import pytest

from pyramid_asgi_ws.settings import (
    DEFAULTS,
    as_bool,
    as_positive_int,
    as_seconds,
    as_size,
    normalize_origin,
    parse_settings,
)


def test_defaults():
    parsed = parse_settings({})
    assert parsed['max_message_size'] == 1024 * 1024
    assert parsed['broadcast_url'] == 'memory://'
    assert parsed['threads'] is None
    assert parsed['allowed_origins'] == ()
    assert set(parsed) == set(DEFAULTS)


def test_ini_strings_are_normalized():
    parsed = parse_settings(
        {
            'asgi_ws.threads': '8',
            'asgi_ws.max_body_size': '10MiB',
            'asgi_ws.allowed_origins': 'https://A.example\nhttps://b.example/',
            'asgi_ws.require_origin': 'yes',
            'asgi_ws.trusted_proxies': '127.0.0.1 10.0.0.0/8',
            'asgi_ws.max_message_size': '64k',
            'asgi_ws.send_queue_size': '16',
            'asgi_ws.send_overflow': 'drop_oldest',
            'asgi_ws.broadcast_url': 'redis://127.0.0.1:6379/0',
            'asgi_ws.shutdown_timeout': '2.5',
            'asgi_ws.publish_timeout': '0.5',
            'asgi_ws.send_timeout': '3',
            'asgi_ws.history_size': '100',
            'asgi_ws.history': 'room:* 500 3600\nprivate:* off',
            'asgi_ws.metrics_path': ' /metrics ',
            'asgi_ws.metrics_allow': '10.0.0.0/8\nunix',
            'asgi_ws.metrics_default_registry': 'no',
        }
    )
    assert parsed == {
        'threads': 8,
        'max_body_size': 10 * 1024 * 1024,
        'allowed_origins': ('https://a.example', 'https://b.example'),
        'require_origin': True,
        'check_origin': True,
        'trusted_proxies': ('127.0.0.1', '10.0.0.0/8'),
        'max_message_size': 64 * 1024,
        'send_queue_size': 16,
        'send_overflow': 'drop_oldest',
        'broadcast_url': 'redis://127.0.0.1:6379/0',
        'shutdown_timeout': 2.5,
        'publish_timeout': 0.5,
        'send_timeout': 3.0,
        'history_size': 100,
        'history_ttl': None,
        'history': (('room:*', 500, 3600.0), ('private:*', None, None)),
        'sse_heartbeat': 15.0,
        'metrics': None,
        'metrics_path': '/metrics',
        'metrics_allow': ('10.0.0.0/8', 'unix'),
        'metrics_default_registry': False,
    }


def test_python_values_are_accepted():
    parsed = parse_settings(
        {
            'asgi_ws.threads': 4,
            'asgi_ws.allowed_origins': ['https://a.example'],
            'asgi_ws.trusted_proxies': ['127.0.0.1'],
            'asgi_ws.require_origin': True,
            'asgi_ws.max_message_size': None,
        }
    )
    assert parsed['threads'] == 4
    assert parsed['allowed_origins'] == ('https://a.example',)
    assert parsed['trusted_proxies'] == ('127.0.0.1',)
    assert parsed['max_message_size'] is None


@pytest.mark.parametrize(
    'key, value, message',
    [
        ('asgi_ws.threads', 'many', 'asgi_ws.threads must be a whole number'),
        ('asgi_ws.threads', '0', 'asgi_ws.threads must be positive'),
        ('asgi_ws.max_body_size', '1 parsec', 'asgi_ws.max_body_size'),
        ('asgi_ws.max_message_size', 0, 'must be positive'),
        ('asgi_ws.send_overflow', 'panic', 'asgi_ws.send_overflow must be'),
        ('asgi_ws.broadcast_url', 'localhost', 'asgi_ws.broadcast_url'),
        ('asgi_ws.shutdown_timeout', 'soon', 'number of seconds'),
        ('asgi_ws.shutdown_timeout', '-1', 'must not be negative'),
        ('asgi_ws.treads', '4', "unknown setting 'asgi_ws.treads'"),
        ('asgi_ws.trusted_proxies', '10.0.0.0/33', "'10.0.0.0/33' is not"),
        ('asgi_ws.trusted_proxies', '10.0.0.1O', "'10.0.0.1O' is not"),
    ],
)
def test_bad_values_name_the_setting(key, value, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_settings({key: value})


@pytest.mark.parametrize(
    'value, expected',
    [('', None), ('none', None), (None, None), ('2g', 2 * 1024**3),
     ('512', 512), ('1KiB', 1024), (' 3 MB ', 3 * 1024**2), (7, 7)],
)  # fmt: skip
def test_as_size(value, expected):
    assert as_size(value) == expected


@pytest.mark.parametrize('blank', ['', '  ', '\n'])
def test_blank_size_settings_mean_the_default(blank):
    # only 'none' lifts a limit; an empty ini line keeps the default
    parsed = parse_settings(
        {'asgi_ws.max_message_size': blank, 'asgi_ws.max_body_size': blank}
    )
    assert parsed['max_message_size'] == DEFAULTS['max_message_size']
    assert parsed['max_body_size'] is None  # its default: no limit
    assert as_size(blank, 's', 42) == 42
    unlimited = parse_settings({'asgi_ws.max_message_size': 'None'})
    assert unlimited['max_message_size'] is None


@pytest.mark.parametrize(
    'value, entry',
    [
        ('https://a.example,https://b.example',) * 2,
        ('https://a.example/app', 'https://a.example/app'),
        ('www.example.com', 'www.example.com'),
        ('ftp://a.example', 'ftp://a.example'),
        ('https://*.example.com', 'https://*.example.com'),
        ('https://a.example:70000', 'https://a.example:70000'),
        ('https://a.example:port', 'https://a.example:port'),
        ('https://', 'https://'),
        ('null', 'null'),
    ],
)
def test_allowed_origins_entries_are_checked(value, entry):
    with pytest.raises(ConfigurationError) as info:
        parse_settings({'asgi_ws.allowed_origins': value})
    message = str(info.value)
    assert message.startswith(f'asgi_ws.allowed_origins: {entry!r}')
    assert 'is not an origin such as' in message


def test_allowed_origins_accepts_origins():
    parsed = parse_settings(
        {
            'asgi_ws.allowed_origins': (
                '* http://localhost:6543 https://[::1]:8443/ '
                'HTTPS://A.Example:443 http://my_host.internal'
            )
        }
    )
    assert parsed['allowed_origins'] == (
        '*',
        'http://localhost:6543',
        'https://[::1]:8443',
        'https://a.example',
        'http://my_host.internal',
    )


@pytest.mark.parametrize('name', ['allowed_origins', 'trusted_proxies'])
@pytest.mark.parametrize('value', [5, b'https://a.example', [1], {'a': 1}])
def test_lists_that_are_not_lists_of_strings(name, value):
    with pytest.raises(ConfigurationError) as info:
        parse_settings({'asgi_ws.' + name: value})
    assert str(info.value).startswith(
        f'asgi_ws.{name} must be a list of strings'
    )
    assert repr(value) in str(info.value)


def test_none_is_an_empty_list():
    parsed = parse_settings(
        {'asgi_ws.allowed_origins': None, 'asgi_ws.trusted_proxies': None}
    )
    assert (parsed['allowed_origins'], parsed['trusted_proxies']) == ((), ())


@pytest.mark.parametrize('value', ['0', 0, '0.0'])
@pytest.mark.parametrize('name', ['publish_timeout', 'send_timeout'])
def test_a_timeout_must_be_more_than_zero(name, value):
    # a wait of 0 s would make every threadsafe publish (or send) fail
    with pytest.raises(
        ConfigurationError,
        match=f'asgi_ws.{name} must be more than 0, not {value!r}',
    ):
        parse_settings({f'asgi_ws.{name}': value})
    timeout = parse_settings({f'asgi_ws.{name}': '0.01'})
    assert timeout[name] == 0.01


@pytest.mark.parametrize(
    'value, expected',
    [('8', 8), (' 8 ', 8), (8, 8), (8.0, 8), ('', None), (None, None)],
)
def test_as_positive_int(value, expected):
    assert as_positive_int(value, 'n') == expected


@pytest.mark.parametrize(
    'value, kwargs, message',
    [
        ('1.5', {}, "n must be a whole number, not '1.5'"),
        (1.5, {}, 'n must be a whole number, not 1.5'),
        (True, {}, 'n must be a whole number, not True'),
        (float('inf'), {}, 'n must be a whole number, not inf'),
        ([], {}, r'n must be a whole number, not \[\]'),
        ('-3', {}, "n must be positive, not '-3'"),
        ('70000', {'maximum': 65535}, "n must be at most 65535, not '70000'"),
    ],
)
def test_as_positive_int_refuses(value, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        as_positive_int(value, 'n', **kwargs)


@pytest.mark.parametrize(
    'value, kwargs, expected',
    [('2.5', {}, 2.5), (0, {}, 0.0), ('30', {'minimum': 1}, 30.0),
     (1, {'minimum': 1, 'maximum': 1}, 1.0)],
)  # fmt: skip
def test_as_seconds(value, kwargs, expected):
    seconds = as_seconds(value, 't', **kwargs)
    assert seconds == expected
    assert isinstance(seconds, float)


@pytest.mark.parametrize(
    'value, kwargs, message',
    [
        ('soon', {}, "t must be a number of seconds, not 'soon'"),
        (None, {}, 't must be a number of seconds, not None'),
        (False, {}, 't must be a number of seconds, not False'),
        ('nan', {}, "t must be a number of seconds, not 'nan'"),
        ('inf', {}, "t must be a number of seconds, not 'inf'"),
        ('-0.5', {}, "t must not be negative, not '-0.5'"),
        ('0', {'minimum': 1}, "t must be at least 1, not '0'"),
        ('0.5', {'minimum': 1}, "t must be at least 1, not '0.5'"),
        (61, {'maximum': 60}, 't must be at most 60, not 61'),
    ],
)
def test_as_seconds_refuses(value, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        as_seconds(value, 't', **kwargs)


def test_size_bounds_name_the_setting():
    with pytest.raises(ConfigurationError, match="s must be positive, not"):
        as_size('0k', 's')


@pytest.mark.parametrize(
    'value, expected',
    [(True, True), (False, False), (1, True), (0, False), (' Yes ', True),
     ('on', True), ('true', True), ('OFF', False), ('0', False),
     ('false', False)],
)  # fmt: skip
def test_as_bool(value, expected):
    assert as_bool(value, 'b') is expected


@pytest.mark.parametrize('value', ['enabled', 'ture', '', None, 2, 1.0, []])
def test_as_bool_refuses_what_it_does_not_know(value):
    with pytest.raises(
        ConfigurationError, match='b must be true or false'
    ):
        as_bool(value, 'b')


def test_proxy_words():
    parsed = parse_settings({'asgi_ws.trusted_proxies': 'unix *'})
    assert parsed['trusted_proxies'] == ('unix', '*')


@pytest.mark.parametrize(
    'given, expected',
    [('HTTPS://Example.COM:443/', 'https://example.com'),
     ('http://example.com:80', 'http://example.com'),
     ('http://example.com:8080', 'http://example.com:8080'),
     ('https://[::1]:443', 'https://[::1]'),
     ('null', 'null')],
)  # fmt: skip
def test_normalize_origin(given, expected):
    assert normalize_origin(given) == expected


def test_settings_import_nothing_of_the_application():
    # configuration is the top layer: parsing settings needs none below it
    import ast
    import pathlib

    import pyramid_asgi_ws.settings as module

    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not {m for m in imported if m and m.startswith('pyramid_asgi_ws')}
