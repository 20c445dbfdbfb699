"""URL dispatch for the pages (the socket is a consumer, not a route)."""


def includeme(config):
    config.add_static_view('static', 'static', cache_max_age=3600)
    config.add_route('home', '/')
    config.add_route('login', '/login')
    config.add_route('logout', '/logout')
    config.add_route('add', '/notes')
    config.add_route('add_failing', '/notes/failing')
