"""The fixtures every test module of the project can use."""

from chatroom import make_app
import pytest

from pyramid_asgi_ws.testing import TestClient


@pytest.fixture
def app():
    return make_app({'asgi_ws.max_message_size': '1KiB'})


@pytest.fixture
def client(app):
    # Lifespan startup runs here and shutdown when the test is done.
    with TestClient(app, timeout=2) as client:
        yield client
