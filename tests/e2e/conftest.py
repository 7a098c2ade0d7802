"""Fixtures for the end-to-end tests: headless Chromium windows (each its own profile, quit after the test),
a PostgreSQL database and a Redis server of the test's own."""

import uuid

import psycopg
import pytest

from tests.e2e.browser import new_chrome
from tests.e2e.live import RedisServer
from tests.infra import ensure_postgres

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


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


@pytest.fixture
def postgres_database():
    """A fresh PostgreSQL database (its URL), dropped after the test."""
    ensure_postgres()
    name = f"chatsite_live_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def own_redis():
    """A Redis server of this test's own, on a free port, that the test may stop and start again."""
    with RedisServer() as redis:
        yield redis
