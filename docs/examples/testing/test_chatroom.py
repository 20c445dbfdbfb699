"""Tests of chatroom.py through the in-process test client."""

import contextlib

import pytest

from pyramid_asgi_ws import WebSocketDisconnect
from pyramid_asgi_ws.testing import HandshakeRefused


@contextlib.contextmanager
def join(client, room):
    """Open a socket to ``room`` and wait until the consumer has joined."""
    with client.websocket_connect(f'/rooms/{room}') as ws:
        assert ws.receive_json() == {'joined': room, 'motd': 'be nice'}
        yield ws


def test_a_message_reaches_everyone_in_the_room(client):
    with join(client, 'lobby') as alice, join(client, 'lobby') as bob:
        alice.send_json({'text': 'hi'})
        assert bob.receive_json() == {'text': 'hi'}
        assert alice.receive_json() == {'text': 'hi'}


def test_other_rooms_hear_nothing(client):
    with join(client, 'lobby') as alice, join(client, 'attic') as carol:
        alice.send_json({'text': 'hi'})
        assert alice.receive_json() == {'text': 'hi'}
        with pytest.raises(TimeoutError):
            carol.receive_json(timeout=0.2)


def test_a_view_can_broadcast(client):
    with join(client, 'lobby') as alice:
        res = client.http.post('/rooms/lobby/announce', {'text': 'closing'})
        assert res.json == {'sent': 'lobby'}
        assert alice.receive_json() == {'text': 'closing'}


def test_unknown_path_is_refused(client):
    with pytest.raises(HandshakeRefused) as info:
        with client.websocket_connect('/nowhere'):
            pass
    assert info.value.status == 404


def test_pages_of_other_sites_are_refused(client):
    headers = {'Origin': 'https://evil.example'}
    with pytest.raises(HandshakeRefused) as info:
        with client.websocket_connect('/rooms/lobby', headers=headers):
            pass
    assert info.value.status == 403


def test_oversized_messages_close_the_socket(client):
    with join(client, 'lobby') as alice:
        alice.send_json({'text': 'x' * 2000})
        with pytest.raises(WebSocketDisconnect) as info:
            alice.receive_json()
    assert info.value.code == 1009
