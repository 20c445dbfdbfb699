"""The chat socket: one connection per open room page.

Each room is two groups: the room itself, whose messages the add-on keeps
in its history (``asgi_ws.history_size``), and ``presence:<room>`` for
the online list, which keeps none (``asgi_ws.history = presence:* off``):
a page that comes back wants the messages it missed, not old lists.
"""

import logging
import re

from pyramid_asgi_ws import websocket_consumer

from .messages import chat_message, clean_text, presence_message
from .notifications import NOTIFICATIONS, arrival
from .routes import ROOM

log = logging.getLogger(__name__)


async def online(ws, room):
    """Return the names of everyone connected to ``room``.

    The broadcaster's members span every process sharing its backend, so
    with Redis the list holds the users of all workers.
    """
    members = await ws.members(room)
    return [
        info['name'] for info in members.values() if isinstance(info, dict)
    ]


def presence_group(room):
    """The group of ``room``'s online lists."""
    return f'presence:{room}'


async def announce(ws, room):
    """Tell ``room`` who is online now."""
    names = await online(ws, room)
    await ws.broadcast(presence_group(room), presence_message(room, names))


def forwarding(ws):
    """The socket's group message hook: each message as it was published,
    a chat message with its ``position`` in the room's history added, so
    that the page can come back with ``?since=`` the last one it had.

    ``ws.push`` queues it behind the others, so the order holds.
    """

    def forward(group, message, position):
        if position is not None:
            message = dict(message, position=position)
        ws.push(message)

    return forward


@websocket_consumer('/ws/{room}', name='chat', max_message_size='4KiB')
async def chat(ws):
    """Join the room in the URL, relay what the user says, keep presence.

    The user's name comes from the session cookie the handshake carries,
    so only someone who picked a name on the home page gets in. A page
    that reconnects sends ``?since=`` the position of the last message it
    showed: the messages said meanwhile come first, and ``welcome`` says
    whether that was all of them (``caught_up``) or the room's history no
    longer reached back so far.
    """
    room = ws.matchdict['room']
    if not re.fullmatch(ROOM, room):
        await ws.deny(404, 'no such room')
        return
    name = ws.request.session.get('name')
    if name is None:
        await ws.deny(403, 'pick a name first')
        return
    await ws.accept()
    ws.on_group_message = forwarding(ws)
    await ws.join(presence_group(room))
    # what members() reports for this connection; the missed messages
    since = ws.request.params.get('since')
    caught_up = await ws.join(room, info={'name': name}, since=since)
    # queued behind the missed messages
    ws.push(
        {'type': 'welcome', 'room': room, 'name': name, 'caught_up': caught_up}
    )
    await announce(ws, room)
    await ws.broadcast(NOTIFICATIONS, arrival(room, name))  # the sidebars
    try:
        # a malformed frame closes the socket with 1007 and ends the loop
        async for data in ws.iter_json():
            if not isinstance(data, dict):
                continue
            text = clean_text(data.get('text'))
            if text is not None:
                message = chat_message(room, name, text, 'socket')
                await ws.broadcast(room, message)
    finally:
        try:
            await ws.leave(room)
            await announce(ws, room)
        except Exception:  # the broker may be gone while shutting down
            log.debug('could not announce %s leaving %s', name, room)
