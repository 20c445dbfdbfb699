"""The handshake checks under their 0.1 name (now in ``handshake``).

Kept so that code importing the documented ``pyramid_asgi_ws.security``
keeps working; new code imports from :mod:`pyramid_asgi_ws.handshake`
(and :func:`~pyramid_asgi_ws.settings.normalize_origin` from
:mod:`pyramid_asgi_ws.settings`).
"""

from pyramid_asgi_ws.handshake import (
    Refusal,
    check_origin,
    check_permission,
    check_subprotocol,
    is_trusted,
    negotiate_subprotocol,
    own_origin,
    refusal_from_exception,
)
from pyramid_asgi_ws.settings import DEFAULT_PORTS, normalize_origin

__all__ = [
    'DEFAULT_PORTS',
    'Refusal',
    'check_origin',
    'check_permission',
    'check_subprotocol',
    'is_trusted',
    'negotiate_subprotocol',
    'normalize_origin',
    'own_origin',
    'refusal_from_exception',
]
