"""The filter that keeps uvicorn quiet about handshakes the app refused."""

from __future__ import annotations

import contextvars
import logging

from pyramid_asgi_ws.denial_log import DENIAL_LOG_FILTER, install
from pyramid_asgi_ws.websocket import DENIED

LINE = 'ASGI callable returned without completing handshake.'


def record(msg):
    return logging.LogRecord(
        'uvicorn.error', logging.ERROR, '', 0, msg, (), None
    )


def in_context(denied, msg):
    def check():
        if denied:
            DENIED.set(True)
        return DENIAL_LOG_FILTER.filter(record(msg))

    return contextvars.Context().run(check)


def test_only_the_line_after_a_refusal_is_dropped():
    assert in_context(True, LINE) is False
    assert in_context(False, LINE) is True
    assert in_context(True, 'Exception in ASGI application') is True


def test_installed_once_on_uvicorns_logger():
    logger = logging.getLogger('uvicorn.error')
    install()
    install()
    assert logger.filters.count(DENIAL_LOG_FILTER) == 1
