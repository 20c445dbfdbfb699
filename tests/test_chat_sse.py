"""The chat example's notifications sidebar (server-sent events) in Chromium.

The server and the browser are tests/test_browser.py's (pserve on the
example's ini, Redis, Debian's headless Chromium through Playwright).
One page sees the arrivals of another visitor in every room live; while
it is offline it misses some, and once back it reopens its stream with
``?last_event_id=`` and shows them, once each and in order. A visitor
without a name gets no stream (403). Screenshots go to
``test-artifacts/browser/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from playwright.sync_api import Page, expect
import pytest

from tests.test_browser import (  # noqa: F401 - fixtures used by name
    PAGE_ERRORS,
    Chat,
    browser,
    chat,
    open_room,
    shot,
)


def notices(page: Page):
    return page.locator('#notifications .notice')


def live(page: Page) -> None:
    expect(page.locator('#notifications')).to_have_attribute(
        'data-state', 'live'
    )


@pytest.fixture(scope='module')
def visitors(browser, chat) -> Iterator[tuple[Page, Page]]:  # noqa: F811
    dora = open_room(browser, chat, 'dora')
    live(dora)
    eve = open_room(browser, chat, 'eve')
    live(eve)
    yield dora, eve
    for page in (dora, eve):
        assert PAGE_ERRORS[page] == []
        page.context.close()


def enter(page: Page, chat: Chat, room: str) -> None:  # noqa: F811
    page.goto(f'{chat.url}/rooms/{room}')
    expect(page.locator('#status')).to_have_attribute('data-state', 'online')
    live(page)


def test_arrivals_show_live(visitors, chat):  # noqa: F811
    dora, eve = visitors
    expect(notices(dora).last).to_have_text('eve entered #lobby')
    enter(eve, chat, 'python')
    expect(notices(dora).last).to_have_text('eve entered #python')
    shot(dora, 'dora-notifications')


def test_a_page_that_was_offline_resumes_its_stream(visitors, chat):  # noqa: F811
    dora, eve = visitors
    before = notices(dora).all_text_contents()
    dora.context.set_offline(True)
    expect(dora.locator('#notifications')).to_have_attribute(
        'data-state', 'offline'
    )
    for room in ('random', 'lobby'):
        enter(eve, chat, room)
    assert notices(dora).all_text_contents() == before
    shot(dora, 'dora-notifications-offline')
    dora.context.set_offline(False)
    live(dora)
    missed = ['eve entered #random', 'eve entered #lobby']
    # then her own socket's return to the room, published after those
    expect(notices(dora)).to_have_text(
        before + missed + ['dora entered #lobby']
    )
    expect(dora.locator('#notifications .missed')).to_have_count(0)
    shot(dora, 'dora-notifications-caught-up')


def test_a_visitor_without_a_name_gets_no_stream(chat):  # noqa: F811
    with httpx.stream('GET', f'{chat.url}/notifications', timeout=10) as r:
        assert r.status_code == 403
