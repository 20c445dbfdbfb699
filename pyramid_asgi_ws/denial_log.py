"""A filter for uvicorn's error log: no error line for a refused handshake.

uvicorn (0.30 and later) logs "ASGI callable returned without completing
handshake" even when the application answered with a denial response; the
refusal's own log line already says what happened. The filter is
installed once, on the ``uvicorn.error`` logger, when an application is
made; it drops only that line, and only in a task that refused a
handshake.
"""

from __future__ import annotations

import logging

from pyramid_asgi_ws.websocket import DENIED

#: The words of uvicorn's line this filter drops.
UVICORN_LINE = 'without completing handshake'


class DenialLogFilter(logging.Filter):
    """Drop uvicorn's error line after a handshake this app refused."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (DENIED.get() and UVICORN_LINE in str(record.msg))


#: The one instance: adding it twice to a logger adds it once.
DENIAL_LOG_FILTER = DenialLogFilter()


def install() -> None:
    """Add the filter to uvicorn's error logger (once, however often)."""
    logging.getLogger('uvicorn.error').addFilter(DENIAL_LOG_FILTER)
