"""Prove that the native dependencies are installed, load, and compute."""

import sys
import warnings

# polars is a pure-Python front end; the Rust engine ships as a separate runtime package.
DISTRIBUTIONS = ("polars", "polars-runtime-32", "fire")


def _version(distribution: str) -> str:
    # Imported here, like polars below: importlib.metadata alone costs other commands ~40 ms.
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def show_deps() -> None:
    """Print the versions of the dependencies and a small polars computation."""
    for distribution in DISTRIBUTIONS:
        print(f"{distribution} {_version(distribution)}")
    try:
        with warnings.catch_warnings():
            # polars only warns when its engine is missing, or the CPU lacks what it was built for.
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("error", RuntimeWarning)
            # Imported here, not at the top, so that other commands do not pay for it.
            import polars as pl
    except Exception as error:  # whatever the import raises, the native engine did not load
        sys.exit(
            f"error: polars cannot load its native runtime ({type(error).__name__}: {error}). "
            "Reinstall polars with the runtime for this CPU (polars[rtcompat] for old ones)."
        )

    scores = pl.DataFrame({"team": ["red", "blue", "red", "blue", "red"], "score": [3, 5, 4, 1, 2]})
    totals = scores.group_by("team").agg(pl.col("score").sum().alias("total")).sort("team")
    print("polars group-by, total score per team:")
    for team, total in totals.iter_rows():
        print(f"  {team} {total}")
