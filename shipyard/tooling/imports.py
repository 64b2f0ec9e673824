"""The import gate: every module that the lock installs must import in the image as it ships.

Finding each library that native code links (docker/distroless.py) cannot see one that a
module opens by name (python-magic's libmagic, through ctypes), nor data that it reads at
import. So after each runtime image is built, every top-level module of every distribution
in its environment is imported inside it (docker/imports.py), the way a hardened deployment
runs it: as the image's own unprivileged user, with a read-only root (and a tmpfs at
/tmp), every capability dropped, no new privileges, and no network. Each module that fails is
reported, with its error; where that names a library that it opens by name, tooling/opened.py
finds the library's package, and the build carries it. What fails all the same fails the
build, in one line a module, naming its error and the setting that fixes it.
"""

import json
import time
from dataclasses import dataclass

from invoke import Context, Exit

from shipyard.tooling import engine, stamps
from shipyard.tooling.project import IN_IMAGE

SCRIPT = IN_IMAGE / "imports.py"
SAID = "imports.py: "  # how each of the script's own lines starts
# What a line says to do about a module that fails, where nothing more is known of why.
FIX = (
    "Where it opens a library by name, name that library's Debian package in "
    "docker.runtime_packages (INVOKE_DOCKER_RUNTIME_PACKAGES); where it cannot import in a "
    "container, allow it in docker.import_allowed, with the reason."
)
# As read-only deployments run (Kubernetes' readOnlyRootFilesystem, with an emptyDir at /tmp):
# matplotlib, for one, needs somewhere to write its cache, and finds it there.
HARDENED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",  # noqa: S108 # the container's
            "--security-opt", "no-new-privileges", "--network", "none"]  # fmt: skip


def allowed(c: Context) -> dict[str, str]:
    """docker.import_allowed: each module that may fail to import, with the reason. In
    invoke.yaml a mapping; in INVOKE_DOCKER_IMPORT_ALLOWED, "MODULE: REASON; MODULE: REASON"."""
    setting = c.docker.import_allowed or {}
    if isinstance(setting, str):
        entries = [entry.partition(":") for entry in setting.split(";") if entry.strip()]
        setting = {module.strip(): reason.strip() for module, _, reason in entries}
    for module, reason in setting.items():
        if not str(reason or "").strip():
            raise Exit(
                f"error: docker.import_allowed names {module} without a reason. Give one, as "
                f'in "{module}: needs a display".'
            )
    return dict(setting)


@dataclass
class Checked:
    """What the import check of an image found: each module that failed (but those that
    docker.import_allowed excuses), as docker/imports.py said it ({"distribution", "module",
    "error"}); and a fontconfig library that the image carries with no font, where it does."""

    failed: list[dict]
    fontless: str | None = None


def check(c: Context, ref: str, platform: str) -> Checked:
    """Import every module of REF's environment in REF, run hardened on PLATFORM, and say how
    many imported; return what failed. An image that passed is not checked again."""
    allow = allowed(c)
    fingerprint = f"{engine.image_id(c, ref)} {sorted(allow.items())}"
    step = f"imports-{ref.replace('/', '_')}-{platform.replace('/', '_')}"
    if stamps.done(step, fingerprint):
        print(f"import check of {ref} ({platform}): passed before, and nothing changed")
        return Checked([])
    start = time.monotonic()
    results, fontless = _import_all(c, ref, platform)
    if c.config.run.dry:
        return Checked([])
    failed = [result for result in results if result["error"] and result["module"] not in allow]
    excused = [result["module"] for result in results if result["error"] and result not in failed]
    unchecked = [result for result in results if result.get("unchecked")]
    imported = len(results) - len(failed) - len(excused) - len(unchecked)
    print(
        f"import check of {ref} ({platform}): {imported} of {len(results)} modules import, "
        f"hardened, in {time.monotonic() - start:.1f} s"
        + (f"; failed: {', '.join(result['module'] for result in failed)}" if failed else "")
        + (f"; allowed to fail: {', '.join(excused)}" if excused else "")
    )
    for result in unchecked:
        module, distribution = result["module"], result["distribution"]
        print(f"  not checked: {module} (of {distribution}): {result['unchecked']}")
    if not failed and not fontless:
        stamps.record(c, step, fingerprint)
    return Checked(failed, fontless)


def line(result: dict, ref: str, platform: str, fix: str = FIX) -> str:
    """The one line that fails the build for the module of RESULT, with what FIX says to do."""
    return (
        f"error: {result['module']} (of {result['distribution']}) does not import in {ref} "
        f"({platform}), hardened: {result['error']}. {fix}"
    )


def _import_all(c: Context, ref: str, platform: str) -> tuple[list[dict], str | None]:
    """The result of importing each module in REF, and the fontconfig that it carries with no
    font, if it does. Where the interpreter itself dies (native code that crashes), the module
    it was in is a failure, and the rest are tried anew."""
    argv = engine.throwaway(platform)
    argv += [*HARDENED, "--entrypoint", "/opt/venv/bin/python", ref, "-c", SCRIPT.read_text()]
    results: list[dict] = []
    while True:
        tried = [result["module"] for result in results]
        ran = engine.docker(c, *argv, *tried, hide=True, warn=True)
        # What the script says, beside whatever the modules print as they import.
        lines = [json.loads(line.removeprefix(SAID)) for line in ran.stdout.splitlines()
                 if line.startswith(SAID)]  # fmt: skip
        ended = [line for line in lines if "error" in line]
        started = [line for line in lines if "start" in line]
        fontless = next((line["fontless"] for line in lines if "fontless" in line), None)
        results += ended
        if ran.ok or c.config.run.dry:
            return results, fontless
        if not started:  # no module was even tried: python itself cannot run there
            said = (ran.stderr.strip().splitlines() or [f"exit {ran.exited}"])[-1]
            raise Exit(f"error: the import check could not run in {ref} ({platform}): {said}")
        if len(ended) == len(started):  # every import ended: it died on its way out
            return results, fontless
        crashed = started[-1]
        error = f"the interpreter died (exit {ran.exited}) while importing it"
        results.append({"distribution": crashed["distribution"], "module": crashed["start"],
                        "error": error})  # fmt: skip
