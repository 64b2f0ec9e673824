"""Registries: one clear line for what a push or pull could not do, and the likely fix."""

import re

from invoke import Exit, Result


def require_ok(result: Result, registry: str) -> None:
    """End with one line naming REGISTRY and the likely fix, when a push or pull failed."""
    if result.ok:
        return
    output = result.stdout + result.stderr
    if re.search(r"unauthorized|authentication required|no basic auth|denied", output, re.I):
        fix = f"Log in first: `docker login {registry.split('/')[0]}` (or your credential helper)."
    else:
        fix = f"Check that {registry} is the right address and that it is up."
    raise Exit(
        f"error: the registry {registry} refused or did not answer. {fix}", code=result.exited
    )
