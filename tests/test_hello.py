"""my_project.hello: the everyday command."""

import sys

import pytest

from my_project.hello import say_hello


def test_greets_by_name(capsys):
    """The greeting names the person, and nothing else is printed."""
    say_hello("alice")
    assert capsys.readouterr() == ("Hello alice!\n", "")


@pytest.mark.parametrize("name", ["Zoë", "李雷", "$(touch /tmp/x)", "a;b|c `d`"])
def test_any_text_is_a_name(capsys, name):
    """Non-ASCII and shell-like names come back exactly as given."""
    say_hello(name)
    assert capsys.readouterr().out == f"Hello {name}!\n"


def test_does_not_import_polars():
    """Greeting someone must not pay for loading the native engine."""
    assert "polars" not in sys.modules or "my_project.deps" in sys.modules
