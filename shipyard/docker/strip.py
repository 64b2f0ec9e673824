"""Strip a virtual environment of what its packages do not need at run time.

Usage: python3 strip.py VENV [STRIP]

STRIP is binutils' strip for the target's architecture (aarch64-linux-gnu-strip, where the
builder is amd64 and the image arm64); `strip` by default.

- Native code loses its symbols. Wheels ship some libraries with them (polars' engine:
  178 MB, 138 MB stripped). Others were rewritten by auditwheel's patchelf, in a layout
  that some strips break (binutils 2.40, bookworm's): numpy's OpenBLAS then fails to load
  ("ELF load command address/offset not page-aligned"). So each ELF file with symbols to
  lose is stripped into a copy, which replaces it only where the loader would take it (as
  elf.py checks it, for the target's page size), every section that the loader maps is
  where and what it was, and it is smaller.
- Test suites go: the `test` and `tests` folders of packages, unless a module outside them
  imports them (astropy's __init__ imports its test runner: that folder stays).
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import elf

# A line that may import a test suite: what is worth parsing to see.
IMPORTS_A_TEST = re.compile(r"^\s*(from|import)\s.*\btests?\b", re.MULTILINE)


def strip(binary: Path, scratch: Path, program: str = "strip") -> str | None:
    """Strip the ELF file BINARY in place; return why it was left as it is, or None."""
    before = elf.read(binary, contents=True)
    if not before.symbols_to_strip():
        return "nothing to strip"
    if before.load_problems():
        return "it is not loadable as it is"
    copy = scratch / binary.name
    shutil.copy2(binary, copy)
    stripped = subprocess.run([program, "--strip-unneeded", copy], capture_output=True, text=True)
    if stripped.returncode:
        return f"strip failed: {stripped.stderr.strip()}"
    after = elf.read(copy, contents=True)
    if problems := after.load_problems():
        return f"stripped, it would not load: {problems[0]}"
    if after.loaded != before.loaded:
        return "stripped, what the loader maps would change"
    if copy.stat().st_size >= binary.stat().st_size:
        return "stripped, it would not be smaller"
    os.replace(copy, binary)
    return None


def binaries(venv: Path, program: str = "strip") -> tuple[int, list[str]]:
    """Strip every ELF file of VENV; return the bytes saved, and what stripping would break."""
    saved, kept = 0, []
    with tempfile.TemporaryDirectory() as scratch:
        for binary in sorted(venv.rglob("*")):
            if binary.is_symlink() or not binary.is_file() or not elf.is_elf(binary):
                continue
            size = binary.stat().st_size
            reason = strip(binary, Path(scratch), program)
            if reason is None:
                saved += size - binary.stat().st_size
            elif reason.startswith("stripped, it would not"):
                kept.append(f"{binary.relative_to(venv)}: {reason}")
    return saved, kept


def test_suites(site_packages: Path) -> list[Path]:
    """The test folders of SITE_PACKAGES' packages that no module outside them imports."""
    suites = []
    for folder, names, _ in os.walk(site_packages):
        if Path(folder) != site_packages:  # a top-level `tests` is a package of its own
            suites += [Path(folder) / name for name in names if name in {"test", "tests"}]
            names[:] = [name for name in names if name not in {"test", "tests"}]
    if not suites:
        return []
    imported = set()
    for folder, names, files in os.walk(site_packages):
        names[:] = [name for name in names if Path(folder) / name not in suites]
        for name in files:
            if name.endswith(".py"):
                imported |= imports(Path(folder) / name, site_packages)
    dotted = {suite: ".".join(suite.relative_to(site_packages).parts) for suite in suites}
    return [
        suite
        for suite, name in dotted.items()
        if not any(used == name or used.startswith(f"{name}.") for used in imported)
    ]


def imports(source: Path, site_packages: Path) -> set[str]:
    """The modules that SOURCE imports, as dotted names, its relative imports resolved."""
    text = source.read_text(errors="replace")
    if not IMPORTS_A_TEST.search(text):
        return set()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    package = list(source.relative_to(site_packages).parent.parts)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return found


def main(venv: str, program: str = "strip") -> None:
    root = Path(venv)
    saved, kept = binaries(root, program)
    suites = [
        suite for site in root.glob("lib/python*/site-packages") for suite in test_suites(site)
    ]
    for suite in suites:
        saved += sum(path.stat().st_size for path in suite.rglob("*") if path.is_file())
        shutil.rmtree(suite)
    print(f"strip: {saved / 1e6:.1f} MB less; {len(suites)} test suites removed")
    if kept:
        print(f"strip: {len(kept)} left as they were, which stripping would break or not shrink:")
    for line in kept:
        print(f"  {line}")


if __name__ == "__main__":
    main(*sys.argv[1:])
