"""Server-sent events on the wire: fields, lines and comments.

An event is a block of ``field: value`` lines ended by a blank line
(`the HTML standard
<https://html.spec.whatwg.org/multipage/server-sent-events.html>`_).
The data may hold any line breaks: each of its lines, split at CR, LF
or CRLF alike, goes out as a ``data:`` field of its own, and the browser
joins them again with LF. ``event`` and ``id`` are one line each, and an
``id`` holding NUL is ignored by browsers, so both are refused with
:class:`ValueError` rather than sent broken.
"""

from __future__ import annotations

import re
from typing import Any

from pyramid_asgi_ws.broadcast.codec import to_json

_LINE_BREAK = re.compile(r'\r\n|\r|\n')

#: The comment sent as a heartbeat: browsers ignore it, proxies see bytes.
HEARTBEAT = b':\n\n'


def check_field(value: Any, name: str) -> str:
    """Return ``value`` (a str, or an int for ``id``) as one field line.

    A line break (or, for ``id``, NUL) would cut the event or be ignored
    by the browser: :class:`ValueError` naming the field.
    """
    if name == 'id' and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f'{name} must be a str, not {type(value).__name__}')
    if '\r' in value or '\n' in value:
        raise ValueError(f'{name} must not contain a line break: {value!r}')
    if name == 'id' and '\0' in value:
        raise ValueError(f'id must not contain NUL: {value!r}')
    return value


def data_text(data: Any) -> str:
    """Return ``data`` as the text of an event: a str as it is, anything
    else as compact JSON (:exc:`TypeError` if it is not JSON-able)."""
    if isinstance(data, str):
        return data
    return to_json(data, 'event data must be a str or').decode('utf-8')


def retry_field(seconds: float) -> str:
    """Return the ``retry:`` line asking browsers to reconnect after
    ``seconds``."""
    return f'retry: {round(seconds * 1000)}\n'


def format_event(
    data: Any,
    event: str | None = None,
    id: Any = None,
    retry: float | None = None,
) -> bytes:
    """Return one event as UTF-8 bytes, ready for the stream.

    ``data`` is a str or JSON-serialisable; ``event`` names its type (the
    browser's ``addEventListener(event, ...)``; ``message`` when
    ``None``); ``id`` becomes the stream's last event id, which the
    browser sends back as ``Last-Event-ID`` when it reconnects;
    ``retry`` (seconds) sets the browser's reconnection delay.
    """
    head = ''
    if event is not None:
        head += f'event: {check_field(event, "event")}\n'
    if id is not None:
        head += f'id: {check_field(id, "id")}\n'
    if retry is not None:
        head += retry_field(retry)
    lines = _LINE_BREAK.split(data_text(data))
    body = ''.join(f'data: {line}\n' for line in lines)
    return (head + body + '\n').encode('utf-8')


def format_comment(text: str = '') -> bytes:
    """Return a comment block (ignored by browsers), one ``:`` per line."""
    lines = _LINE_BREAK.split(text)
    return (''.join(f':{line}\n' for line in lines) + '\n').encode('utf-8')
