"""The handshake checks under their 0.1 name.

Kept so that code importing the documented ``pyramid_asgi_ws.security``
keeps working; new code imports from :mod:`pyramid_asgi_ws.handshake`,
:mod:`pyramid_asgi_ws.origin`, :mod:`pyramid_asgi_ws.refusal` and
:mod:`pyramid_asgi_ws.settings`.
"""

from pyramid_asgi_ws.handshake import (
    check_permission,
    check_subprotocol,
    negotiate_subprotocol,
)
from pyramid_asgi_ws.origin import check_origin, is_trusted, own_origin
from pyramid_asgi_ws.refusal import Refusal, refusal_from_exception
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
