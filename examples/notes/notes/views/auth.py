"""Logging in and out with a name and password from the ``users`` table."""

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import forget, remember
from pyramid.view import view_config
from sqlalchemy import select

from ..models import User


@view_config(route_name='login', renderer='notes:templates/login.jinja2')
def login(request):
    error = None
    if request.method == 'POST':
        name = request.POST.get('name', '')
        password = request.POST.get('password', '')
        user = request.dbsession.scalars(
            select(User).where(User.name == name)
        ).first()
        if user is not None and user.check_password(password):
            request.session.new_csrf_token()
            headers = remember(request, user.id)
            return HTTPSeeOther(request.route_url('home'), headers=headers)
        error = 'Unknown name or wrong password.'
        request.response.status = 400
    return {'error': error}


@view_config(route_name='logout', request_method='POST')
def logout(request):
    headers = forget(request)
    request.session.new_csrf_token()
    return HTTPSeeOther(request.route_url('login'), headers=headers)
