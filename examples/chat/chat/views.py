"""The HTML pages: pick a name, join a room, and post without a socket."""

import re

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from .messages import chat_message, clean_name, clean_text
from .routes import ROOM

SUGGESTED_ROOMS = ('lobby', 'python', 'random')


def _next_url(request, fallback):
    """Only follow ``next`` inside this application."""
    target = request.params.get('next', '')
    if target.startswith('/') and not target.startswith('//'):
        return request.application_url + target
    return fallback


@view_config(route_name='home', renderer='templates/home.jinja2')
def home(request, error=None):
    return {
        'name': request.session.get('name'),
        'rooms': SUGGESTED_ROOMS,
        'next': request.params.get('next', ''),
        'error': error,
    }


@view_config(
    route_name='name',
    request_method='POST',
    renderer='templates/home.jinja2',
)
def set_name(request):
    name = clean_name(request.POST.get('name'))
    if name is None:
        request.response.status = 400
        return home(request, 'Pick a name of 1 to 32 printable characters.')
    request.session['name'] = name
    return HTTPSeeOther(_next_url(request, request.route_url('home')))


@view_config(route_name='join')
def join(request):
    room = request.params.get('room', '').strip().lower()
    if not re.fullmatch(ROOM, room):
        request.session.flash(
            'Room names use letters, digits, - and _.', 'error'
        )
        return HTTPSeeOther(request.route_url('home'))
    return HTTPSeeOther(request.route_url('room', room=room))


@view_config(route_name='room', renderer='templates/room.jinja2')
def room(request):
    room = request.matchdict['room']
    name = request.session.get('name')
    if name is None:
        return HTTPSeeOther(
            request.route_url('home', _query={'next': request.path})
        )
    return {
        'room': room,
        'name': name,
        'socket_url': request.consumer_url('chat', room=room),
        'post_url': request.route_url('post', room=room),
        'notifications_url': request.consumer_url('notifications'),
    }


@view_config(route_name='post', request_method='POST')
def post(request):
    """Broadcast a message posted with a plain HTML form."""
    room = request.matchdict['room']
    name = request.session.get('name')
    back = request.route_url('room', room=room)
    if name is None:
        return HTTPSeeOther(request.route_url('home', _query={'next': back}))
    text = clean_text(request.POST.get('text'))
    if text is not None:
        request.broadcast(room, chat_message(room, name, text, 'form'))
        request.session.flash('Posted with the plain form.')
    return HTTPSeeOther(back)
