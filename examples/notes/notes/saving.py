"""Saving a note, wherever it comes from: the form view or the socket."""

from .models import MAX_TEXT, Note


class Failure(Exception):
    """Raised on purpose after a note is saved and announced, to show that
    neither survives a transaction that aborts."""


def clean_text(value):
    """Return ``value`` as note text, or ``None`` if there is none."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text[:MAX_TEXT] if text else None


def save_note(request, text, via):
    """Add a note by the logged-in user and announce it to ``notes``.

    The announcement follows the transaction: the sockets hear of the
    note once it is committed, and never if the transaction aborts.
    """
    note = Note(text=text, via=via, author=request.identity)
    request.dbsession.add(note)
    request.dbsession.flush()  # gives the note its id
    request.broadcast('notes', note.as_message())
    return note
