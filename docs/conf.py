"""Sphinx configuration for the pyramid_asgi_ws documentation."""

import datetime
from importlib.metadata import version as get_version

project = 'pyramid_asgi_ws'
author = 'Pylons Project'
copyright = f'2026-{datetime.date.today().year}, {author}'
version = release = get_version('pyramid_asgi_ws')

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.viewcode',
]

# The build runs offline: no intersphinx inventories are fetched, so
# references to Pyramid's own API are written as literal text or links.
exclude_patterns = ['_build', 'examples']
master_doc = 'index'
default_role = 'literal'
nitpicky = False

autodoc_member_order = 'bysource'
autodoc_typehints = 'none'

try:
    import pylons_sphinx_themes
except ImportError:  # pragma: no cover - the docs extra is not installed
    html_theme = 'alabaster'
else:
    html_theme_path = pylons_sphinx_themes.get_html_themes_path()
    html_theme = 'pyramid'
    html_theme_options = {
        'github_url': 'https://github.com/Pylons/pyramid_asgi_ws',
    }
    html_context = {'outdated': False}

html_title = f'{project} {release}'
htmlhelp_basename = 'pyramid_asgi_wsdoc'
