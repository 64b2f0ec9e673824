"""Libraries that modules open by name: found in Debian's archive, carried, and remembered.

A module may open a library by its name as it imports (python-magic opens libmagic through
ctypes; weasyprint opens GLib and Pango through cffi), which no reading of ELF files can see.
The import check (imports.py) sees the module fail, and its error names the library. The
base's archive then names the package that ships it (docker/libraries.py --which, as for a
library that a wheel links: the naming rule's guess, related names, the Contents index, each
confirmed by the package's own file list), and the image is built again carrying it (the
FOUND_PACKAGES build argument, installed after the venv, beside the libraries that it
links), and checked again: a module
that opened one library may open another once it has it (Pango, once GLib is there). This goes
on while the archive names a package that the image does not carry yet; then each module that
still fails fails the build, in one line naming each library and its package, where one ships
it. A fontconfig with no font at all counts as such a library too: Debian's fonts-dejavu-core
is carried for it.

What was found is kept per lock, base and platform (.venv/stamps, one stamp each), so that the
next build starts with it and needs no second one; the provenance records each package, with
the module and the library that asked for it.
"""

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from invoke import Context

from shipyard.tooling import bootstrap, engine, imports, stamps
from shipyard.tooling.project import IN_IMAGE, STAMPS

# Debian's fontconfig-config depends on this font first: the one a minimal system has.
FONT = "fonts-dejavu-core"
# What an error says of a library that could not be opened: cffi's "cannot load library 'X'",
# the loader's "X: cannot open shared object file" (ctypes.CDLL's too), python-magic's "failed
# to find libmagic", and cairocffi's 'no library called "X" was found'.
OPENED = re.compile(
    r"cannot load library '([^']+)'"
    r"|([^\s:'\"]+): cannot open shared object file"
    r"|failed to find (lib[\w+-]+)"
    r'|no library called "([^"]+)"'
)
# What a line says to do where a library is found in no package.
UNSHIPPED = (
    "Name a package that has it in docker.runtime_packages (INVOKE_DOCKER_RUNTIME_PACKAGES), or "
    "a base image that has it in docker.base (INVOKE_DOCKER_BASE); where it cannot import in a "
    "container, allow it in docker.import_allowed, with the reason."
)


def names(error: str) -> list[str]:
    """The libraries that ERROR says could not be opened, as it names them, each once."""
    found = [next(group for group in match.groups() if group) for match in OPENED.finditer(error)]
    return list(dict.fromkeys(name.rpartition("/")[2] for name in found))


def kept(platform: str, base: str) -> list[dict]:
    """What was found for PLATFORM's image on BASE, with the lock as it is: {"package",
    "library", "module", "distribution", "why"} each; none for a lock or base new here."""
    stamp = STAMPS / _step(platform, base)
    recorded = json.loads(stamp.read_text()) if stamp.is_file() else {}
    return recorded.get("found", []) if recorded.get("key") == _key(platform, base) else []


def packages(setting: str, found: list[dict]) -> str:
    """The FOUND_PACKAGES build argument: each package FOUND that docker.runtime_packages'
    SETTING does not name, sorted, so that the argument, and the image, is the same whatever
    order they were found in."""
    return " ".join(sorted({entry["package"] for entry in found} - set(setting.split())))


def gate(
    c: Context,
    ref: str,
    platform: str,
    rebuild: Callable[[], str],
    checked: imports.Checked | None = None,
) -> list[str]:
    """Check the imports of REF, PLATFORM's runtime image (CHECKED says it where the build
    checked it already, beside its SBOM); while modules fail for libraries that they open by
    name and the archive names packages that the image does not carry yet (or its fontconfig
    has no font), keep them, REBUILD (which gives the image's name), and check again. Return
    one line per module that still fails: none where every one imports."""
    base = bootstrap.base(c, platform)
    while True:
        checked = checked or imports.check(c, ref, platform)
        found = kept(platform, base)
        carried = set(c.docker.runtime_packages.split()) | {entry["package"] for entry in found}
        asked = {result["module"]: names(result["error"]) for result in checked.failed}
        wanted = sorted({name for listed in asked.values() for name in listed})
        archive = _archive(c, platform, base, wanted) if wanted else {}
        shipping = archive.get("packages", {})
        new = []
        for result in checked.failed:
            for library in asked[result["module"]]:
                package = shipping.get(library)
                if package and package not in carried:
                    why = f"{result['module']} opens {library} by name"
                    new.append({"package": package, "library": library, "why": why,
                                "module": result["module"],
                                "distribution": result["distribution"]})  # fmt: skip
                    print(f"{why}: Debian's {package} ships it; building again with it")
        if checked.fontless and FONT not in carried:
            library = Path(checked.fontless).name
            why = f"{ref} carries fontconfig ({library}) and no font"
            new.append({"package": FONT, "library": library, "why": why,
                        "module": None, "distribution": None})  # fmt: skip
            print(f"{why}: Debian's {FONT} is one; building again with it")
        if not new:
            return [imports.line(result, ref, platform,
                                 _fix(asked[result["module"]], archive))
                    for result in checked.failed]  # fmt: skip
        _keep(c, platform, base, [*found, *new])
        ref, checked = rebuild(), None


def _archive(c: Context, platform: str, base: str, libraries: list[str]) -> dict:
    """What the archive of BASE's release says of LIBRARIES (libraries.py --which): {"release",
    "packages": the package that ships each, where one does, "unasked": why none could be
    looked for, where none could}."""
    asked = engine.docker(
        c, *engine.throwaway(platform), "--volume", f"{IN_IMAGE}:/opt/build:ro", base,
        "python3", "/opt/build/libraries.py", "--which", *libraries, hide=True, warn=True,
    )  # fmt: skip
    said = asked.stdout.strip().splitlines()[-1:] if asked.ok else []
    if said and said[0].startswith("{"):
        return json.loads(said[0])
    why = (asked.stderr.strip().splitlines() or [f"exit {asked.exited}"])[-1]
    return {"release": "the base's release", "packages": {}, "unasked": f"the lookup failed: {why}"}


def _fix(libraries: list[str], archive: dict) -> str:
    """What a failing module's line says of the LIBRARIES that its error names, and what to do."""
    if not libraries:
        return imports.FIX
    said, unshipped = [], False
    for library in libraries:
        package = archive.get("packages", {}).get(library)
        if package:  # carried by now: what was not made the image be built again
            said.append(f"{library}, which Debian's {package} ships and the image carries")
        elif archive.get("unasked"):
            said.append(f"{library}, which could not be looked for ({archive['unasked']})")
        else:
            unshipped = True
            said.append(f"{library}, which no Debian package of {archive['release']} ships")
    return f"It opens by name {', and '.join(said)}. {UNSHIPPED if unshipped else imports.FIX}"


def _key(platform: str, base: str) -> str:
    """What the packages found depend on: the lock, as exported, the base and the platform."""
    return f"{stamps.digest('requirements.txt')} {base} {platform}"


def _step(platform: str, base: str) -> str:
    """A stamp a key: a switch to another Python's base, and back, finds each one kept."""
    digest = hashlib.sha256(_key(platform, base).encode()).hexdigest()[:16]
    return f"opened-{platform.replace('/', '_')}-{digest}"


def _keep(c: Context, platform: str, base: str, found: list[dict]) -> None:
    """Keep FOUND for PLATFORM's builds on BASE with this lock; nothing is kept under --dry."""
    kept = {"key": _key(platform, base), "found": found}
    stamps.record(c, _step(platform, base), json.dumps(kept, indent=1))
