"""The app's own test suite: what pytest runs, here (`inv test`) and in the image's test stage.

pytest reads the project's own configuration (its addopts, markers and coverage settings:
an app that wants 100 % coverage says so in its coverage settings, as this one does). The
tasks add only what narrows it, from settings that both places share:
- test.paths: what pytest collects; by default the project's testpaths, else tests/ (bare
  pytest would also collect the sources, their doctests under --doctest-modules too);
- test.markers: an -m expression for every run, such as "not network";
- test.slow: what `inv test` leaves to `inv test --all` (the image runs it all);
- test.deselect: tests that cannot pass here, by their node IDs.
Both run the suite through docker/run-tests, which meets a project's tests alike in both.
"""

from invoke import Context

from shipyard.tooling.project import COLLECTION, ROOT, app


def paths(c: Context) -> list[str]:
    """test.paths, else what the project's configuration collects."""
    setting = c.test.paths
    if setting:
        return setting.split() if isinstance(setting, str) else list(setting)
    return app().test_paths


def in_image(c: Context) -> list[str]:
    """The paths that the image's test stage runs: the app's, not the collection's own tests,
    which test the tooling, on the host (the build context leaves the collection out)."""
    return [path for path in paths(c) if not (ROOT / path).resolve().is_relative_to(COLLECTION)]


def markers(c: Context, everything: bool = True) -> str:
    """The -m expression: test.markers, and, unless EVERYTHING, not test.slow's."""
    parts = [f"({c.test.markers})"] if c.test.markers else []
    if c.test.slow and not everything:
        parts.append(f"not ({c.test.slow})")
    return " and ".join(parts)


def deselected(c: Context) -> list[str]:
    """test.deselect: the node IDs of tests that cannot pass here, such as one that clones
    from the network without a marker to say so."""
    setting = c.test.deselect or []
    return setting.split() if isinstance(setting, str) else list(setting)


def arguments(c: Context, everything: bool, selection: list[str], image: bool = False) -> list[str]:
    """pytest's arguments: the paths (IMAGE's: the app's alone), the markers and the tests
    deselected, then SELECTION (what the user gave after --). A selection covers part of the
    code: coverage is shown, never enforced. The image keeps no cache in the project's copy."""
    argv = [*(["-p", "no:cacheprovider"] if image else []), *(in_image(c) if image else paths(c))]
    expression = markers(c, everything)
    argv += ["-m", expression] if expression else []
    argv += [flag for node in deselected(c) for flag in ("--deselect", node)]
    if selection and any(option.startswith("--cov") for option in app().addopts):
        argv.append("--cov-fail-under=0")
    return [*argv, *selection]
