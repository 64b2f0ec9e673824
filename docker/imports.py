"""Import every top-level module of every distribution in the image's environment.

Usage (what `inv build` runs in the runtime image; it has no shell, so this text is passed
to the image's python with -c): python -c "$(cat imports.py)" [MODULE-TO-SKIP ...]

A distribution names its modules in top_level.txt; one without it (most built by newer
backends) lists its files in RECORD, whose first parts are the modules: a package folder,
a module file, an extension module. Each module is imported in turn, and one line of JSON
says how: {"distribution", "module", "error"} (error is null where it imported), preceded by
{"start", "distribution"}, so that a crash of the interpreter itself (a segfault in native
code) still tells which module it was in. Modules named on the command line are skipped:
those already tried, when a crash makes the caller start again.
"""

import importlib
import importlib.metadata
import json
import sys
import sysconfig
import traceback
from pathlib import PurePosixPath

# What the first part of a RECORD path can be that is no module: metadata, scripts, data,
# and the folders where auditwheel puts the libraries that a wheel bundles (numpy.libs).
NOT_MODULES = (".dist-info", ".data", ".libs", ".pth")


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


def main(skipped: set[str]) -> None:
    site = sysconfig.get_path("purelib")
    distributions = importlib.metadata.distributions(path=[site])
    for distribution in sorted(distributions, key=lambda found: found.metadata["Name"].lower()):
        for module in modules(distribution):
            if module in skipped:
                continue
            name = distribution.metadata["Name"]
            print(json.dumps({"start": module, "distribution": name}), flush=True)
            try:
                importlib.import_module(module)
                error = None
            except BaseException:  # SystemExit too: every way an import fails is reported
                error = traceback.format_exc().strip().splitlines()[-1]
            said = {"distribution": name, "module": module, "error": error}
            print(json.dumps(said), flush=True)


main(set(sys.argv[1:]))
