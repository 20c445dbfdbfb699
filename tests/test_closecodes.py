"""The table of close codes and the rules for sending them."""

from __future__ import annotations

import pytest

from pyramid_asgi_ws.closecodes import (
    MAX_REASON_BYTES,
    CloseCode,
    check_close,
    http_close_code,
    is_sendable,
    private_fallback,
)


def test_the_table_holds_rfc_6455_numbers():
    assert [int(code) for code in CloseCode] == [
        1000, 1001, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013,
    ]  # fmt: skip


@pytest.mark.parametrize(
    'code', [1000, 1001, 1003, 1007, 1011, 1013, 1014, 3000, 4000, 4999]
)
def test_codes_an_application_may_send(code):
    assert is_sendable(code)
    check_close(code, 'fine')


@pytest.mark.parametrize(
    'code', [999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, True,
             '1000', None, 1000.0],
)  # fmt: skip
def test_codes_an_application_may_not_send(code):
    with pytest.raises(ValueError, match='may not be sent'):
        check_close(code)


def test_the_reason_fits_a_control_frame():
    check_close(1000, 'x' * MAX_REASON_BYTES)
    check_close(1000, 'é' * (MAX_REASON_BYTES // 2))
    with pytest.raises(ValueError, match='124 UTF-8 bytes'):
        check_close(1000, 'é' * 62)


def test_http_close_code():
    assert http_close_code(403) == 4403
    assert http_close_code(None) == 4500


@pytest.mark.parametrize(
    'code, fallback',
    [(1011, 4011), (1001, 4001), (1013, 4013), (1003, 4003), (1000, 1000),
     (4000, 4000), (3001, 3001)],
)  # fmt: skip
def test_private_fallback(code, fallback):
    assert private_fallback(code) == fallback
