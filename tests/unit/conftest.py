"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from mlplatform.config import Settings
from tests.support.api_world import World, make_world


@pytest.fixture()
def world(settings: Settings) -> World:
    """The API and UI in-process over a fresh sqlite platform DB and the fakes (tests/support/api_world.py)."""
    return make_world(settings)
