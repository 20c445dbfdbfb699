"""The application the server tests run under uvicorn, hypercorn and daphne."""

from pyramid.authorization import ACLHelper, Allow, Authenticated
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory

from pyramid_asgi_ws import WebSocketConsumer, WebSocketDisconnect
from pyramid_asgi_ws.interfaces import IASGIApp

EVENTS: list = []


class SessionSecurityPolicy:
    """Who is logged in comes from the Pyramid session."""

    def identity(self, request):
        return request.session.get('user')

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        principals = ['system.Everyone']
        if self.identity(request) is not None:
            principals += [Authenticated, 'user:' + self.identity(request)]
        return ACLHelper().permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        request.session['user'] = userid
        return []

    def forget(self, request, **kw):
        request.session.pop('user', None)
        return []


class Root:
    __acl__ = [(Allow, Authenticated, 'chat'), (Allow, 'user:admin', 'admin')]

    def __init__(self, request):
        self.request = request


def hello(request):
    return Response('Hello')


def login(request):
    request.session['user'] = request.params['user']
    return Response('logged in')


def urls(request):
    return {
        'echo': request.consumer_url('echo'),
        'room': request.consumer_url('room', room='lobby'),
        'raw_http': request.consumer_url('raw-http', x=7, _query={'a': '1'}),
    }


async def echo(ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


async def echo_bytes(ws):
    await ws.accept()
    async for data in ws.iter_bytes():
        await ws.send_bytes(data)


async def echo_json(ws):
    await ws.accept()
    async for data in ws.iter_json():
        await ws.send_json({'got': data})


async def room(ws):
    await ws.accept()
    await ws.send_json(
        {
            'room': ws.matchdict.get('room'),
            'n': ws.request.matchdict.get('n'),
            'q': ws.request.GET.get('q'),
            'setting': ws.request.registry.settings.get('marker'),
            'greeting': ws.request.greeting,
            'user': ws.request.authenticated_userid,
        }
    )


async def crash_before_accept(ws):
    raise ValueError('secret internal detail')


async def crash_after_accept(ws):
    await ws.accept()
    await ws.receive_text()
    raise ValueError('secret internal detail')


async def returns_early(ws):
    await ws.accept()
    await ws.send_text('bye')


async def never_accepts(ws):
    return None


async def not_found(ws):
    raise HTTPNotFound()


async def not_found_later(ws):
    await ws.accept()
    raise HTTPNotFound()


async def protected(ws):
    await ws.accept()
    await ws.send_text(f'hello {ws.request.authenticated_userid}')


async def tracker(ws):
    await ws.accept()
    try:
        await ws.receive_text()
    except WebSocketDisconnect as exc:
        EVENTS.append(('gone', exc.code))
        raise


async def events(ws):
    await ws.accept()
    await ws.send_json(EVENTS)


class Shout(WebSocketConsumer):
    encoding = 'json'

    async def on_connect(self, ws):
        await ws.accept(subprotocol=None)
        self.count = 0

    async def on_receive(self, ws, data):
        self.count += 1
        await ws.send_json(
            {'shout': str(data['text']).upper(), 'n': self.count}
        )


async def raw_echo(scope, receive, send):
    while True:
        message = await receive()
        if message['type'] == 'websocket.connect':
            await send({'type': 'websocket.accept'})
        elif message['type'] == 'websocket.receive':
            text = f"{scope['matchdict']['tag']}:{message.get('text')}"
            await send({'type': 'websocket.send', 'text': text})
        else:
            break


async def raw_http(scope, receive, send):
    body = f"raw {scope['matchdict']} {scope['registry'].settings['marker']}"
    await send(
        {
            'type': 'http.response.start',
            'status': 200,
            'headers': [(b'content-type', b'text/plain')],
        }
    )
    await send({'type': 'http.response.body', 'body': body.encode()})


async def on_startup(event):
    made = event.registry.getUtility(IASGIApp)
    EVENTS.append(('startup', event.app is made))


def make_app(**settings):
    settings.setdefault('marker', 'from-settings')
    settings.setdefault('asgi_ws.allowed_origins', 'https://friend.example')
    config = Configurator(
        settings=settings,
        root_factory=Root,
        session_factory=SignedCookieSessionFactory('secret'),
        security_policy=SessionSecurityPolicy(),
    )
    config.include('pyramid_asgi_ws')
    config.add_request_method(lambda r: 'hi there', 'greeting', reify=True)
    config.add_route('hello', '/')
    config.add_view(hello, route_name='hello')
    config.add_route('login', '/login')
    config.add_view(login, route_name='login')
    config.add_route('urls', '/urls')
    config.add_view(urls, route_name='urls', renderer='json')
    config.add_asgi_consumer('/ws/echo', echo, name='echo')
    config.add_asgi_consumer('/ws/bytes', echo_bytes)
    config.add_asgi_consumer('/ws/json', echo_json)
    config.add_asgi_consumer('/ws/room/{room}', room, name='room')
    config.add_asgi_consumer(r'/ws/num/{n:\d+}', room, name='num')
    config.add_asgi_consumer('/ws/crash', crash_before_accept)
    config.add_asgi_consumer('/ws/crash-later', crash_after_accept)
    config.add_asgi_consumer('/ws/early', returns_early)
    config.add_asgi_consumer('/ws/never', never_accepts)
    config.add_asgi_consumer('/ws/notfound', not_found)
    config.add_asgi_consumer('/ws/notfound-later', not_found_later)
    config.add_asgi_consumer('/ws/protected', protected, permission='chat')
    config.add_asgi_consumer(
        '/ws/admin', protected, name='admin', permission='admin'
    )
    config.add_asgi_consumer('/ws/tracker', tracker)
    config.add_asgi_consumer('/ws/events', events)
    config.add_asgi_consumer('/ws/shout', Shout)
    config.add_asgi_consumer(
        '/ws/proto', echo, name='proto', subprotocols=['v2.chat', 'v1.chat']
    )
    config.add_asgi_consumer(
        '/ws/open', echo, name='open', allowed_origins=['*']
    )
    config.add_asgi_consumer('/ws/raw/{tag}', raw_echo, raw=True)
    config.add_asgi_consumer(
        '/raw/{x}', raw_http, protocol='http', name='raw-http'
    )
    with config.route_prefix_context('/api'):
        config.add_asgi_consumer('/ws', echo, name='prefixed')
    from pyramid_asgi_ws import ApplicationStartup

    config.add_subscriber(on_startup, ApplicationStartup)
    return config.make_asgi_app()


app = make_app()
