"""URL dispatch for the chat pages (the socket is a consumer, not a route)."""

#: Room names: what a URL path segment can hold without escaping.
ROOM = r'[A-Za-z0-9_-]{1,32}'
ROOM_PATH = '/rooms/{room:' + ROOM + '}'


def includeme(config):
    config.add_static_view('static', 'static', cache_max_age=3600)
    config.add_route('home', '/')
    config.add_route('name', '/name')
    config.add_route('join', '/rooms')
    config.add_route('room', ROOM_PATH)
    config.add_route('post', ROOM_PATH + '/messages')
