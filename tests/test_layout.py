"""The package's layout: imports point one way, modules stay small.

docs/layout.rst describes the layers; this test keeps the code to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'pyramid_asgi_ws'

#: Modules importing nothing of the package, so every layer may use them.
LEAVES = {'settings', 'closecodes', 'interfaces', 'txn'}

#: The layers, from the top: a module imports only from its own layer,
#: the layers below it and the leaves.
LAYERS = {
    'configuration': (
        '', 'config', 'decorators', 'paster', 'runners', 'scripts', 'testing'
    ),
    'application': (
        'app', 'handshake', 'running', 'origin', 'refusal', 'denial_log',
        'router', 'events', 'security', 'asyncviews', 'request',
        'sse_running', 'lifespan', 'metrics',
    ),
    'connections': (
        'websocket', 'groups', 'messages', 'scope', 'typed', 'consumers',
        'syncconsumer', 'sse', 'sse_format', 'sse_groups',
    ),
    'transport': ('broadcast', 'backends', 'wsgi'),
}  # fmt: skip

ORDER = list(LAYERS)


def modules() -> list[tuple[str, Path]]:
    """Every module of the package, named relative to it ('' for it)."""
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        found.append(('.'.join(parts), path))
    return found


def top(name: str) -> str:
    return name.split('.')[0]


def layer(name: str) -> int:
    for index, tops in enumerate(LAYERS.values()):
        if top(name) in tops:
            return index
    raise AssertionError(f'pyramid_asgi_ws.{name} is in no layer')


def imported(path: Path) -> set[str]:
    """The package modules ``path`` imports, named as by ``modules()``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if module == 'pyramid_asgi_ws':
                names.update(alias.name for alias in node.names)
            elif module.startswith('pyramid_asgi_ws.'):
                names.add(module[len('pyramid_asgi_ws.') :])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith('pyramid_asgi_ws.'):
                    names.add(alias.name[len('pyramid_asgi_ws.') :])
    return {name for name in names if name[:1].islower()}


MODULES = modules()


@pytest.mark.parametrize('name, path', MODULES, ids=[m[0] for m in MODULES])
def test_imports_point_down(name, path):
    uses = imported(path)
    if top(name) in LEAVES:
        assert not uses, f'{name} must import nothing of the package'
        return
    own = layer(name)
    upward = sorted(
        used
        for used in uses
        if top(used) not in LEAVES and layer(used) < own
    )
    assert not upward, f'{name} ({ORDER[own]}) imports {upward} from above'


def test_the_bridge_and_the_broadcaster_know_nothing_above_them():
    for name, path in MODULES:
        uses = {top(used) for used in imported(path)}
        if top(name) == 'wsgi':
            assert uses <= {'wsgi'}, name
        if top(name) == 'broadcast':
            assert 'websocket' not in uses, name


@pytest.mark.parametrize('name, path', MODULES, ids=[m[0] for m in MODULES])
def test_modules_and_classes_stay_small(name, path):
    text = path.read_text()
    assert text.count('\n') <= 400, f'{name} has over 400 lines'
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= 250, f'{name}.{node.name} has {size} lines'
