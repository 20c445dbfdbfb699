"""EventSource's own reconnection, in Chromium, across a server restart.

The chat example's notifications sidebar (tests/test_chat_sse.py's
page) on a server that runs on a real Redis: the server is stopped (by
its PID; shutdown ends the streams), arrivals are published meanwhile
through another server of the same Redis, and the server starts again
on the same port. The page does not reopen the stream itself: the
browser reconnects by itself after the stream's ``retry:`` delay and
sends ``Last-Event-ID``, and the page shows the arrivals it missed, once
each and in order. The restarted server's log shows the reconnection
carried the header (not ``?last_event_id=``). When the browser gives up
instead (a 503), the page reopens the stream with ``?last_event_id=``.
"""

from __future__ import annotations

from collections.abc import Iterator
import json

from playwright.sync_api import Page, expect
import pytest
from requests import Session

from tests.support import ServerProcess
from tests.test_browser import (  # noqa: F401 - fixtures used by name
    PAGE_ERRORS,
    Chat,
    browser,
    chat,
    open_room,
    shot,
)
from tests.test_chat import cookie_header, next_of, socket, start_chat
from tests.test_chat import visitor as session_of
from tests.test_chat_sse import live, notices
from tests.test_sse import stream

#: The chat's notifications stream asks browsers to reconnect after 1 s.
RETRY_MS = 1000


def sidebar(page: Page):
    return page.locator('#notifications')


@pytest.fixture(scope='module')
def other(chat: Chat) -> Iterator[ServerProcess]:  # noqa: F811
    """Another chat server on the same Redis, up while the page's is
    down."""
    server = start_chat(broadcast_url=chat.broadcast_url)
    try:
        yield server
    finally:
        server.stop()


def enter(server: ServerProcess, session: Session, room: str) -> None:
    """Enter ``room`` with a socket, as a page would, and leave."""
    with socket(server, session, room) as ws:
        next_of(ws, 'welcome')


def arrive(
    server: ServerProcess, name: str, rooms: list[str], after: str
) -> list[str]:
    """Enter each of ``rooms`` as ``name`` on ``server``; once a stream
    resumed ``after`` that id shows those arrivals (so they were
    published), return their notices."""
    session = session_of(server.url, name)
    for room in rooms:
        enter(server, session, room)
    headers = {'Cookie': cookie_header(session), 'Last-Event-ID': after}
    with stream(f'{server.url}/notifications', headers) as (_, reader):
        events = reader.events(len(rooms))
    arrivals = [json.loads(event.data) for event in events]
    assert [(a['name'], a['room']) for a in arrivals] == [
        (name, room) for room in rooms
    ]
    return [f'{name} entered #{room}' for room in rooms]


def test_the_stream_asks_for_a_reconnection_delay(chat):  # noqa: F811
    session = session_of(chat.url, 'hal')
    headers = {'Cookie': cookie_header(session)}
    with stream(f'{chat.url}/notifications', headers) as (response, reader):
        assert response.status_code == 200
        while reader.parser.retry is None:
            assert not reader.ended
            reader._more()  # the field comes first, before any event
        assert reader.parser.retry == RETRY_MS


def test_eventsource_reconnects_by_itself_with_last_event_id(
    browser,  # noqa: F811
    chat,  # noqa: F811
    other,
):
    page = open_room(browser, chat, 'frank')
    live(page)
    gina = session_of(chat.url, 'gina')  # the cookie serves both servers
    enter(chat.server, gina, 'lobby')
    expect(notices(page).last).to_have_text('gina entered #lobby')
    seen = sidebar(page).get_attribute('data-last-event-id')
    assert seen
    before = notices(page).all_text_contents()

    chat.stop()  # shutdown ends the stream: the browser retries it
    expect(sidebar(page)).to_have_attribute('data-state', 'reconnecting')
    missed = arrive(other, 'gina', ['random', 'python'], after=seen)
    assert notices(page).all_text_contents() == before
    shot(page, 'frank-notifications-server-down')

    chat.server = chat.start()  # the same port, a new process
    live(page)
    # then the page's own socket back in the room, published after those
    expect(notices(page)).to_have_text(
        before + missed + ['frank entered #lobby']
    )
    expect(page.locator('#notifications .missed')).to_have_count(0)
    log = chat.server.wait_for_log(
        f'notifications resume after {seen} (from the Last-Event-ID header)'
    )
    assert '(from the query)' not in log
    # one request: the browser's reconnection, without the page's query
    assert log.count('"GET /notifications') == 1
    assert '"GET /notifications HTTP/1.1" 200' in log
    shot(page, 'frank-notifications-resumed')
    assert PAGE_ERRORS[page] == []
    page.context.close()


def test_a_stream_the_browser_gave_up_is_reopened_by_the_page(
    browser,  # noqa: F811
    chat,  # noqa: F811
    other,
):
    """An answer that is no stream (a 503 from a proxy, say) makes the
    browser give up (``EventSource.CLOSED``): the page opens the stream
    again with ``?last_event_id=`` the last notice it showed."""
    page = open_room(browser, chat, 'ivy')
    live(page)
    jim = session_of(chat.url, 'jim')
    enter(chat.server, jim, 'lobby')
    expect(notices(page).last).to_have_text('jim entered #lobby')
    seen = sidebar(page).get_attribute('data-last-event-id')
    assert seen
    before = notices(page).all_text_contents()
    # the browser's next reconnection gets a 503 instead of the server
    page.route(
        '**/notifications*',
        lambda route: route.fulfill(status=503, body='busy'),
        times=1,
    )
    with page.expect_response(
        lambda response: (
            '/notifications' in response.url and response.status == 503
        )
    ):
        chat.stop()
    missed = arrive(other, 'jim', ['random'], after=seen)
    chat.server = chat.start()
    live(page)
    expect(notices(page)).to_have_text(
        before + missed + ['ivy entered #lobby']
    )
    log = chat.server.wait_for_log(
        f'notifications resume after {seen} (from the query)'
    )
    assert 'from the Last-Event-ID header' not in log
    assert PAGE_ERRORS[page] == []
    page.context.close()
