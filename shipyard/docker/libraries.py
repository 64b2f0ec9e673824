"""Install the Debian package of each system library that a wheel links and does not bundle.

Usage: python3 libraries.py [--root TARGET] --missing OUTPUT FOLDER ...
       python3 libraries.py --install MISSING
       python3 libraries.py --which LIBRARY ...   (the package of each, as JSON; installs none)

A manylinux wheel may link a library of the system that auditwheel left out, trusting every
system to have it (lightgbm's lib_lightgbm.so needs libgomp.so.1, which a minimal Debian
lacks): the build would pass and the import fail at run time. So every ELF file of the
FOLDERs (the venv) is read, on the builder; a library that it needs is missing where the
target's loader (elf.Loader's rules, in TARGET, its root filesystem) finds it nowhere and no
file of the FOLDERs has its name (torch preloads the nvidia wheels' libraries by path).
--missing writes them to OUTPUT, as JSON, or leaves it empty: then nothing else is done, and
no network. --install, run on the target, installs what OUTPUT names.

For each missing library, the archive of the builder's own release is the authority. The
package that Debian's naming rule guesses (libgomp.so.1: libgomp1, or trixie's libgomp1t64)
is taken only where its own file list holds a file of that name in a folder that the loader
searches; failing that, the packages whose names the rule may have missed (libglib-2.0.so.0
is in libglib2.0-0t64), by the same check; failing that, the packages that the archive's
Contents index of this architecture names (fetched for this one lookup), by the same check.
The packages found are installed with apt-install, and distroless.py carries them, with
their dpkg records, into the runtime. A library that no package ships, or an archive that cannot
be reached, ends the build with one line that says what to set.

--which looks up, the same way, the libraries that modules open by name, which no reading of
ELF files sees (the import check finds them failing: tooling/opened.py). Such a name may be a
soname (libvips.so.42), or what code asks the loader for: "magic" or "libmagic" (ctypes'
find_library), "libgobject-2.0-0" (cffi, named after Windows' DLL, libgobject-2.0.so.0 here).
Where its version is not said, any versioned soname of it counts (libmagic.so.1), as the
loader's cache, which find_library reads, lists them; never the development link, libmagic.so.
"""

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import elf

# Files that are never ELF, and most of a venv: not worth opening.
NOT_ELF = {".py", ".pyc", ".pyi", ".pxd", ".h", ".txt", ".json", ".typed", ".md", ".csv"}
# A soname: the library's name, then its version (libfoo-2.0.so.0: libfoo-2.0 and 0).
SONAME = re.compile(r"^(?P<name>.+?)\.so(?:\.(?P<version>[0-9][0-9.]*))?$")
LISTS = Path("/var/lib/apt/lists")


def missing(
    folders: list[Path], root: elf.Root | None = None, python: Path | None = None
) -> dict[str, list[Path]]:
    """Each library that an ELF file of FOLDERS needs and that neither the loader of ROOT (the
    target's, "/" by default) nor a file of FOLDERS provides, with the files that need it.
    PYTHON, the interpreter (the first folder's, a venv's, by default), says the target's
    architecture: another machine's files never load there."""
    root = root or elf.Root()
    python = python or folders[0] / "bin" / "python"
    provided, binaries = elf.host_libraries(), []
    for folder in folders:
        for parent, _, names in os.walk(folder):
            provided.update(names)
            binaries += [Path(parent, name) for name in names if Path(name).suffix not in NOT_ELF]
    own = root.machine(python) or elf.machine(Path(sys.executable))
    loader, needs = elf.Loader(root), {}
    for path in binaries:
        if path.is_symlink() or elf.machine(path) != own:
            continue
        found = elf.read(path)
        for name in found.needed:
            if name not in provided and not loader.find(name, found):
                needs.setdefault(name, []).append(path)
    return needs


def opened(name: str) -> str:
    """The library that code opening NAME by name asks the loader for, spelt as a file's name:
    a soname, or what a soname starts with (magic and libmagic: libmagic; a path: its file)."""
    name = name.rpartition("/")[2]
    return name if name.startswith("lib") or SONAME.match(name) else f"lib{name}"


def soname(library: str) -> str | None:
    """LIBRARY's soname, where it says its version: itself (libvips.so.42), or one named after
    Windows' DLLs, with its major version after a hyphen (libgobject-2.0-0: libgobject-2.0.so.0;
    libfontconfig-1: libfontconfig.so.1). None where it says none (libmagic)."""
    if SONAME.match(library):
        return library
    windows = re.fullmatch(r"(.+)-([0-9]+)", library)
    return f"{windows[1]}.so.{windows[2]}" if windows else None


def file_names(library: str) -> re.Pattern:
    """The names of the files that the loader takes for LIBRARY: a soname's own; for a name
    opened by name, its soname and any later part of its version (libgobject-2.0.so.0.8400.0),
    or, where it says no version, any versioned soname of it (libmagic.so.1)."""
    if SONAME.match(library):
        return re.compile(re.escape(library))
    choices = [re.escape(library) + r"\.so(?:\.[0-9]+)+"]  # libmagic.so.1
    if soname(library):
        choices.append(re.escape(soname(library)) + r"(?:\.[0-9]+)*")
    return re.compile("|".join(choices))


def candidates(library: str) -> list[str]:
    """The packages that Debian's naming rule guesses for LIBRARY's soname, likeliest first:
    name and version (a hyphen between two digits), lowercase, and trixie's rename for 64-bit
    time. None where the soname is not known (libmagic: related() guesses those)."""
    match = SONAME.match(soname(library) or "")
    if not match:
        return []
    name, version = match["name"].lower().replace("_", "-"), match["version"]
    guess = name
    if version:
        guess = f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"
    return [guess, f"{guess}t64"]


def related(library: str, names: list[str]) -> list[str]:
    """Of the archive's package NAMES that share LIBRARY's first letters, those that the naming
    rule may have missed (libglib-2.0.so.0: libglib2.0-0t64): the same letters and digits in
    order, ending in the same major version, or those letters alone (libpython3.13). Where
    LIBRARY says no version (libmagic, opened by name), those letters and any number
    (libmagic1t64). At most five, the shortest first."""

    def letters(text: str) -> str:
        return re.sub(r"[^a-z0-9+]", "", text.lower().removesuffix("t64"))

    match = SONAME.match(soname(library) or "")
    if not match:
        numbered = re.compile(re.escape(letters(library)) + "[0-9]+")
        return sorted((name for name in names if numbered.fullmatch(letters(name))), key=len)[:5]
    if not match["version"]:
        return []
    stem, major = letters(match["name"]), match["version"].split(".")[0]
    fitting = [name for name in names if letters(name) == stem  # libpython3.13.so.1.0's
               or (letters(name).startswith(stem) and letters(name).endswith(major))]  # fmt: skip
    return sorted(fitting, key=len)[:5]


def listed(listing: str) -> list[str]:
    """The absolute paths in the output of `dpkg-deb --contents` (a link by its own name)."""
    paths = []
    for line in listing.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6:
            paths.append("/" + fields[5].split(" -> ")[0].removeprefix("./"))
    return paths


def contents_line(line: str) -> tuple[str, list[str]]:
    """A line of a Contents index: the path, absolute, and the packages that ship it."""
    path, _, where = line.rstrip("\n").rpartition(" ")
    return "/" + path.strip(), [package.rpartition("/")[2] for package in where.split(",")]


def shipped(library: str, paths: list[str], folders: set[str]) -> bool:
    """Whether PATHS hold a file that the loader takes for LIBRARY (file_names) in one of its
    FOLDERS."""
    names = file_names(library)
    return any(
        names.fullmatch(path.rpartition("/")[2]) and path.rpartition("/")[0] in folders
        for path in paths
    )


def library_folders(loader: elf.Loader) -> set[str]:
    """The folders that the loader searches, in both spellings of a merged /usr."""
    return {spelling for folder in loader.folders
            for spelling in (folder.rstrip("/"), os.path.realpath(folder))}  # fmt: skip


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def release() -> str:
    """The builder's Debian release, by its code name."""
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").is_file() else ""
    found = re.search(r"^VERSION_CODENAME=\"?([^\"\n]+)", text, re.MULTILINE)
    return found[1] if found else "the base's release"


def guessed(needs: list[str], folders: set[str]) -> dict[str, str]:
    """Of the libraries NEEDS, those that a package of the naming rule's guesses ships, by its
    own file list, or else a package of a related name: the package of each. apt's lists must
    be fresh."""
    found = confirmed({library: candidates(library) for library in needs}, folders)
    rest = [library for library in needs if library not in found]
    prefixes = {library: re.match(r"[a-z]*", library.lower())[0] for library in rest}
    related_names = {
        library: related(library, run("apt-cache", "pkgnames", prefix).stdout.split())
        for library, prefix in prefixes.items()
        if len(prefix) > 3  # "lib" alone would name thousands
    }
    return {**found, **confirmed(related_names, folders)}


def confirmed(guesses: dict[str, list[str]], folders: set[str]) -> dict[str, str]:
    """Of the libraries of GUESSES, each that one of its guessed packages ships, by the
    package's own file list (downloaded, not installed): that package."""
    names = sorted({name for names in guesses.values() for name in names})
    if not names:
        return {}
    # The guesses that the archive has: a name it lacks is left out, with a complaint.
    shown = run("apt-cache", "--no-all-versions", "show", *names).stdout
    known = sorted(set(re.findall(r"^Package: (\S+)$", shown, re.MULTILINE)))
    found: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if known:
            run("apt-get", "-q", "download", *known, cwd=scratch)
        for deb in sorted(Path(scratch).glob("*.deb")):
            package = run("dpkg-deb", "--field", str(deb), "Package").stdout.strip()
            paths = listed(run("dpkg-deb", "--contents", str(deb)).stdout)
            for library, names in guesses.items():
                if package in names and shipped(library, paths, folders):
                    found.setdefault(library, package)
    return found


def contents_index(folder: Path) -> list[Path]:
    """The archive's Contents index of this architecture, one file a suite of apt's sources,
    downloaded into FOLDER by apt's own downloader. It is not checked against the suite's
    Release file (some mirrors serve it a sync behind): it only names candidates, and each
    is then checked by its own file list, from a package that apt does check."""
    architecture = run("dpkg", "--print-architecture", check=True).stdout.strip()
    suites = run("apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(COMPONENT)",
                 "Identifier: Packages").stdout.split("\n")  # fmt: skip
    files = []
    for number, suite in enumerate(sorted({line for line in suites if line.count(" ") == 2})):
        uri, release, component = suite.split(" ")
        url = f"{uri.rstrip('/')}/dists/{release}/{component}/Contents-{architecture}.gz"
        target = folder / f"contents-{number}.gz"
        if run("/usr/lib/apt/apt-helper", "download-file", url, str(target)).returncode == 0:
            files.append(target)
    return files


def indexed(needs: list[str], folders: set[str], files: list[Path]) -> dict[str, list[str]]:
    """Of the libraries NEEDS, those that the Contents index FILES place in one of the loader's
    FOLDERS: the packages that do, for each."""
    patterns = {library: file_names(library) for library in needs}
    wanted = re.compile("|".join(pattern.pattern for pattern in patterns.values()).encode())
    found: dict[str, list[str]] = {}
    for index in files:
        with gzip.open(index) as reader:
            for line in reader:
                # 1.9 million lines for trixie: only a library's is worth decoding.
                name = line.split(None, 1)[0].rpartition(b"/")[2] if b".so" in line else b""
                if not name or not wanted.fullmatch(name):
                    continue
                path, packages = contents_line(line.decode("utf-8", "replace"))
                for library, pattern in patterns.items():
                    if pattern.fullmatch(name.decode()) and shipped(library, [path], folders):
                        found.setdefault(library, []).extend(sorted(packages))
    return found


def failure(library: str, needers: list[Path], why: str) -> str:
    """The one line that ends a build for LIBRARY."""
    return f"error: {needers[0]} needs {library}, and {why}. {elf.ADVICE}"


def locate(needs: dict[str, list[Path]], folders: set[str]) -> dict[str, str]:
    """The Debian package that ships each library of NEEDS; exit with one line if one has
    none, or if the archive cannot be reached."""
    found, unasked = shipping(sorted(needs), folders)
    unshipped = sorted(set(needs) - set(found))
    if unshipped:
        why = unasked or f"no Debian package of {release()} ships it"
        raise SystemExit(failure(unshipped[0], needs[unshipped[0]], why))
    return found


def shipping(libraries: list[str], folders: set[str]) -> tuple[dict[str, str], str | None]:
    """The Debian package that ships each of LIBRARIES, where the archive names one; and why
    the rest could not be looked for, where they could not."""
    suite = release()
    updated = run("apt-get", "-q", "update")
    # apt-get update exits 0 when a suite could not be fetched: its warnings tell.
    if updated.returncode or re.search(r"^[WE]: Failed to fetch", updated.stderr, re.MULTILINE):
        return {}, f"the archive of {suite} cannot be reached"
    found = guessed(libraries, folders)
    rest = sorted(set(libraries) - set(found))
    if rest:
        with tempfile.TemporaryDirectory() as scratch:
            files = contents_index(Path(scratch))
            if not files:
                return (
                    found,
                    f"the Contents index of {suite}, which names its package, cannot be fetched",
                )
            found.update(confirmed(indexed(rest, folders, files), folders))
    return found, None


def install(needs: dict[str, list[Path]], found: dict[str, str]) -> None:
    """Install the packages FOUND with apt-install, check that the loader now finds each
    library, and say so: one line a package."""
    packages = sorted(set(found.values()))
    installed = run("apt-install", "docker.runtime_packages", *packages)
    if installed.returncode != 0:
        sys.stderr.write(installed.stdout + installed.stderr)  # apt-install's line ends it
        raise SystemExit(1)
    elf.machine.cache_clear()  # it read the libraries' paths before they were there
    loader, own = elf.Loader(), elf.machine(Path(sys.executable))
    for library, needers in sorted(needs.items()):
        # The needer is the builder's, not here: a package installs where every file looks.
        if not loader.find(library, elf.Elf(needers[0], own, 0, [])):
            why = f"{found[library]}, which ships it, installs it nowhere the loader looks"
            raise SystemExit(failure(library, needers, why))
    for package in packages:
        libraries = sorted(library for library, name in found.items() if name == package)
        needers = sorted({path for library in libraries for path in needs[library]})
        more = f" and {len(needers) - 1} more" if len(needers) > 1 else ""
        print(
            f"found {', '.join(libraries)} (needed by {needers[0]}{more}) in Debian's "
            f"{package}: installed, and carried into the runtime"
        )


def forget_lists() -> None:
    """Leave no apt lists, as apt-install does."""
    for path in LISTS.iterdir() if LISTS.is_dir() else []:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def write_missing(output: Path, folders: list[Path], root: elf.Root) -> None:
    """Write what FOLDERS miss in ROOT to OUTPUT, as JSON; leave it empty where nothing is."""
    needs = missing(folders, root)
    listed = {library: [str(path) for path in paths] for library, paths in needs.items()}
    output.write_text(json.dumps(listed, indent=1, sort_keys=True) if needs else "")


def install_missing(listing: Path) -> None:
    """Install the package of each library that LISTING (--missing's output) names."""
    text = listing.read_text() if listing.is_file() else ""
    needs = {library: [Path(path) for path in paths]
             for library, paths in (json.loads(text) if text.strip() else {}).items()}  # fmt: skip
    if not needs:
        return
    try:
        install(needs, locate(needs, library_folders(elf.Loader())))
    finally:
        forget_lists()


def which(*names: str) -> None:
    """Print, as JSON, what the archive says of each library that a module opens by name, NAMES
    as the module asked for them (libmagic, libgobject-2.0-0, libvips.so.42): the release, the
    package that ships each, where one does, and why none could be looked for, where none
    could. Nothing is installed."""
    asked = {name: opened(name) for name in names}
    found, unasked = shipping(sorted(set(asked.values())), library_folders(elf.Loader()))
    packages = {name: found[library] for name, library in asked.items() if library in found}
    print(json.dumps({"release": release(), "packages": packages, "unasked": unasked}))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--missing", metavar="OUTPUT", type=Path, help="write what FOLDERs miss")
    mode.add_argument("--install", metavar="MISSING", type=Path, help="install what it names")
    mode.add_argument("--which", action="store_true", help="name the package of each LIBRARY")
    parser.add_argument("--root", default="/", help="the target's root filesystem, as data")
    parser.add_argument("names", nargs="*", help="FOLDERs (--missing), LIBRARYs (--which)")
    options = parser.parse_args(argv)
    if options.which:
        which(*options.names)
    elif options.install:
        install_missing(options.install)
    else:
        folders = [Path(folder) for folder in options.names]
        write_missing(options.missing, folders, elf.Root(options.root, own=tuple(folders)))


if __name__ == "__main__":
    main(sys.argv[1:])
