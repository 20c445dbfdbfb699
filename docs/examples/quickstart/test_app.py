"""Tests for app.py, run with ``pytest``: no server, no network."""

from app import make_app
import pytest

from pyramid_asgi_ws.testing import TestClient


@pytest.fixture
def client():
    with TestClient(make_app()) as client:
        yield client


def test_echo(client):
    with client.websocket_connect('/echo') as ws:
        ws.send_text('hello')
        assert ws.receive_text() == 'echo: hello'


def test_page_points_at_the_socket(client):
    page = client.http.get('/')
    assert 'ws://testserver/echo' in page.text
