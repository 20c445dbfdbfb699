"""An event stream as a group member, and the ids of its group events.

A group message goes out as an event whose ``id`` says where the client
is in the group's history, so that the ``Last-Event-ID`` a browser sends
back on reconnecting resumes it. For a stream in one group with history
that id is the message's position. A stream in several groups with
history needs the position of each of them, since a browser keeps only
the last id it saw: its events carry a *composite* id, a JSON object of
the latest position of each group, and :func:`group_position` picks a
group's part of it when the stream joins again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pyramid_asgi_ws.broadcast.codec import Payload
from pyramid_asgi_ws.broadcast.member import Membership
from pyramid_asgi_ws.broadcast.outbox import Outbox
from pyramid_asgi_ws.messages import Message
from pyramid_asgi_ws.sse_format import format_event

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.broadcast import Broadcaster


#: What ``since=`` defaults to: the stream's ``last_event_id``.
LAST_EVENT_ID: Any = object()


def stream_body(body: bytes) -> Message:
    """The ASGI message carrying ``body`` as a part of the stream."""
    return {'type': 'http.response.body', 'body': body, 'more_body': True}


def composite_id(positions: dict[str, str]) -> str:
    """The id of an event of a stream in several groups with history:
    ``{"group":"position",...}``, compact and ASCII (one field line)."""
    return json.dumps(positions, separators=(',', ':'))


def split_id(event_id: str | None) -> dict[str, str] | None:
    """The positions a composite id holds, or ``None`` for any other id
    (a position: positions never start with ``{``)."""
    if not event_id or event_id[0] != '{':
        return None
    try:
        parts = json.loads(event_id)
    except (ValueError, RecursionError):  # a client's id: anything
        return None
    if not isinstance(parts, dict) or not all(
        isinstance(value, str) for value in parts.values()
    ):
        return None
    return parts


def group_position(event_id: str | None, group: str) -> str | None:
    """The position of ``group`` in ``event_id`` (a ``Last-Event-ID``):
    its part of a composite id (``None`` if it has none: the client saw
    nothing of that group), or ``event_id`` itself."""
    parts = split_id(event_id)
    return event_id if parts is None else parts.get(group)


#: The last group message made an event, as ``(payload, type, positions,
#: message)``: a broadcast hands one payload to each member in turn, so
#: the streams after the first share the first one's bytes instead of
#: formatting them again (those with composite ids when their positions
#: are the same).
_last_event: tuple[Any, str | None, Any, Message] = (None, None, None, {})


def _event_of(
    payload: Payload, event: str | None, positions: dict[str, str] | None
) -> Message:
    """The ASGI message carrying ``payload`` as an event of type ``event``
    whose id is its position, or the composite id of ``positions``."""
    global _last_event
    key = None if positions is None else tuple(positions.items())
    last, last_type, last_key, message = _last_event
    if last is payload and last_type == event and last_key == key:
        return message
    id = payload.position if positions is None else composite_id(positions)
    carried = payload.event
    data = carried.get('text')
    if data is None:  # bytes: a stream carries text only
        data = carried['bytes'].decode('utf-8', 'replace')
    message = stream_body(format_event(data, event, id))
    _last_event = (payload, event, key, message)
    return message


class StreamMembership(Membership):
    """A stream as a group member: group messages go out as events.

    Each event's type is the one given to :meth:`EventStream.join
    <pyramid_asgi_ws.EventStream.join>` for the group, and its ``id`` the
    message's position in the group (none for a group without history),
    or, once the stream is in several groups with history (or was
    resumed from a composite id), the composite id of every position it
    knows.
    """

    def __init__(self, scope: dict[str, Any], outbox: Outbox) -> None:
        super().__init__(scope, outbox)
        #: The event type of each group's messages (``None``: message).
        self.events: dict[str, str | None] = {}
        #: The groups with history it joined.
        self.kept: set[str] = set()
        #: The latest position of each group the client knows of.
        self.positions: dict[str, str] = {}
        #: Whether its events carry composite ids.
        self.composite = False
        #: The client's ``Last-Event-ID`` (see :meth:`resume_from`).
        self.last_event_id: str | None = None
        self._resumed = False
        self._joining: set[str] = set()

    def resume_from(self, event_id: str | None) -> None:
        """Take, once, the client's ``Last-Event-ID`` (``event_id``): the
        default ``since``, and the positions of a composite id, carried
        on, those of groups not joined yet included."""
        if self._resumed:
            return
        self._resumed = True
        self.last_event_id = event_id
        parts = split_id(event_id)
        if parts is not None:
            self.positions.update(parts)
            self.composite = True

    async def join(
        self,
        broadcaster: Broadcaster,
        group: str,
        info: Any,
        since: Any,
        event: str | None,
    ) -> bool:
        """Join ``group`` from ``since`` (a position, a composite id
        holding it, or :data:`LAST_EVENT_ID`, the client's) through
        ``broadcaster``; its events are of type ``event``. See
        :meth:`EventStream.join <pyramid_asgi_ws.EventStream.join>`."""
        kept = broadcaster.history.keep(group) is not None
        if since is LAST_EVENT_ID:
            since = self.last_event_id
            # a plain id is a position of the first group with history
            # joined (ids are composite beyond it): the others, and the
            # groups without history, join live
            if not kept or (split_id(since) is None and self.kept - {group}):
                since = None
        since = group_position(since, group)
        self.events[group] = event
        for gone in self.kept - self.groups - self._joining:
            self.kept.discard(gone)  # left: out of the ids
            self.positions.pop(gone, None)
        if kept:
            self.kept.add(group)
            self.composite = self.composite or len(self.kept) > 1
            self.positions.pop(group, None)
            if since is not None:  # before the replay moves it on
                self.positions[group] = since
        self._joining.add(group)
        try:
            resumed = await broadcaster.join(self, group, info, since=since)
        finally:
            self._joining.discard(group)
        if not resumed and since is not None:
            # the history did not reach back: unless live messages came
            if self.positions.get(group) == since:
                del self.positions[group]
        return resumed

    def deliver(self, group: str, payload: Payload) -> bool:
        """Queue the message as an event, or hand it to the hook."""
        if self.on_group_message is not None:
            return super().deliver(group, payload)
        positions = None
        if payload.position is not None and group in self.kept:
            self.positions[group] = payload.position
            if self.composite:
                positions = self.positions
        return self.outbox.push(
            _event_of(payload, self.events.get(group), positions)
        )
