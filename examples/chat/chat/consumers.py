"""The chat socket: one connection per open room page."""

import logging
import re

from pyramid_asgi_ws import websocket_consumer

from .messages import chat_message, clean_text, presence_message
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


async def announce(ws, room):
    """Tell ``room`` who is online now."""
    await ws.broadcast(room, presence_message(room, await online(ws, room)))


@websocket_consumer('/ws/{room}', name='chat', max_message_size='4KiB')
async def chat(ws):
    """Join the room in the URL, relay what the user says, keep presence.

    The user's name comes from the session cookie the handshake carries,
    so only someone who picked a name on the home page gets in.
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
    # what members() reports for this connection
    await ws.join(room, info={'name': name})
    await ws.send_json({'type': 'welcome', 'room': room, 'name': name})
    await announce(ws, room)
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
