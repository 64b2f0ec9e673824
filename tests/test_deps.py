"""my_project.deps: proof that the native dependencies load and compute."""

import sys
from importlib import metadata

import pytest

from my_project import deps


def test_prints_versions_and_a_computed_result(capsys):
    """Each dependency's version, then polars' group-by totals (red 3+4+2, blue 5+1)."""
    deps.show_deps()
    out = capsys.readouterr().out
    for distribution in deps.DISTRIBUTIONS:
        assert f"{distribution} {metadata.version(distribution)}\n" in out
    assert out.endswith("polars group-by, total score per team:\n  blue 6\n  red 9\n")


def test_a_missing_distribution_is_named(capsys, monkeypatch):
    """A dependency that is not installed is reported as such, not as a crash."""
    monkeypatch.setattr(deps, "DISTRIBUTIONS", ("no-such-distribution",))
    deps.show_deps()
    assert capsys.readouterr().out.startswith("no-such-distribution not installed\n")


def test_polars_that_cannot_load_ends_in_one_line(monkeypatch):
    """A broken native runtime ends with one clear line and a non-zero exit, no traceback."""
    monkeypatch.setitem(sys.modules, "polars", None)  # makes `import polars` raise ImportError
    with pytest.raises(SystemExit) as exit_:
        deps.show_deps()
    assert str(exit_.value.code).startswith("error: polars cannot load its native runtime (")
