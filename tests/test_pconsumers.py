"""The ``pconsumers`` console script."""

from __future__ import annotations

import io
import os
import subprocess

from pyramid_asgi_ws.scripts import pconsumers
from tests.fixtures.apps import Chat
from tests.fixtures.deploy import FIXTURES, PYTHONPATH, script

INI = str(FIXTURES / 'apps.ini')
# the fixture app has no security policy: chat's permission is not checked
TABLE = """\
Protocol          Pattern           Name                         Callable                     Permission                             Origins
--------          -------           ----                         --------                     ----------                             -------
websocket         /ws/echo          echo                         tests.fixtures.apps.echo     -                                      same-origin https://www.example.com
websocket         /ws/chat/{room}   chat                         tests.fixtures.apps.Chat     chat (unchecked: no security policy)   same-origin https://chat.example.com
http              /health           tests.fixtures.apps.health   tests.fixtures.apps.health   -                                      -
websocket (raw)   /ws/raw           raw                          tests.fixtures.apps.health   -                                      *
"""  # noqa: E501


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = pconsumers.main(['pconsumers', *args], out=out)
    return status, out.getvalue()


def test_prints_every_consumer():
    status, output = run(INI)
    assert status == 0
    assert output == TABLE


def test_glob_matches_names_and_patterns():
    status, output = run('-g', '/ws/c*', INI)
    assert status == 0
    assert [line.split()[2] for line in output.splitlines()] == [
        'Name',
        '----',
        'chat',
    ]
    status, output = run('--glob', 'ech?', INI)
    assert [line.split()[1] for line in output.splitlines()[2:]] == [
        '/ws/echo'
    ]


def test_no_consumers():
    assert run(INI + '#included') == (0, 'No consumers.\n')


def test_app_without_the_include():
    status, output = run(INI + '#plain')
    assert status == 2
    assert 'pyramid.includes = pyramid_asgi_ws' in output


def test_requires_a_config_file():
    assert run() == (2, 'requires a config file argument\n')


def test_describe_instances_by_class():
    assert pconsumers.describe(Chat()) == 'tests.fixtures.apps.Chat'


def test_origins_without_the_check():
    class Consumer:
        allowed_origins = None

    settings = {'check_origin': False, 'allowed_origins': ('https://a.b',)}
    assert pconsumers.origins(Consumer(), settings) == '*'
    settings['check_origin'] = True
    assert (
        pconsumers.origins(Consumer(), settings) == 'same-origin https://a.b'
    )


def test_console_script(tmp_path):
    ini = tmp_path / 'vars.ini'
    ini.write_text(
        '[app:main]\nuse = call:tests.fixtures.apps:main\n'
        'asgi_ws.allowed_origins = %(origin)s\n'
    )
    result = subprocess.run(
        [script('pconsumers'), str(ini), 'origin=https://www.example.com'],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=PYTHONPATH),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == TABLE


def test_the_effective_permission_is_shown():
    from tests.pkgs.locked import app

    rows = pconsumers.consumer_rows(app.registry)
    assert [(row[2], row[4]) for row in rows] == [
        ('default', 'view'),
        ('own', 'chat'),
        ('open', '-'),
        ('flood', '-'),
        ('tests.pkgs.locked.stop', '-'),
        ('tests.pkgs.locked.health', 'view'),
        ('raw', 'view'),
        ('raw-open', '-'),
        ('class', 'view'),
        ('class-open', '-'),
        ('sync', 'view'),
        ('sync-open', '-'),
        ('prefixed', 'view'),
        ('prefixed-open', '-'),
        ('decorated', 'view'),
        ('decorated-http', 'view'),
        ('decorated-http-open', '-'),
        ('decorated-open', '-'),
        ('open-http', '-'),
    ]
