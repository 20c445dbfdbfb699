"""Who may open a socket: origin, login, permission, subprotocol, size."""

from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory
from pyramid.view import view_config

from pyramid_asgi_ws import websocket_consumer


class SessionSecurityPolicy:
    """The user name is whatever the login view put in the session."""

    def identity(self, request):
        return request.session.get('user')

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        principals = [Everyone]
        if self.identity(request) is not None:
            principals.append(Authenticated)
        return ACLHelper().permits(context, principals, permission)


class Root:
    __acl__ = [(Allow, Authenticated, 'chat')]

    def __init__(self, request):
        self.request = request


@view_config(route_name='login', request_method='POST', renderer='json')
def login(request):
    request.session['user'] = request.POST['user']
    return {'user': request.POST['user']}


@websocket_consumer('/private', permission='chat')
async def private(ws):
    # The handshake carried the session cookie: ws.request knows the user.
    await ws.accept()
    await ws.send_text(f'hello {ws.request.authenticated_userid}')


@websocket_consumer(
    '/feed',
    subprotocols=['feed.v2', 'feed.v1'],
    max_message_size='1KiB',
    allowed_origins=['https://partner.example'],
)
async def feed(ws):
    await ws.accept()  # answers with the subprotocol negotiated
    async for text in ws.iter_text():
        await ws.send_text(f'{ws.scope["subprotocols"]}: {len(text)}')


def make_app():
    settings = {
        # Browsers on these pages may connect besides the app's own origin.
        'asgi_ws.allowed_origins': 'https://www.example.com',
    }
    with Configurator(settings=settings, root_factory=Root) as config:
        config.include('pyramid_asgi_ws')
        config.set_session_factory(SignedCookieSessionFactory('seekrit'))
        config.set_security_policy(SessionSecurityPolicy())
        config.add_route('login', '/login')
        config.scan(__name__)
    return config.make_asgi_app()
