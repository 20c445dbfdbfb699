"""The cookbook's WebSocket example, rewritten with pyramid_asgi_ws.

Run it with ``uvicorn echo:app`` and open http://127.0.0.1:8000/.
The page asks Pyramid for the socket's address (``request.consumer_url``)
instead of hard-coding ``ws://127.0.0.1:8000/ws``, so it keeps working
behind a proxy, under a prefix and over HTTPS.
"""

from pyramid.config import Configurator
from pyramid.response import Response

HTML_BODY = """<!DOCTYPE html>
<html>
    <head>
        <title>ASGI WebSocket</title>
    </head>
    <body>
        <h1>ASGI WebSocket Demo</h1>
        <form action="" onsubmit="sendMessage(event)">
            <input type="text" id="messageText" autocomplete="off"/>
            <button>Send</button>
        </form>
        <ul id='messages'>
        </ul>
        <script>
            var ws = new WebSocket("%(socket_url)s");
            ws.onmessage = function(event) {
                var messages = document.getElementById('messages')
                var message = document.createElement('li')
                var content = document.createTextNode(event.data)
                message.appendChild(content)
                messages.appendChild(message)
            };
            function sendMessage(event) {
                var input = document.getElementById("messageText")
                ws.send(input.value)
                input.value = ''
                event.preventDefault()
            }
        </script>
    </body>
</html>
"""


def hello_world(request):
    return Response(HTML_BODY % {'socket_url': request.consumer_url('echo')})


async def hello_websocket(ws):
    """Echo every message back, text as text and bytes as bytes."""
    await ws.accept()
    while True:
        message = await ws.receive()
        if message['type'] == 'websocket.disconnect':
            break
        if message.get('text') is not None:
            await ws.send_text(message['text'])
        else:
            await ws.send_bytes(message.get('bytes') or b'')


with Configurator() as config:
    config.include('pyramid_asgi_ws')
    config.add_route('hello', '/')
    config.add_view(hello_world, route_name='hello')
    config.add_asgi_consumer('/ws', hello_websocket, name='echo')
    app = config.make_asgi_app()
