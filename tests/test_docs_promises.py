"""What the docs list stays complete as the package grows.

Every ``asgi_ws.*`` setting is on the settings page (and refuses, by
name, a value it does not understand), every module of the package is on
the code layout page, every public name in the API reference (which Read
the Docs can build) and every metric in the deployment chapter.
"""

from __future__ import annotations

import ast
from importlib import metadata
from pathlib import Path
import re
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IRequestExtensions
import pytest

import pyramid_asgi_ws
from pyramid_asgi_ws import settings, testing
from pyramid_asgi_ws.metrics import get_metrics
from tests.support import ROOT

DOCS = ROOT / 'docs'
PACKAGE = ROOT / 'pyramid_asgi_ws'


def section(page: str, title: str) -> str:
    """Return the text of ``docs/<page>`` under the heading ``title``,
    up to the next heading of the same level."""
    text = (DOCS / page).read_text()
    match = re.search(
        rf'^{re.escape(title)}\n(?P<rule>[=\-~])(?P=rule)+\n', text, re.M
    )
    assert match, f'no heading {title!r} in {page}'
    rest = text[match.end() :]
    rule = match.group('rule')
    end = re.search(rf'^\S.*\n{re.escape(rule)}{{3,}}\n', rest, re.M)
    return rest[: end.start()] if end else rest


def headings(text: str) -> str:
    """The headings of ``text`` (a line over a rule of ``-``), joined."""
    return '\n'.join(re.findall(r'^(\S.*)\n-{3,}$', text, re.M))


@pytest.mark.parametrize('name', sorted(settings.DEFAULTS))
def test_every_setting_has_a_heading_on_the_settings_page(name):
    listed = headings(section('index.rst', 'Settings'))
    assert f'``{settings.PREFIX}{name}``' in listed


def modules() -> list[str]:
    return sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob('*.py')
        if path.name != '__init__.py' or path.parent == PACKAGE
    )


@pytest.mark.parametrize('module', modules())
def test_every_module_is_on_the_layout_page(module):
    layout = (DOCS / 'layout.rst').read_text()
    *folders, name = module.split('/')
    for folder in folders:
        assert f'``{folder}/``' in layout
    assert f'``{name}``' in layout


def documented(title: str) -> set[str]:
    """The names an ``auto*::`` directive of an API section documents."""
    text = section('api.rst', title)
    names = set(re.findall(r'^\.\. auto\w+:: (?:[\w.]+\.)?(\w+)$', text, re.M))
    for members in re.findall(r'^   :members: (.+)$', text, re.M):
        names.update(member.strip() for member in members.split(','))
    return names


def test_every_public_name_is_in_the_api_reference():
    assert set(pyramid_asgi_ws.__all__) <= documented('``pyramid_asgi_ws``')


def test_the_testing_package_documents_its_public_names():
    # its section is ``automodule:: pyramid_asgi_ws.testing`` with
    # ``:members:``, which documents exactly ``__all__``
    text = section('api.rst', '``pyramid_asgi_ws.testing``')
    assert '.. automodule:: pyramid_asgi_ws.testing\n   :members:\n' in text
    for name in testing.__all__:
        assert getattr(testing, name).__doc__, name


def test_every_module_the_docs_name_with_mod_has_an_entry():
    api = (DOCS / 'api.rst').read_text()
    entries = set(re.findall(r'^\.\. (?:auto)?module:: ([\w.]+)$', api, re.M))
    named = set()
    for page in DOCS.glob('*.rst'):
        named.update(
            re.findall(r':mod:`~?(pyramid_asgi_ws[\w.]*)`', page.read_text())
        )
    assert named - entries == set()


def test_the_setup_section_names_every_request_method():
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
    extensions = config.registry.getUtility(IRequestExtensions)
    setup = section('index.rst', 'Setup')
    said = set(re.findall(r'``request\.(\w+)``', setup))
    assert said == set(extensions.methods)


#: A value each setting does not understand.
BAD_VALUES = {
    'threads': '1.5',
    'max_body_size': '10 apples',
    'allowed_origins': 'a,b',
    'require_origin': 'ture',
    'check_origin': 'enabled',
    'trusted_proxies': 'nope',
    'max_message_size': '-1',
    'send_queue_size': 'x',
    'send_overflow': 'drop',
    'broadcast_url': 'redis',
    'history_size': 'many',
    'history_ttl': 'inf',
    'history': 'room:*',
    'publish_timeout': '0',
    'send_timeout': '-2',
    'shutdown_timeout': 'nan',
    'sse_heartbeat': 'soon',
    'metrics': 'perhaps',
    'metrics_path': '/m/{x}',
    'metrics_allow': 'everyone',
    'metrics_default_registry': '2',
}


def test_every_setting_has_a_bad_value_here():
    assert set(BAD_VALUES) == set(settings.DEFAULTS)


@pytest.mark.parametrize('name', sorted(BAD_VALUES))
def test_a_value_not_understood_is_an_error_naming_it(name):
    value = BAD_VALUES[name]
    config = Configurator(settings={settings.PREFIX + name: value})
    config.include('pyramid_asgi_ws')
    with pytest.raises(ConfigurationError) as raised:
        config.make_asgi_app()
    message = str(raised.value)
    assert settings.PREFIX + name in message and repr(value) in message


def read_the_docs_extras() -> set[str]:
    """The extras ``.readthedocs.yaml`` installs the package with."""
    text = (ROOT / '.readthedocs.yaml').read_text()
    block = text.split('extra_requirements:', 1)[1]
    return set(re.findall(r'^\s+- ([\w-]+)\s*$', block, re.M))


def installed_with(extras: set[str]) -> set[str]:
    """The distributions ``pip install .[extras]`` brings, transitively."""
    wanted, seen = [('pyramid_asgi_ws', frozenset(extras))], set()
    while wanted:
        name, chosen = wanted.pop()
        if canonicalize_name(name) in seen:
            continue
        seen.add(canonicalize_name(name))
        for line in metadata.requires(name) or ():
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate({'extra': extra}) for extra in chosen or {''}
            ):
                wanted.append(
                    (requirement.name, frozenset(requirement.extras))
                )
    return seen


def top_level_imports(path: Path) -> set[str]:
    """The packages a module imports unconditionally, at import time."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split('.')[0])
    return names - set(sys.stdlib_module_names) - {'pyramid_asgi_ws'}


def test_read_the_docs_installs_what_the_api_page_imports():
    # autodoc imports each module of api.rst; one that fails to import
    # is a warning, and Read the Docs fails on warnings
    api = (DOCS / 'api.rst').read_text()
    documented = set(
        re.findall(r'^\.\. automodule:: ([\w.]+)$', api, re.M)
    ) | set(
        re.findall(r'^\.\. auto\w+:: (pyramid_asgi_ws[\w.]*)\.\w+$', api, re.M)
    )
    installed = installed_with(read_the_docs_extras())
    owners = metadata.packages_distributions()
    missing = {}
    for dotted in sorted(documented):
        path = PACKAGE.parent / (dotted.replace('.', '/') + '.py')
        if not path.exists():
            path = path.with_suffix('') / '__init__.py'
        if not path.exists():
            continue  # an object's dotted name, not a module's
        for package in top_level_imports(path):
            dists = {canonicalize_name(d) for d in owners.get(package, [])}
            if not dists & installed:
                missing[dotted] = package
    assert missing == {}


def test_the_deployment_page_lists_every_metric():
    config = Configurator(settings={'asgi_ws.metrics': 'true'})
    config.include('pyramid_asgi_ws')
    app = config.make_asgi_app()
    registry = get_metrics(app.registry).collector_registry
    names = set()
    for family in registry.collect():
        name = family.name.removeprefix('pyramid_asgi_ws_')
        names.add(name + '_total' if family.type == 'counter' else name)
    table = section('deployment.rst', 'The metrics')
    listed = set(re.findall(r'^``(\w+)``  ', table, re.M))  # rows
    assert names and names == listed
