"""The application the server tests run under uvicorn, hypercorn and daphne."""

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.session import SignedCookieSessionFactory

from pyramid_asgi_ws import (
    ApplicationStartup,
    WebSocketConsumer,
    WebSocketDisconnect,
)
from pyramid_asgi_ws.interfaces import IASGIApp
from tests.apps.common import (
    Root,
    SessionSecurityPolicy,
    add_echoes,
    add_page,
    crash_after_accept,
    crash_before_accept,
    echo,
    hello,
    login,
    protected,
    respond,
)

EVENTS: list = []


def urls(request):
    return {
        'echo': request.consumer_url('echo'),
        'room': request.consumer_url('room', room='lobby'),
        'raw_http': request.consumer_url('raw-http', x=7, _query={'a': '1'}),
    }


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
    await respond(send, body, 'text/plain')


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
    add_page(config, 'hello', '/', hello)
    add_page(config, 'login', '/login', login)
    add_page(config, 'urls', '/urls', urls, renderer='json')
    add_echoes(config, echo_json)
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
    config.add_subscriber(on_startup, ApplicationStartup)
    return config.make_asgi_app()


app = make_app()
