"""The notifications sidebar: who entered which room, over server-sent events.

The chat socket publishes an arrival to the ``notifications`` group each
time a visitor enters a room; every open room page reads that group as
an event stream. The group keeps history like the rooms, so the events
carry their positions as ids: ``EventSource`` reconnects by itself with
``Last-Event-ID`` (a network drop, a server restart with Redis) and gets
what it missed. A page that was offline, or whose stream the browser
gave up (an answer that was no stream), reopens it with
``?last_event_id=`` the last one it showed. Each resumed stream is
logged, with where its last id came from.
"""

import logging
import time

from pyramid.httpexceptions import HTTPForbidden

from pyramid_asgi_ws import sse_consumer

log = logging.getLogger(__name__)

#: The group every arrival goes to.
NOTIFICATIONS = 'notifications'


def arrival(room, name):
    """The notification that ``name`` entered ``room``."""
    return {
        'type': 'arrival',
        'room': room,
        'name': name,
        'at': int(time.time() * 1000),
    }


def named_visitor(request):
    """The stream's context factory: only visitors who picked a name get
    a stream; the others are refused with 403 before it starts."""
    if request.session.get('name') is None:
        raise HTTPForbidden('pick a name first')


@sse_consumer(
    '/notifications', name='notifications', factory=named_visitor, retry=1
)
async def notifications(stream):
    """Forward the arrivals; resume from what the page saw last."""
    if stream.last_event_id is not None:
        header = stream.headers.get('last-event-id') is not None
        log.debug(
            'notifications resume after %s (from %s)',
            stream.last_event_id,
            'the Last-Event-ID header' if header else 'the query',
        )
    if not await stream.join(NOTIFICATIONS, event='notice'):
        # the history no longer reaches back to the page's last notice
        stream.push('', event='reload')
    await stream.wait_closed()
