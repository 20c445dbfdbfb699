"""The chat example in Debian's headless Chromium, driven by Playwright.

The server is started as the README's demo starts it (``pserve`` on
``examples/chat/development.ini``, port overridden). Two pages in one room
see each other's messages, a page without JavaScript posts the plain form
and the others get it live, and after the server is stopped (by its PID)
and started again on the same port, the pages reconnect by themselves,
and get what was said meanwhile through another server; a page that went
offline gets, when it is back, what was said meanwhile (the room's
history, in the Redis the server runs on).
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from playwright.sync_api import Browser, Page, expect, sync_playwright
import pytest

from tests.support import ROOT, ServerProcess, free_port
from tests.test_chat import redis_server, start_chat

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]
#: Every Playwright wait, in milliseconds.
WAIT = 10_000
ARTIFACTS = ROOT / 'test-artifacts' / 'browser'
ROOM = 'lobby'
#: The uncaught script errors of each page.
PAGE_ERRORS: dict[Page, list[str]] = {}


class Chat:
    """The chat server on a fixed port, which a test may restart, with
    its broker at ``broadcast_url``."""

    def __init__(self, broadcast_url: str) -> None:
        self.port = free_port()
        self.broadcast_url = broadcast_url
        self.server: ServerProcess = self.start()

    def start(self) -> ServerProcess:
        return start_chat(self.port, broadcast_url=self.broadcast_url)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.stop()
        self.server = self.start()


@pytest.fixture(scope='module')
def chat() -> Iterator[Chat]:
    with redis_server() as url:
        running = Chat(url)
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope='module')
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=WAIT,
        )
        try:
            yield browser
        finally:
            browser.close()


def open_room(
    browser: Browser,
    chat: Chat | ServerProcess,
    name: str,
    **context_options: Any,
) -> Page:
    """A visitor in a context of its own: pick ``name``, enter the room."""
    context = browser.new_context(
        viewport={'width': 960, 'height': 640}, **context_options
    )
    context.set_default_timeout(WAIT)
    page = context.new_page()
    errors = PAGE_ERRORS.setdefault(page, [])
    page.on('pageerror', lambda error: errors.append(str(error)))
    page.goto(f'{chat.url}/rooms/{ROOM}')
    # no name yet: the room sent us to the home page, which comes back
    expect(page.locator('h1')).to_have_text('Pick a name')
    page.fill('#name', name)
    shot(page, f'{name}-picks-a-name')
    page.click('text=Save')
    expect(page).to_have_url(f'{chat.url}/rooms/{ROOM}')
    expect(page.locator('#me')).to_have_text(name)
    return page


def online(page: Page) -> None:
    expect(page.locator('#status')).to_have_attribute('data-state', 'online')


def say(page: Page, text: str) -> None:
    page.fill('#text', text)
    page.press('#text', 'Enter')


def texts(page: Page) -> Any:
    return page.locator('#messages .message .text')


def shot(page: Page, name: str) -> None:
    """Save a screenshot of ``page`` as a test artifact."""
    path = ARTIFACTS / f'{name}.png'
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 1000


@pytest.fixture(scope='module')
def pages(browser: Browser, chat: Chat) -> Iterator[tuple[Page, Page]]:
    alice = open_room(browser, chat, 'alice')
    bob = open_room(browser, chat, 'bob')
    for page in (alice, bob):
        online(page)
    yield alice, bob
    for page in (alice, bob):
        assert PAGE_ERRORS[page] == []
        page.context.close()


def test_two_pages_in_one_room_see_each_other(pages):
    alice, bob = pages
    for page in pages:
        online(page)
        expect(page.locator('#online li')).to_have_text(['alice', 'bob'])
    say(alice, 'hello bob')
    expect(texts(bob)).to_have_text(['hello bob'])
    say(bob, 'hi alice')
    expect(texts(alice)).to_have_text(['hello bob', 'hi alice'])
    expect(alice.locator('#messages .message.mine .name')).to_have_text(
        ['alice']
    )
    expect(alice.locator('#text')).to_have_value('')
    shot(alice, 'alice-and-bob')
    shot(bob, 'bob-and-alice')


def test_form_post_arrives_live(browser, chat, pages):
    alice, bob = pages
    # a visitor without JavaScript: the composer is a plain form post
    carol = open_room(browser, chat, 'carol', java_script_enabled=False)
    expect(carol.locator('#status')).to_have_text('no live updates')
    before = texts(alice).count()
    carol.fill('#text', 'posted by a plain form')
    carol.click('text=Send')
    expect(carol.locator('.flash')).to_have_text('Posted with the plain form.')
    for page in pages:
        last = page.locator('#messages .message').last
        expect(last.locator('.text')).to_have_text('posted by a plain form')
        expect(last.locator('.name')).to_have_text('carol')
        expect(last).to_have_attribute('data-via', 'form')
        assert texts(page).count() == before + 1
    shot(carol, 'carol-without-javascript')
    shot(alice, 'alice-sees-the-form-post')
    carol.context.close()


def test_pages_reconnect_after_a_server_restart(chat, pages):
    alice, bob = pages
    for page in pages:
        online(page)
    chat.stop()
    for page in pages:
        expect(page.locator('#status')).not_to_have_attribute(
            'data-state', 'online'
        )
        expect(page.locator('#messages .notice').last).to_contain_text(
            'reconnecting'
        )
    shot(alice, 'alice-while-the-server-is-down')
    chat.restart()
    for page in pages:
        online(page)
        expect(page.locator('#messages .notice').last).to_have_text(
            'Reconnected.'
        )
        expect(page.locator('#online li')).to_have_text(['alice', 'bob'])
    say(bob, 'still here?')
    expect(texts(alice).last).to_have_text('still here?')
    say(alice, 'yes, after the restart')
    expect(texts(bob).last).to_have_text('yes, after the restart')
    shot(alice, 'alice-after-the-restart')
    shot(bob, 'bob-after-the-restart')


def test_pages_catch_up_across_a_server_restart(browser, chat, pages):
    """While their server is down, Carol posts to the room through another
    server of the same Redis; when theirs is back, both pages show what
    she said, once each, from the room's history."""
    alice, bob = pages
    for page in pages:
        online(page)
    before = texts(alice).count()
    chat.stop()
    for page in pages:
        expect(page.locator('#status')).not_to_have_attribute(
            'data-state', 'online'
        )
    other = start_chat(broadcast_url=chat.broadcast_url)
    try:
        carol = open_room(browser, other, 'carol', java_script_enabled=False)
        carol.fill('#text', 'said while you were down')
        carol.click('text=Send')
        expect(carol.locator('.flash')).to_have_text(
            'Posted with the plain form.'
        )
        carol.context.close()
    finally:
        other.stop()
    chat.restart()
    for page in pages:
        online(page)
        expect(texts(page)).to_have_count(before + 1)
        expect(texts(page).last).to_have_text('said while you were down')
        expect(page.locator('#messages .notice').last).to_have_text(
            'Reconnected.'
        )
    assert texts(alice).all_text_contents() == texts(bob).all_text_contents()
    shot(alice, 'alice-caught-up-after-the-restart')


def test_a_page_that_was_offline_catches_up(pages):
    alice, bob = pages
    for page in pages:
        online(page)
    say(alice, 'going through a tunnel')
    expect(texts(bob).last).to_have_text('going through a tunnel')
    alice.context.set_offline(True)
    expect(alice.locator('#status')).not_to_have_attribute(
        'data-state', 'online'
    )
    missed = ['you there?', 'we moved the meeting', 'to 3 pm']
    for text in missed:
        say(bob, text)
    expect(texts(bob).last).to_have_text('to 3 pm')
    expect(texts(alice).last).to_have_text('going through a tunnel')
    shot(alice, 'alice-offline')
    alice.context.set_offline(False)
    online(alice)
    # what was said meanwhile, once each and in order
    expect(texts(alice)).to_have_count(texts(bob).count())
    assert texts(alice).all_text_contents()[-3:] == missed
    assert texts(alice).all_text_contents() == texts(bob).all_text_contents()
    expect(alice.locator('#messages .notice').last).to_have_text(
        'Reconnected.'
    )
    say(bob, 'welcome back')
    expect(texts(alice).last).to_have_text('welcome back')
    shot(alice, 'alice-caught-up')
