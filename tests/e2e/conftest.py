"""Fixtures for the browser tests: headless Chromium windows, each its own profile, quit after the test."""

import pytest

from tests.e2e.browser import new_chrome


@pytest.fixture
def open_browser():
    """Opens independent browsers (separate sessions and cookies): open_browser(width, height)."""
    drivers = []

    def open_one(width: int = 1280, height: int = 900):
        driver = new_chrome(width, height)
        drivers.append(driver)
        return driver

    yield open_one
    for driver in drivers:
        driver.quit()


@pytest.fixture
def browser(open_browser):
    """One browser, phone width."""
    return open_browser(420, 900)
