"""Fixtures for the app's tests, which run on the laptop and inside the image's test stage."""

from pathlib import Path

import pytest

# The folder that holds main.py: the project root here, /app in the image.
APP_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_root() -> Path:
    return APP_ROOT
