"""``pconsumers``: list an application's consumers, like ``proutes``."""

from __future__ import annotations

import argparse
import fnmatch
import sys
import textwrap
from typing import IO, Any

from pyramid.interfaces import ISecurityPolicy
from pyramid.paster import bootstrap
from pyramid.scripts.common import get_config_loader, parse_vars

from pyramid_asgi_ws.handshake import effective_permission
from pyramid_asgi_ws.interfaces import IASGISettings, IConsumerRouter

PAD = 3
COLUMNS = ('Protocol', 'Pattern', 'Name', 'Callable', 'Permission', 'Origins')

parser = argparse.ArgumentParser(
    prog='pconsumers',
    description=textwrap.dedent(
        """\
        Print every WebSocket, server-sent events and ASGI consumer of a
        Pyramid application: its protocol, pattern, name, callable,
        permission and the origins its handshake accepts. Example:
        'pconsumers development.ini'.
        """
    ),
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
parser.add_argument(
    '-g',
    '--glob',
    default='',
    help='Display consumers whose name or pattern matches this glob',
)
parser.add_argument(
    'config_uri',
    nargs='?',
    default=None,
    help='The URI of the configuration file, as inifile#name.',
)
parser.add_argument(
    'config_vars',
    nargs='*',
    default=(),
    help='Variables the configuration file needs, as name=value.',
)


def describe(ob: Any) -> str:
    """Return the dotted name of a consumer callable or of its class."""
    qualname = getattr(ob, '__qualname__', None)
    if qualname is None:
        qualname = type(ob).__qualname__
    return f'{ob.__module__}.{qualname}'


def origins(consumer: Any, settings: dict[str, Any]) -> str:
    """Return which page origins a WebSocket or event-stream consumer's
    handshake accepts."""
    allowed = consumer.allowed_origins
    if allowed is None:
        if not settings['check_origin']:
            return '*'
        allowed = settings['allowed_origins']
    if '*' in allowed:
        return '*'
    return ' '.join(('same-origin', *allowed))


def permission(consumer: Any, registry: Any) -> str:
    """Return the permission a consumer's handshake needs, or ``-``.

    The effective one, as for a view: the consumer's own ``permission=``
    or else the app's default permission; ``-`` when none applies (none
    set, or ``NO_PERMISSION_REQUIRED``). Without a security policy
    nothing is checked, and the cell says so.
    """
    needed = effective_permission(consumer, registry)
    if needed is None:
        return '-'
    if registry.queryUtility(ISecurityPolicy) is None:
        return f'{needed} (unchecked: no security policy)'
    return str(needed)


def consumer_rows(registry: Any, glob: str = '') -> list[tuple[str, ...]]:
    """Return one table row per consumer registered in ``registry``."""
    router = registry.getUtility(IConsumerRouter)
    settings = registry.getUtility(IASGISettings)
    rows: list[tuple[str, ...]] = []
    for consumer in router:
        if glob and not (
            fnmatch.fnmatch(consumer.name, glob)
            or fnmatch.fnmatch(consumer.pattern, glob)
        ):
            continue
        protocol = consumer.protocol + (' (raw)' if consumer.raw else '')
        if consumer.protocol == 'http':
            protocol = 'http'
        rows.append(
            (
                protocol,
                consumer.pattern,
                consumer.name,
                describe(consumer.original),
                permission(consumer, registry),
                origins(consumer, settings)
                if consumer.protocol in ('websocket', 'sse')
                else '-',
            )
        )
    return rows


def format_table(rows: list[tuple[str, ...]]) -> list[str]:
    """Return ``rows`` under a header, in aligned columns."""
    table = [COLUMNS, tuple('-' * len(title) for title in COLUMNS), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    return [
        ''.join(
            cell.ljust(width + PAD)
            for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in table
    ]


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    """Print the consumers of the application ``argv`` names.

    Returns the exit status: 0, or 2 for a missing config file argument or
    an application that does not include ``pyramid_asgi_ws``.
    """
    argv = sys.argv if argv is None else argv
    out = sys.stdout if out is None else out
    args = parser.parse_args(argv[1:])
    if not args.config_uri:
        print('requires a config file argument', file=out)
        return 2
    config_vars = parse_vars(args.config_vars)
    config_vars.setdefault('__script__', 'pconsumers')
    get_config_loader(args.config_uri).setup_logging(config_vars)
    env = bootstrap(args.config_uri, options=config_vars)
    try:
        registry = env['registry']
        if registry.queryUtility(IASGISettings) is None:
            print(
                f'{args.config_uri} does not include pyramid_asgi_ws: add '
                '"pyramid.includes = pyramid_asgi_ws" to its app section',
                file=out,
            )
            return 2
        rows = consumer_rows(registry, args.glob)
        if rows:
            for line in format_table(rows):
                print(line, file=out)
        else:
            print('No consumers.', file=out)
        return 0
    finally:
        env['closer']()


if __name__ == '__main__':  # pragma: no cover - run as a script only
    sys.exit(main())
