"""Who is logged in: a user id in the session, the user in the database.

The policy is that of Pyramid's SQLAlchemy wiki tutorial without its
``RequestLocalCache`` (and with the user id in the session rather than an
auth ticket): a cached user would be detached once the handshake's
transaction commits, and a WebSocket's request lives on. It serves the
views and the WebSocket handshakes alike: it queries ``request.dbsession``
inside the request's transaction, which ``pyramid_tm``'s tween begins for
a view and the add-on for a handshake's permission check and for each
method of a :class:`~pyramid_asgi_ws.SyncWebSocketConsumer`.
"""

from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone

from .models import User


class SessionSecurityPolicy:
    """Identity from ``request.session['user_id']``, permissions from the
    context's ACL."""

    def __init__(self):
        self.acl = ACLHelper()

    def identity(self, request):
        """The logged-in :class:`~notes.models.User`, or ``None``.

        Loaded afresh in each transaction (the session's identity map
        makes a second call within one free), not cached on the request:
        a WebSocket's request outlives the transaction of its handshake,
        whose commit detaches what it loaded.
        """
        user_id = request.session.get('user_id')
        if user_id is None:
            return None
        return request.dbsession.get(User, user_id)

    def authenticated_userid(self, request):
        user = self.identity(request)
        return None if user is None else user.id

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
