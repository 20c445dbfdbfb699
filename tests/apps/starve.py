"""A consumer that sends as fast as it can to a client that keeps up.

While it floods, the same worker must still answer HTTP requests and
echoes, and a shutdown must reach it promptly.
"""

import time

from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_asgi_ws import WebSocketDisconnect


async def flood(ws):
    """Send messages of ``size`` bytes until the connection ends; say
    when it did."""
    chunk = 'x' * int(ws.matchdict['size'])
    await ws.accept()
    print('FLOODING', flush=True)
    sent = 0
    try:
        while True:
            await ws.send_text(chunk)
            sent += 1
    except WebSocketDisconnect as exc:
        print(
            f'FLOOD ENDED code={exc.code} at={time.time():.3f} sent={sent}',
            flush=True,
        )
        raise


async def echo(ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


def ping(request):
    return Response('pong')


def configure() -> Configurator:
    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/flood/{size}', flood)
    config.add_asgi_consumer('/echo', echo)
    config.add_route('ping', '/ping')
    config.add_view(ping, route_name='ping')
    return config


def main(global_config, **settings):
    """The app factory an ini file names, for pserve and the runners."""
    return configure().make_wsgi_app()


app = configure().make_asgi_app()
