"""The notes page and the plain form posts."""

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config
from sqlalchemy import select

from ..models import Note
from ..saving import Failure, clean_text, save_note

#: How many notes the page shows; later ones arrive over the socket.
RECENT = 50


@view_config(route_name='home', renderer='notes:templates/home.jinja2')
def home(request):
    if request.identity is None:
        return HTTPSeeOther(request.route_url('login'))
    query = select(Note).order_by(Note.id.desc()).limit(RECENT)
    notes = reversed(request.dbsession.scalars(query).all())
    return {
        'notes': [note.as_message() for note in notes],
        'socket_url': request.consumer_url('notes'),
    }


@view_config(route_name='add', request_method='POST', permission='post')
def add(request):
    """Save a note posted with the plain HTML form (no JavaScript)."""
    text = clean_text(request.POST.get('text'))
    if text is not None:
        save_note(request, text, 'form')
    return HTTPSeeOther(request.route_url('home'))


@view_config(
    route_name='add_failing', request_method='POST', permission='post'
)
def add_failing(request):
    """Save and announce a note, then fail: ``pyramid_tm`` aborts the
    transaction, so the note is not kept and no socket hears of it."""
    text = clean_text(request.POST.get('text')) or 'never seen'
    save_note(request, text, 'form')
    raise Failure(f'failing after saving {text!r}, as asked')


@view_config(context=Failure, renderer='string')
def failed(exc, request):
    """Say what failed; ``pyramid_tm`` aborts all the same, since the
    response comes from an exception view."""
    request.response.status = 500
    return f'Not saved: {exc}'
