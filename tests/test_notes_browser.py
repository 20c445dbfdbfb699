"""The notes example's page in Debian's headless Chromium (Playwright).

Two users log in on pages of their own; a note written on one page goes
over its socket, is committed by the consumer and shows up on both.
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests import test_browser, test_notes
from tests.test_browser import PAGE_ERRORS, WAIT, shot
from tests.test_notes import rows

# the fixtures this module uses, from the modules that define them
browser = test_browser.browser
database = test_notes.database
server = test_notes.server


def log_in(browser: Browser, base: str, name: str) -> Page:
    """A user in a browser context of its own, on the notes page."""
    context = browser.new_context(viewport={'width': 800, 'height': 600})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    errors = PAGE_ERRORS.setdefault(page, [])
    page.on('pageerror', lambda error: errors.append(str(error)))
    page.goto(base + '/')
    expect(page).to_have_url(base + '/login')
    page.fill('input[name=name]', name)
    page.fill('input[name=password]', name)
    page.click('text=Log in')
    expect(page.locator('#me')).to_have_text(name)
    # the socket is open and has joined the group
    expect(page.locator('#status')).to_have_text(f'on, as {name}')
    return page


def notes(page: Page) -> Any:
    return page.locator('#notes li')


def test_a_note_written_on_one_page_shows_on_both(browser, server, database):
    demo = log_in(browser, server.url, 'demo')
    bob = log_in(browser, server.url, 'bob')
    before = notes(bob).count()
    demo.fill('#text', 'written in the browser')
    demo.press('#text', 'Enter')
    for page in (demo, bob):
        expect(notes(page)).to_have_count(before + 1)
        expect(notes(page).last).to_have_text(
            'written in the browser demo, by socket'
        )
    expect(demo.locator('#text')).to_have_value('')
    assert ('written in the browser', 'socket', 'demo') in rows(database)
    shot(demo, 'notes-demo')
    shot(bob, 'notes-bob')
    for page in (demo, bob):
        assert PAGE_ERRORS[page] == []
        page.context.close()
