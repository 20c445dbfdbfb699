"""Parsing of the asgi_ws.* settings."""

from __future__ import annotations

from pyramid.exceptions import ConfigurationError
import pytest

from pyramid_asgi_ws.settings import DEFAULTS, as_size, parse_settings


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
