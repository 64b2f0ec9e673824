"""Import every top-level module of every distribution in the image's environment.

Usage (what `inv build` runs in the runtime image; it has no shell, so this text is passed
to the image's python with -c): python -c "$(cat imports.py)" [MODULE-TO-SKIP ...]

A distribution names its modules in top_level.txt; one without it (most built by newer
backends) lists its files in RECORD, whose first parts are the modules: a package folder,
a module file, an extension module. Each module is imported in turn, and a line says how,
"imports.py: " then JSON: {"distribution", "module", "error", "unchecked"} (error is null
where it imported; unchecked says why it could not be checked, where it could not), preceded
by {"start", "distribution"}, so that a crash of the interpreter itself (a segfault in native
code) still tells which module it was in. Modules named on the command line are skipped:
those already tried, when a crash makes the caller start again. Last, where the image carries
fontconfig and fontconfig's folders hold no font at all, {"fontless": the library's path}:
text rendered through it (a wheel's own fontconfig, or one linked into its library, as
pyvips-binary's libvips holds one) would have no glyph to draw, and no import fails for it.
"""

import importlib
import importlib.metadata
import importlib.util
import json
import mmap
import os
import sys
import sysconfig
import traceback
from pathlib import PurePosixPath

# What the first part of a RECORD path can be that is no module: metadata, scripts, data,
# and the folders where auditwheel puts the libraries that a wheel bundles (numpy.libs).
NOT_MODULES = (".dist-info", ".data", ".libs", ".pth")
# Where a fontconfig library may be: the system's folders, and the venv (a wheel's own, which
# auditwheel renames: libfontconfig-8f5a4c1e.so.1.12.0). Where fontconfig looks for fonts, as
# Debian configures it and as its built-in default has it; and what a font file is called.
LIBRARY_FOLDERS = ("/usr/lib", "/usr/local/lib", "/lib", "/lib64", "/usr/lib64")
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts")
FONT_FILES = (".ttf", ".otf", ".ttc", ".otc", ".pfb", ".pfa", ".pcf", ".pcf.gz", ".woff", ".woff2")
FONTCONFIG = b"FONTCONFIG_FILE"  # the variable that every build of fontconfig reads, by name


def modules(distribution: importlib.metadata.Distribution) -> list[str]:
    """The top-level modules of DISTRIBUTION, in order."""
    listed = distribution.read_text("top_level.txt")
    if listed is not None:
        names = [line.strip().replace("/", ".") for line in listed.splitlines()]
        return sorted({name for name in names if name and name.split(".")[0].isidentifier()})
    found = set()
    for path in distribution.files or []:
        parts = PurePosixPath(path).parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(NOT_MODULES):
            continue
        name = parts[0].partition(".")[0] if len(parts) == 1 else parts[0]
        is_module = len(parts) > 1 or parts[0].endswith((".py", ".so", ".pyd"))
        if is_module and name.isidentifier():
            found.add(name)
    return sorted(found)


def main(tried: set[str]) -> None:
    site = sysconfig.get_path("purelib")
    distributions = importlib.metadata.distributions(path=[site])
    for distribution in sorted(distributions, key=lambda found: found.metadata["Name"].lower()):
        for module in modules(distribution):
            if module in tried:
                continue
            name = distribution.metadata["Name"]
            say({"start": module, "distribution": name})
            error = unchecked = None
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as missing:
                unchecked = absent(module, missing)
                error = None if unchecked else last_line()
            except BaseException:  # SystemExit too: every way an import fails is reported
                error = last_line()
            said = {"distribution": name, "module": module, "error": error, "unchecked": unchecked}
            say(said)
    lacking = fontless()
    if lacking:
        say({"fontless": lacking})


def files(folders: tuple[str, ...]) -> list[str]:
    """The names of the files in FOLDERS and below, each folder walked once."""
    found, seen = [], set()
    for folder in folders:
        for parent, names, filenames in os.walk(folder):
            if os.path.realpath(parent) in seen:
                names[:] = []
                continue
            seen.add(os.path.realpath(parent))
            found += [os.path.join(parent, name) for name in filenames]
    return found


def fontless() -> str | None:
    """Where fontconfig's folders hold no font file, the first library of the image that is
    fontconfig or holds it (pyvips-binary links it into libvips): its path. None where there is
    a font, or no fontconfig; the libraries are read only where there is no font."""
    if any(path.lower().endswith(FONT_FILES) for path in files(FONT_FOLDERS)):
        return None
    libraries = sorted(path for path in files((*LIBRARY_FOLDERS, sys.prefix))
                       if ".so" in os.path.basename(path) and not os.path.islink(path))  # fmt: skip
    return next((path for path in libraries if fontconfig(path)), None)


def fontconfig(path: str) -> bool:
    """Whether the library at PATH is fontconfig, or holds it: by its name, or by the name of
    the variable that fontconfig reads for its configuration, which no other library uses."""
    if os.path.basename(path).startswith("libfontconfig"):
        return True
    with open(path, "rb") as library:
        size = os.fstat(library.fileno()).st_size
        if not size:
            return False
        with mmap.mmap(library.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(FONTCONFIG) >= 0


def absent(module: str, missing: ModuleNotFoundError) -> str | None:
    """Why MODULE cannot be checked, where what it lacks is no fault of the image: no file holds
    MODULE at all (a distribution's metadata may name one that it keeps inside a package:
    PyNaCl's _sodium), or it imports a distribution that the lock does not install (an optional
    one: duckdb's adbc_driver_duckdb wants adbc_driver_manager). What the image itself leaves
    out, the standard library's Tk say, is no excuse: None."""
    lacking = (missing.name or "").partition(".")[0]
    if not lacking or lacking in sys.stdlib_module_names or importlib.util.find_spec(lacking):
        return None
    if lacking == module:
        return "no file holds it: only the distribution's metadata names it"
    return f"it imports {lacking}, which the lock does not install (an optional dependency)"


def say(line: dict) -> None:
    """One line of JSON, told from what the modules print as they import by its start. It
    starts a line of its own: what a module printed last may not have ended its own."""
    print(f"\nimports.py: {json.dumps(line)}", flush=True)


def last_line() -> str:
    return traceback.format_exc().strip().splitlines()[-1]


if __name__ == "__main__":  # as `python -c` runs it, too
    main(set(sys.argv[1:]))
