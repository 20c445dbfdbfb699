"""A first pyramid_asgi_ws application: a page and an echo socket.

Serve it with ``uvicorn app:app`` and open http://127.0.0.1:8000/.
"""

from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_asgi_ws import websocket_consumer

PAGE = """<!DOCTYPE html>
<title>Echo</title>
<input id="text" autofocus> <button onclick="send()">Send</button>
<ul id="log"></ul>
<script>
  var ws = new WebSocket("%(socket_url)s");
  ws.onmessage = function (event) {
    var li = document.createElement("li");
    li.textContent = event.data;
    document.getElementById("log").appendChild(li);
  };
  function send() {
    var input = document.getElementById("text");
    ws.send(input.value);
    input.value = "";
  }
</script>
"""


def home(request):
    # Ask Pyramid for the socket's URL: no host or scheme is hard-coded.
    return Response(PAGE % {'socket_url': request.consumer_url('echo')})


@websocket_consumer('/echo', name='echo')
async def echo(ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(f'echo: {text}')


def make_app(settings=None):
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_route('home', '/')
        config.add_view(home, route_name='home')
        config.scan(__name__)
    return config.make_asgi_app()


app = make_app()
