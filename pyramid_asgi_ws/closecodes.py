"""WebSocket close codes: the one table of what the add-on sends and reports.

Every path that closes a connection takes its code from here, and
:func:`check_close` is the one rule for what an application may send.
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """The RFC 6455 close codes the add-on sends or reports, and why."""

    #: The consumer returned, or closed without saying why.
    NORMAL = 1000
    #: The server is shutting down (graceful shutdown's close).
    GOING_AWAY = 1001
    #: A text message where binary was expected, or the other way round.
    UNSUPPORTED_DATA = 1003
    #: Reported, never sent: the client's close frame carried no code.
    NO_STATUS = 1005
    #: Reported, never sent: the connection was lost without a close frame.
    ABNORMAL = 1006
    #: A message that is not valid JSON where JSON was expected.
    INVALID_DATA = 1007
    #: A handshake refused on a server without denial responses (daphne),
    #: which answers it with 403.
    POLICY_VIOLATION = 1008
    #: A message over the consumer's ``max_message_size``.
    TOO_BIG = 1009
    #: The consumer raised after accepting.
    INTERNAL_ERROR = 1011
    #: Group messages were lost to the connection: its process lost its
    #: Redis subscription and the group's history no longer reached back
    #: (the client reconnects and learns it from ``join(since=)``).
    SERVICE_RESTART = 1012
    #: The connection's send queue overflowed (``send_overflow = close``).
    TRY_AGAIN_LATER = 1013


#: A consumer that raises an HTTP exception after accepting closes with
#: this plus the exception's status (``HTTPForbidden`` closes with 4403).
HTTP_EXCEPTION_BASE = 4000

#: Codes RFC 6455 reserves: no endpoint may send them.
RESERVED = frozenset({1004, 1005, 1006, 1015})

#: What a close reason may hold, in UTF-8 bytes (a control frame carries
#: at most 125 bytes, two of which are the code).
MAX_REASON_BYTES = 123


def http_close_code(status: int | None) -> int:
    """Return the close code for an HTTP exception raised after accept."""
    return HTTP_EXCEPTION_BASE + (status or 500)


def is_sendable(code: object) -> bool:
    """Whether an application may send ``code`` in a close frame."""
    return isinstance(code, int) and (
        (1000 <= code <= 1014 and code not in RESERVED) or 3000 <= code <= 4999
    )


def check_close(code: int, reason: str = '') -> None:
    """Raise :class:`ValueError` for a close the protocol forbids.

    ``code`` must be one an application may send (1000-1014 less the
    reserved 1004, 1005 and 1006, or 3000-4999) and ``reason`` at most
    :data:`MAX_REASON_BYTES` UTF-8 bytes.
    """
    if isinstance(code, bool) or not is_sendable(code):
        raise ValueError(
            f'close code {code!r} may not be sent by an application: use '
            '1000-1003, 1007-1014 or 3000-4999'
        )
    size = len(reason.encode('utf-8'))
    if size > MAX_REASON_BYTES:
        raise ValueError(
            f'close reason is {size} UTF-8 bytes; at most '
            f'{MAX_REASON_BYTES} fit in a close frame'
        )


def private_fallback(code: int) -> int:
    """Return the code to send where a server refuses ``code``.

    daphne accepts only 1000 and 3000-4999 from an application: a code
    ``1xxx`` is sent there as ``4xxx`` (1011 as 4011, 1001 as 4001), so a
    client is never told that all went well when it did not.
    """
    if 1000 < code < 2000:
        return HTTP_EXCEPTION_BASE + code - 1000
    return code
