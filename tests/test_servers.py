"""The core behaviour through real uvicorn, hypercorn and daphne servers."""

from __future__ import annotations

import http.client
import json
import urllib.request

from websockets.exceptions import ConnectionClosed

from tests.support import closed, denied, wait_until
from tests.wsclient import (
    TIMEOUT,
    close_code,
    open_ws,
    raw_handshake,
    refused_response,
    refused_status,
    roundtrip,
)


def get(server, path: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(server.url + path, headers=headers or {})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.status, response.read().decode()


def test_http_view(server):
    assert get(server, '/') == (200, 'Hello')


def test_keepalive_requests_have_no_5xx(server):
    conn = http.client.HTTPConnection(
        '127.0.0.1', server.port, timeout=TIMEOUT
    )
    statuses = []
    for _ in range(300):
        conn.request('GET', '/')
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    assert statuses == [200] * 300


def test_echo_text(server):
    with open_ws(server.ws_url + '/ws/echo') as ws:
        for text in ('hello', 'ünïcødé ✓', 'x' * 100_000):
            ws.send(text)
            assert ws.recv(timeout=TIMEOUT) == text


def test_echo_bytes(server):
    data = b'\x00\x01\xff'
    assert roundtrip(server.ws_url + '/ws/bytes', data) == data


def test_echo_json(server):
    with open_ws(server.ws_url + '/ws/json') as ws:
        ws.send(json.dumps({'a': [1, 2]}))
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {'got': {'a': [1, 2]}}
        ws.send(json.dumps('text').encode())  # a binary JSON message
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {'got': 'text'}


def test_bad_json_closes_with_1007(server):
    with open_ws(server.ws_url + '/ws/json') as ws:
        ws.send('{not json')
        code, _ = close_code(ws)
    assert code == closed(server, 1007)


def test_path_parameters_and_request(server):
    with open_ws(server.ws_url + '/ws/room/lobby?q=search') as ws:
        data = json.loads(ws.recv(timeout=TIMEOUT))
    assert data == {
        'room': 'lobby',
        'n': None,
        'q': 'search',
        'setting': 'from-settings',
        'greeting': 'hi there',
        'user': None,
    }


def test_regex_placeholder(server):
    with open_ws(server.ws_url + '/ws/num/42') as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT))['n'] == '42'
    assert refused_status(server.ws_url + '/ws/num/abc') == denied(server, 404)


def test_unknown_path_is_refused_with_404(server):
    response = refused_response(server.ws_url + '/no/such/socket')
    assert response.status_code == denied(server, 404)
    assert b'Traceback' not in (response.body or b'')
    assert get(server, '/') == (200, 'Hello')
    log = server.wait_for_log('no WebSocket consumer matches this path')
    assert 'Traceback' not in log
    assert 'without completing handshake' not in log


def test_consumer_raising_before_accept_answers_500(server):
    response = refused_response(server.ws_url + '/ws/crash')
    assert response.status_code == denied(server, 500)
    assert b'secret' not in (response.body or b'')
    assert b'Traceback' not in (response.body or b'')
    server.wait_for_log('secret internal detail')  # logged with traceback
    assert get(server, '/') == (200, 'Hello')


def test_consumer_raising_after_accept_closes_1011(server):
    with open_ws(server.ws_url + '/ws/crash-later') as ws:
        ws.send('boom')
        code, reason = close_code(ws)
    # 4011 on daphne, which refuses 1011 from an application
    assert code == closed(server, 1011)
    assert 'secret' not in reason
    server.wait_for_log('Traceback')
    assert roundtrip(server.ws_url + '/ws/echo', 'again') == 'again'


def test_consumer_returning_closes_1000(server):
    with open_ws(server.ws_url + '/ws/early') as ws:
        assert ws.recv(timeout=TIMEOUT) == 'bye'
        assert close_code(ws)[0] == 1000


def test_consumer_returning_without_accept_refuses(server):
    assert refused_status(server.ws_url + '/ws/never') == 403


def test_http_exception_before_accept_refuses_with_its_status(server):
    response = refused_response(server.ws_url + '/ws/notfound')
    assert response.status_code == denied(server, 404)


def test_http_exception_after_accept_closes_4000_plus_status(server):
    with open_ws(server.ws_url + '/ws/notfound-later') as ws:
        assert close_code(ws)[0] == 4404


def test_class_based_consumer(server):
    with open_ws(server.ws_url + '/ws/shout') as ws:
        for n in (1, 2):
            ws.send(json.dumps({'text': 'hey'}))
            reply = json.loads(ws.recv(timeout=TIMEOUT))
            assert reply == {'shout': 'HEY', 'n': n}


def test_raw_websocket_consumer_gets_matchdict(server):
    assert roundtrip(server.ws_url + '/ws/raw/abc', 'x') == 'abc:x'


def test_raw_http_consumer(server):
    status, body = get(server, '/raw/7')
    assert (status, body) == (200, "raw {'x': '7'} from-settings")


def test_route_prefix(server):
    assert roundtrip(server.ws_url + '/api/ws', 'prefixed') == 'prefixed'


def test_consumer_url(server):
    status, body = get(server, '/urls')
    base = f'127.0.0.1:{server.port}'
    assert json.loads(body) == {
        'echo': f'ws://{base}/ws/echo',
        'room': f'ws://{base}/ws/room/lobby',
        'raw_http': f'http://{base}/raw/7?a=1',
    }


def test_consumer_url_follows_host(server):
    status, body = get(server, '/urls', headers={'Host': 'chat.example.com'})
    assert json.loads(body)['room'] == 'ws://chat.example.com/ws/room/lobby'


def gone_codes(server) -> list[int]:
    """The close codes /ws/tracker consumers saw, as /ws/events tells."""
    with open_ws(server.ws_url + '/ws/events') as ws:
        events = json.loads(ws.recv(timeout=TIMEOUT))
    return [event[1] for event in events if event[0] == 'gone']


def test_client_vanishing_is_seen_by_consumer(server):
    before = len(gone_codes(server))
    raw_handshake(server.port, '/ws/tracker').close()
    # the TCP connection dropped without a close frame: 1006 everywhere
    codes = wait_until(
        lambda: gone_codes(server)[before:], 'the consumer to see a close'
    )
    assert codes == [1006]
    assert get(server, '/') == (200, 'Hello')


def test_lifespan_startup_event_ran(server):
    with open_ws(server.ws_url + '/ws/events') as ws:
        events = json.loads(ws.recv(timeout=TIMEOUT))
    assert ['startup', True] in events


def test_foreign_origin_refused_by_default(server):
    url = server.ws_url + '/ws/echo'
    assert refused_status(url, origin='http://evil.example') == 403
    server.wait_for_log("Origin 'http://evil.example'")
    own = f'http://127.0.0.1:{server.port}'
    assert roundtrip(url, 'same origin', origin=own) == 'same origin'
    with open_ws(server.ws_url + '/ws/open', origin='http://evil.example'):
        pass


def test_origin_listed_in_the_setting_is_allowed(server):
    url = server.ws_url + '/ws/echo'
    friend = 'https://friend.example'
    assert roundtrip(url, 'friend', origin=friend) == 'friend'
    # the scheme is part of the origin
    assert refused_status(url, origin='http://friend.example') == 403


def test_subprotocol_negotiation(server):
    url = server.ws_url + '/ws/proto'
    with open_ws(url, subprotocols=['v0', 'v1.chat', 'v2.chat']) as ws:
        assert ws.subprotocol == 'v1.chat'
    assert refused_status(url, subprotocols=['v0']) == denied(server, 400)
    assert refused_status(url) == denied(server, 400)


def test_protected_consumer(server):
    url = server.ws_url + '/ws/protected'
    assert refused_status(url) == denied(server, 401)
    request = urllib.request.Request(server.url + '/login?user=bob')
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        cookie = response.headers['Set-Cookie'].split(';')[0]
    with open_ws(url, additional_headers={'Cookie': cookie}) as ws:
        assert ws.recv(timeout=TIMEOUT) == 'hello bob'
    admin = server.ws_url + '/ws/admin'
    assert refused_status(
        admin, additional_headers={'Cookie': cookie}
    ) == denied(server, 403)


def test_oversized_message_closes_1009(server):
    size = 2 * 1024 * 1024
    with open_ws(server.ws_url + '/ws/echo') as ws:
        try:
            ws.send('x' * size)
        except ConnectionClosed:
            # daphne's own 1 MiB limit drops the TCP connection first,
            # with no close frame (SERVERS.md), maybe while we still send
            assert server.kind == 'daphne'
        code, _ = close_code(ws)
    assert code == (None if server.kind == 'daphne' else 1009)
    assert roundtrip(server.ws_url + '/ws/echo', 'x' * 1000) == 'x' * 1000
