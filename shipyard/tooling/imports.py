"""The import gate: every module that the lock installs must import in the image as it ships.

Finding each library that native code links (docker/distroless.py) cannot see one that a
module opens by name (python-magic's libmagic, through ctypes), nor data that it reads at
import. So after each runtime image is built, every top-level module of every distribution
in its environment is imported inside it (docker/imports.py), the way a hardened deployment
runs it: as the image's own unprivileged user, with a read-only root (and a tmpfs at
/tmp), every capability dropped, no new privileges, and no network. One that fails fails the
build, with one line naming the module, its error, and the setting that fixes it.
"""

import json
import re
import time

from invoke import Context, Exit

from shipyard.tooling import bootstrap, engine, stamps
from shipyard.tooling.project import IN_IMAGE

SCRIPT = IN_IMAGE / "imports.py"
SAID = "imports.py: "  # how each of the script's own lines starts
# A library that an error says could not be opened: libvips.so.42, libmagic.so.1.
LIBRARY = re.compile(r"\b(lib[\w+-]+(?:\.[\w+-]+)*?\.so(?:\.\d+)*)\b")
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


def check(c: Context, ref: str, platform: str) -> None:
    """Import every module of REF's environment in REF, run hardened on PLATFORM; end with one
    line per module that failed (docker.import_allowed's excepted). Done once an image."""
    allow = allowed(c)
    fingerprint = f"{engine.image_id(c, ref)} {sorted(allow.items())}"
    step = f"imports-{ref.replace('/', '_')}-{platform.replace('/', '_')}"
    if stamps.done(step, fingerprint):
        print(f"import check of {ref} ({platform}): passed before, and nothing changed")
        return
    start = time.monotonic()
    results = _import_all(c, ref, platform)
    if c.config.run.dry:
        return
    failed = [result for result in results if result["error"] and result["module"] not in allow]
    excused = [result["module"] for result in results if result["error"] and result not in failed]
    if failed:
        shipped = _packages_of(c, [result["error"] for result in failed], platform)
        raise Exit("\n".join(_line(result, ref, platform, shipped) for result in failed))
    unchecked = [result for result in results if result.get("unchecked")]
    imported = len(results) - len(excused) - len(unchecked)
    print(
        f"import check of {ref} ({platform}): {imported} of {len(results)} modules import, "
        f"hardened, in {time.monotonic() - start:.1f} s"
        + (f"; allowed to fail: {', '.join(excused)}" if excused else "")
    )
    for result in unchecked:
        module, distribution = result["module"], result["distribution"]
        print(f"  not checked: {module} (of {distribution}): {result['unchecked']}")
    stamps.record(c, step, fingerprint)


def _import_all(c: Context, ref: str, platform: str) -> list[dict]:
    """The result of importing each module in REF. Where the interpreter itself dies (native
    code that crashes), the module it was in is a failure, and the rest are tried anew."""
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
        results += ended
        if ran.ok or c.config.run.dry:
            return results
        if not started:  # no module was even tried: python itself cannot run there
            said = (ran.stderr.strip().splitlines() or [f"exit {ran.exited}"])[-1]
            raise Exit(f"error: the import check could not run in {ref} ({platform}): {said}")
        if len(ended) == len(started):  # every import ended: it died on its way out
            return results
        crashed = started[-1]
        error = f"the interpreter died (exit {ran.exited}) while importing it"
        results.append({"distribution": crashed["distribution"], "module": crashed["start"],
                        "error": error})  # fmt: skip


def _packages_of(c: Context, errors: list[str], platform: str) -> dict[str, str]:
    """The Debian package that ships each library that ERRORS say could not be opened by name
    (cannot load library 'libvips.so.42'), as the base's archive names it (libraries.py)."""
    libraries = sorted({name for error in errors for name in LIBRARY.findall(error)})
    if not libraries or c.config.run.dry:
        return {}
    asked = engine.docker(
        c, *engine.throwaway(platform),
        "--volume", f"{IN_IMAGE}:/opt/build:ro", bootstrap.base(c, platform),
        "python3", "/opt/build/libraries.py", "--which", *libraries, hide=True, warn=True,
    )  # fmt: skip
    found = asked.stdout.strip().splitlines()[-1:] if asked.ok else []
    return json.loads(found[0]).get("packages", {}) if found else {}


def _line(result: dict, ref: str, platform: str, shipped: dict[str, str]) -> str:
    named = [(library, shipped[library]) for library in LIBRARY.findall(result["error"])
             if library in shipped]  # fmt: skip
    if named:
        packages = " ".join(dict.fromkeys(package for _, package in named))
        fix = (
            f"Debian's {packages} ships {named[0][0]}, which it opens by name: add it to "
            f'docker.runtime_packages (INVOKE_DOCKER_RUNTIME_PACKAGES="{packages}").'
        )
    else:
        fix = (
            "Where it opens a library by name, name that library's Debian package in "
            "docker.runtime_packages (INVOKE_DOCKER_RUNTIME_PACKAGES); where it cannot import "
            "in a container, allow it in docker.import_allowed, with the reason."
        )
    return (
        f"error: {result['module']} (of {result['distribution']}) does not import in {ref} "
        f"({platform}), hardened: {result['error']}. {fix}"
    )
