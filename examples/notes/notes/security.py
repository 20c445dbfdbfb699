"""Who is logged in: a user id in the session, the user in the database.

The policy serves the views and the WebSocket handshakes alike. A view
runs inside ``pyramid_tm``'s transaction; a handshake runs no tweens, so
no transaction is active there yet, and the policy begins one of its own
for its query (a :class:`~pyramid_asgi_ws.SyncWebSocketConsumer`'s
methods each run in one again, as views do).
"""

from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid_tm import is_tm_active

from .models import User


def in_transaction(request, read):
    """Return ``read()``, run in the request's transaction.

    With ``tm.manager_hook = pyramid_tm.explicit_manager`` the session may
    be used only while a transaction is active; where none is (the
    handshake), one is begun for ``read`` and committed after it.
    """
    if is_tm_active(request):
        return read()
    with request.tm:
        return read()


class SessionSecurityPolicy:
    """Identity from ``request.session['user_id']``, permissions from the
    context's ACL."""

    def __init__(self):
        self.acl = ACLHelper()

    def identity(self, request):
        """The logged-in :class:`~notes.models.User`, or ``None``.

        Loaded afresh in each transaction (the session's identity map
        makes a second call within one free): a WebSocket's request
        outlives the transaction of its handshake.
        """
        user_id = request.session.get('user_id')
        if user_id is None:
            return None
        return in_transaction(
            request, lambda: request.dbsession.get(User, user_id)
        )

    def authenticated_userid(self, request):
        user_id = request.session.get('user_id')
        if user_id is None:
            return None
        found = in_transaction(
            request, lambda: request.dbsession.get(User, user_id) is not None
        )
        return user_id if found else None

    def permits(self, request, context, permission):
        principals = [Everyone]
        userid = self.authenticated_userid(request)
        if userid is not None:
            principals += [Authenticated, f'user:{userid}']
        return self.acl.permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        request.session['user_id'] = userid
        return []

    def forget(self, request, **kw):
        request.session.pop('user_id', None)
        return []


class Root:
    """The root of every request: logged-in users read and write notes."""

    __acl__ = [(Allow, Authenticated, ('view', 'post'))]

    def __init__(self, request):
        self.request = request


def includeme(config):
    config.set_security_policy(SessionSecurityPolicy())
    config.set_root_factory(Root)
