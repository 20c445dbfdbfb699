"""A room whose clients come back without losing a message."""

from pyramid.config import Configurator

from pyramid_asgi_ws import websocket_consumer


# -- consumer -------------------------------------------------------------
@websocket_consumer('/rooms/{room}')
async def room(ws):
    await ws.accept()

    def forward(group, message, position):
        # queued behind the group messages before it: the order holds
        ws.push({'position': position, 'message': message})

    ws.on_group_message = forward
    since = ws.request.params.get('since')  # the client's last position
    if not await ws.join('room:' + ws.matchdict['room'], since=since):
        ws.push({'reload': True})  # some messages are gone for this client
    async for text in ws.iter_text():
        await ws.broadcast('room:' + ws.matchdict['room'], text)


# -- app ------------------------------------------------------------------
def main():
    settings = {
        'asgi_ws.history_size': '1000',
        'asgi_ws.history': 'room:* 500 3600',
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.scan(__name__)
        return config.make_asgi_app()
