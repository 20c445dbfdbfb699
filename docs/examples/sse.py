"""Live notifications over server-sent events, resumed after a reconnect."""

from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_asgi_ws import sse_consumer


# -- consumer -------------------------------------------------------------
@sse_consumer('/notifications/{user}', name='notifications')
async def notifications(stream):
    group = 'notify:' + stream.matchdict['user']
    # since= defaults to stream.last_event_id: what the browser saw last
    if not await stream.join(group, event='notice'):
        # some notices are gone for this page: tell it to reload them
        stream.push('', event='reload')  # behind what join replayed
    await stream.wait_closed()  # group messages flow until the page goes


# -- a view that notifies -------------------------------------------------
def notify(request):
    group = 'notify:' + request.matchdict['user']
    request.broadcast(group, {'text': request.params['text']})
    return Response(status=204)


# -- app ------------------------------------------------------------------
def main():
    settings = {'asgi_ws.history': 'notify:* 100 86400'}
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_route('notify', '/notify/{user}')
        config.add_view(notify, route_name='notify', request_method='POST')
        config.scan(__name__)
        return config.make_asgi_app()
