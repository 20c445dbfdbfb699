"""What travels over the sockets: chat messages and presence lists."""

import re
import time

MAX_NAME = 32
MAX_TEXT = 500

_SPACE = re.compile(r'\s+')


def clean_name(value):
    """Return ``value`` as a display name, or ``None`` if it is unusable."""
    if not isinstance(value, str):
        return None
    name = _SPACE.sub(' ', value).strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return None
    return name


def clean_text(value):
    """Return ``value`` as message text (at most ``MAX_TEXT`` characters)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    return text[:MAX_TEXT]


def chat_message(room, name, text, via):
    """A message said in ``room``; ``via`` is ``'socket'`` or ``'form'``."""
    return {
        'type': 'message',
        'room': room,
        'name': name,
        'text': text,
        'via': via,
        'at': int(time.time() * 1000),
    }


def presence_message(room, names):
    """Who is in ``room`` now."""
    return {'type': 'presence', 'room': room, 'online': sorted(set(names))}
