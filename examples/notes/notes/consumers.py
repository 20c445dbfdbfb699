"""The notes socket: live notes for the page, and notes written on it."""

from pyramid_asgi_ws import SyncWebSocketConsumer, websocket_consumer

from .saving import Failure, clean_text, save_note


@websocket_consumer(
    '/ws/notes', name='notes', permission='post', max_message_size='4KiB'
)
class NotesSocket(SyncWebSocketConsumer):
    """Each method is a plain ``def`` run in the thread pool, inside a
    transaction of ``request.tm`` as a view is: ``request.dbsession``
    works as it does there, a method that returns commits and one that
    raises aborts (and the socket closes with 1011).

    The handshake's permission check (``post``, from the root's ACL)
    loads the user from the database, in a transaction of its own, before
    any of this runs.
    """

    encoding = 'json'

    def on_connect(self, ws):
        ws.accept()
        ws.join('notes')
        ws.send_json({'type': 'joined', 'user': ws.request.identity.name})

    def on_receive(self, ws, data):
        """Save ``{"text": ...}``; ``"fail": true`` fails after saving, to
        show that the note is then neither kept nor announced."""
        if not isinstance(data, dict):
            ws.send_json({'type': 'error', 'error': 'send an object'})
            return
        text = clean_text(data.get('text'))
        if text is None:
            ws.send_json({'type': 'error', 'error': 'a note needs text'})
            return
        # The writer hears of its note as everyone does, from the group:
        # once it is committed.
        save_note(ws.request, text, 'socket')
        if data.get('fail'):
            raise Failure(f'failing after saving {text!r}, as asked')
