"""Gather what the app needs at run time into a root filesystem for a `FROM scratch` stage.

Usage: python3 distroless.py [--root TARGET] ROOTFS VENV [PACKAGE ...]

TARGET is the target's root filesystem, mounted as data where the builder is another
architecture's ("/" by default): its files are read, never run. VENV is the builder's own.
It also writes ROOTFS.packages: NAME=VERSION of each Debian package it takes files from,
what a runtime on the base itself must install to hold the same. The target's ldconfig then
writes the loader's cache (ldconfig -r ROOTFS): the one step here that runs its code.

The tree holds no shell, no package manager and no compiler, but all that the app's code,
native code included, needs at run time:
- the interpreter of VENV and its standard library, compiled, without sources, tests, the
  parts that need a display (Tk, IDLE) and ensurepip (which would bring pip back);
- every shared library that the interpreter, the standard library or the venv links, found
  where the loader finds it (RPATH, RUNPATH and $ORIGIN, ld.so.conf), with the rest of its
  Debian package, for what such libraries load by name: OpenSSL's engines, Kerberos' plugins,
  the C library's NSS modules. glibc's gconv modules (8 MB) come when something calls iconv;
- what no linker reports, found where the standard library and the C library look for it:
  the CA certificates where OpenSSL looks, the time zones of zoneinfo's TZPATH, the services
  and protocols of netdb, ldconfig (for ctypes.util.find_library, with its cache), os-release,
  and, with curses, the terminfo database of Debian's ncurses-base (xterm, screen, tmux...);
- each PACKAGE (a Debian package of the builder) with what it links: what no detection can
  know, such as a library that a dependency opens by name;
- for every Debian package that it takes files from, that package's dpkg record, as Google's
  distroless images write them (var/lib/dpkg/status.d/NAME, and NAME.md5sums listing the
  files the tree holds), so that scanners and SBOM tools see each package and its files;
- an unprivileged user and a writable /tmp.

A library that the app's native code needs and the loader finds nowhere ends the build with
one line: libraries.py has installed, in the builder, each one that Debian ships.

It works for any Debian-based Python image: Debian's own python3 in /usr and the official
images' build in /usr/local alike, on any architecture.
"""

import argparse
import compileall
import hashlib
import os
import re
import shutil
import ssl
import sys
import sysconfig
from pathlib import Path

import elf

UID = GID = 10001
# Parts of the standard library that no app in a container uses: the test suite, what needs
# a display, the topics of the interactive help(), ensurepip (which would bring pip back),
# and the static library with its config.
LEFT_OUT = re.compile(
    r"^(__pycache__|config-.*|ensurepip|idlelib|idle_test|site-packages|dist-packages|tests?"
    r"|tkinter|turtle\.py|turtledemo|_tkinter|_test\w*|_ctypes_test|_xxtestfuzz|xxlimited\w*"
    r"|pydoc_data)\b"
)
# What a runtime has no use for in a package: documentation, and programs (no tools at all).
NOT_CARRIED = re.compile(r"^/usr/share/(doc|man|info|lintian|bug|locale)/|/(s?bin|libexec)/")
GCONV = re.compile(r"/gconv/")
# The packages that every Debian system has: carried only where something links them.
BASE_SYSTEM = re.compile(r"^(Priority: required|Essential: yes)$", re.MULTILINE)
# Files that packages make when they are installed, listed by none: the package they belong to.
MADE_BY = {"/etc/ssl/certs/ca-certificates.crt": "ca-certificates"}
DPKG = Path("/var/lib/dpkg")


class Tree:
    """The root filesystem, and where each of its files comes from: the target's SOURCE."""

    def __init__(
        self, root: Path, source: elf.Root, owners: dict[Path, str], records: dict[str, str]
    ) -> None:
        self.root, self.source, self.owners, self.records = root, source, owners, records
        self.contents: dict[str, list[Path]] = {}  # each package: the paths it lists
        for path, package in owners.items():
            self.contents.setdefault(package, []).append(path)
        self.files: dict[Path, str | None] = {}  # each regular file: the package it is of
        self.seen: set[Path] = set()
        self.carried: set[str] = set()

    def canonical(self, path: Path) -> Path:
        """PATH with its folders' links resolved (/lib/x.so -> /usr/lib/x.so), not its own."""
        return self.source.realpath(path.parent) / path.name

    def place(self, path: Path) -> list[Path]:
        """Copy PATH to its own place in the tree: links as links, with what they point to,
        folders with all they hold. Return the regular files that are new to the tree."""
        path = self.canonical(path)
        here = self.source.host(path)
        if path in self.seen or not os.path.lexists(here):
            return []
        self.seen.add(path)
        target = self.root / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if here.is_symlink():
            link = os.readlink(here)
            target.symlink_to(link)
            return self.place(Path(os.path.normpath(path.parent / link)))
        if here.is_dir():
            target.mkdir(exist_ok=True)
            children = sorted(child.name for child in here.iterdir())
            return [new for name in children for new in self.place(path / name)]
        shutil.copy2(here, target)
        self.files[path] = self.owners.get(path) or MADE_BY.get(str(path))
        return [path]

    def carry(self, name: str, gconv: bool = False) -> list[Path]:
        """Place the files of package NAME that a runtime can use (gconv modules only if
        GCONV), and those of what it depends on, but for the base system (Priority: required),
        which comes only where something links it. Return the regular files new to the tree."""
        if name not in self.records:
            raise SystemExit(f"error: there is no package {name} in the builder to carry.")
        package = field(self.records[name], "Package")
        if package in self.carried and not gconv:
            return []
        self.carried.add(package)
        new = []
        for dependency in self.dependencies(package):
            if not BASE_SYSTEM.search(self.records[dependency]):
                new += self.carry(dependency)
        for path in self.contents.get(package, []):
            carried = not self.source.is_dir(path) and not NOT_CARRIED.search(str(path))
            if carried and (gconv or not GCONV.search(str(path))):
                new += self.place(path)
        return new

    def dependencies(self, package: str) -> list[str]:
        """What PACKAGE depends on, as installed: of each choice, the first one installed."""
        record = self.records[package]
        found = []
        for choice in f"{field(record, 'Pre-Depends')},{field(record, 'Depends')}".split(","):
            names = [
                re.match(r"\s*([\w.+-]*)", alternative)[1] for alternative in choice.split("|")
            ]
            found += [name for name in names if name in self.records][:1]
        return found


def packages(source: elf.Root) -> tuple[dict[Path, str], dict[str, str]]:
    """dpkg's database in SOURCE: the package of every file it lists, and every installed
    package's record, by its name and by each name it provides (libmagic1 -> libmagic1t64's)."""
    owners, folders = {}, {}
    dpkg = source.host(DPKG)
    for listing in sorted((dpkg / "info").glob("*.list")):
        package = listing.stem.partition(":")[0]
        for line in listing.read_text().splitlines():
            path = Path(line)
            if path.parent not in folders:
                folders[path.parent] = source.realpath(path.parent)
            owners.setdefault(folders[path.parent] / path.name, package)
    records = {}
    for stanza in (dpkg / "status").read_text().split("\n\n"):
        name = re.search(r"^Package: (\S+)$", stanza, re.MULTILINE)
        if name and re.search(r"^Status: .* installed$", stanza, re.MULTILINE):
            # As in a package's control file, which is what distroless writes: no dpkg state.
            kept = [line for line in stanza.splitlines() if not line.startswith("Status:")]
            record = re.sub(r"\nConffiles:\n( .*\n?)*", "\n", "\n".join(kept) + "\n")
            records[name[1]] = record
            for provided in re.findall(r"([\w.+-]+)(?: \([^)]*\))?", field(record, "Provides")):
                records.setdefault(provided, record)
    return owners, records


def field(record: str, name: str) -> str:
    found = re.search(rf"^{name}: (.*)$", record, re.MULTILINE)
    return found[1] if found else ""


def interpreter(venv: Path, tree: Tree) -> Path:
    """Place the interpreter that VENV runs, and the links that name it (python3 -> python3.13)."""
    path = venv / "bin" / "python"
    while path.is_symlink() and path.is_relative_to(venv):
        path = Path(os.path.normpath(path.parent / os.readlink(path)))
    tree.place(path)
    return path


def standard_library(tree: Tree) -> Path:
    """Place the standard library, without what no app uses; its sources become bytecode,
    compiled here: the builder runs the target's Python version, and bytecode is the same on
    every architecture."""
    stdlib = Path(sysconfig.get_path("stdlib"))
    here = tree.source.host(stdlib)
    for folder, names, files in os.walk(here):
        names[:] = [name for name in names if not LEFT_OUT.match(name)]
        for name in files:
            if not LEFT_OUT.match(name):
                source = stdlib / Path(folder, name).relative_to(here)
                target = tree.root / source.relative_to("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder, name), target)  # a link becomes what it names
                tree.files[source] = tree.owners.get(tree.canonical(source))
    # Bytecode beside each module (legacy layout) lets Python import it without the source.
    target = tree.root / stdlib.relative_to("/")
    # ddir: tracebacks name the module where it runs (/usr/lib/...), not where it was compiled.
    compileall.compile_dir(target, ddir=stdlib, quiet=1, legacy=True, workers=0, optimize=0)
    for source in target.rglob("*.py"):
        source.unlink()
        path = Path("/") / source.relative_to(tree.root)
        tree.files[path.with_suffix(".pyc")] = tree.files.pop(path, None)
    return stdlib


def unlinked(tree: Tree) -> None:
    """Place what native code reads but no linker reports, where its readers look for it."""
    paths = ssl.get_default_verify_paths()
    # OpenSSL's own folder: its CA file and folder (Python's ssl loads them), and its config.
    tree.place(Path(paths.openssl_cafile))
    tree.place(Path(paths.openssl_capath))
    tree.place(Path(paths.openssl_cafile).parent / "openssl.cnf")
    # zoneinfo's time zones: the first folder of TZPATH that exists.
    zones = [Path(folder) for folder in (sysconfig.get_config_var("TZPATH") or "").split(":")]
    found = (folder for folder in zones if tree.source.is_dir(folder))
    tree.place(next(found, Path("/usr/share/zoneinfo")))
    # netdb (socket.getservbyname, getprotobyname), and which distribution the records are of.
    for path in ("/etc/services", "/etc/protocols", "/etc/os-release"):
        tree.place(Path(path))
    # ctypes.util.find_library runs `/sbin/ldconfig -p`, which reads the cache made after.
    for path in ("/sbin/ldconfig", "/etc/ld.so.conf", "/etc/ld.so.conf.d"):
        tree.place(Path(path))
    # curses (the standard library's _curses) reads the terminal's description by its name,
    # $TERM, from the terminfo database: Debian's ncurses-base (xterm, screen, tmux, linux...),
    # at its own paths, which are where Debian's libtinfo looks.
    curses = any(path.name.startswith("_curses.") for path in tree.files)
    if curses and "ncurses-base" in tree.records:
        tree.carry("ncurses-base")


def shared_libraries(tree: Tree, venv: Path, python: Path, extra: list[str]) -> None:
    """Place every library that an ELF file of the tree or the venv links, with its package.
    PYTHON, the interpreter, says the target's architecture."""
    source = tree.source
    loader, own = elf.Loader(source), source.machine(python)
    files = list(venv.rglob("*"))
    # What a wheel preloads by path (nvidia's, for torch), and what the host mounts at run time.
    provided = {path.name for path in files} | elf.host_libraries()
    # Another machine's files never load there (a wheel may ship some): what they need is moot.
    pending = [path for path in [*tree.files, *files] if source.machine(path) == own]
    for package in extra:
        pending += tree.carry(package)
    gconv, done = False, set()
    while pending:
        path = pending.pop()
        if path in done or not elf.is_elf(source.host(path)):
            continue
        done.add(path)
        found = source.read(path)
        gconv = gconv or "iconv_open" in found.imports
        if found.interpreter:
            pending += tree.place(Path(found.interpreter))
        for name in found.needed:
            library = loader.find(name, found)
            if library is None:
                unfound(tree, path, name, provided)
                continue
            resolved = source.realpath(library)
            if resolved.is_relative_to(venv):  # a wheel's own: the venv's layer has it
                pending.append(resolved)
                continue
            pending += tree.place(library)
            package = tree.owners.get(tree.canonical(resolved))
            if package:
                pending += tree.carry(package)
        if not pending and gconv:  # iconv opens gconv modules by name: glibc's, as it has them
            libc = source.realpath(loader.find("libc.so.6", found) or Path("/lib/libc.so.6"))
            pending += tree.carry(tree.owners.get(tree.canonical(libc), "libc6"), gconv=True)
            gconv = False


def unfound(tree: Tree, path: Path, name: str, provided: set[str]) -> None:
    """A library NAME that PATH needs and the loader finds nowhere. Where PATH is the app's
    (the venv's, an interpreter built into /usr/local), libraries.py has installed each one
    that Debian ships, so the app would fail: that ends the build. Where PATH is a Debian
    package's, dpkg's dependencies have it all, but for a plugin's optional need: a warning."""
    if name in provided:
        return
    if tree.owners.get(tree.canonical(path)):
        print(f"warning: {path} needs {name}, which is nowhere the loader looks", file=sys.stderr)
        return
    raise SystemExit(f"error: {path} needs {name}, which is nowhere the loader looks. {elf.ADVICE}")


def system_files(tree: Tree) -> None:
    """An unprivileged user, a writable /tmp, the engine's mount points."""
    root = tree.root
    for link in tree.source.host("/").iterdir():  # merged /usr: /lib -> usr/lib, /bin -> usr/bin
        if link.is_symlink() and not (root / link.name).exists():
            (root / link.name).symlink_to(os.readlink(link))
    etc = root / "etc"
    users = f"root:x:0:0:root:/root:/sbin/nologin\napp:x:{UID}:{GID}::/home/app:/sbin/nologin\n"
    (etc / "passwd").write_text(users)
    (etc / "group").write_text(f"root:x:0:\napp:x:{GID}:\n")
    home = root / "home" / "app"
    home.mkdir(parents=True)
    os.chown(home, UID, GID)
    tmp = root / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    # Made here, so that a RUN in the scratch stage finds them and its layer stays empty.
    for folder in ("dev", "proc", "sys"):
        (root / folder).mkdir()
    for name in ("hosts", "hostname", "resolv.conf"):
        (etc / name).touch()


def records(tree: Tree, stanzas: dict[str, str]) -> None:
    """The dpkg record of each package that the tree holds files of, with those files' md5;
    and, beside the tree, the list of those packages with their versions."""
    held: dict[str, list[Path]] = {}
    for path, package in tree.files.items():
        if package:
            held.setdefault(package, []).append(path)
    folder = tree.root / "var/lib/dpkg/status.d"
    folder.mkdir(parents=True)
    for package, paths in sorted(held.items()):
        (folder / package).write_text(stanzas.get(package, f"Package: {package}\n"))
        sums = []
        for path in sorted(paths):
            digest = hashlib.md5((tree.root / path.relative_to("/")).read_bytes()).hexdigest()  # noqa: S324
            sums.append(f"{digest}  {path.relative_to('/')}\n")
        (folder / f"{package}.md5sums").write_text("".join(sums))
    versions = [
        re.search(r"^Version: (\S+)$", stanzas.get(name, ""), re.MULTILINE) for name in held
    ]
    listed = [
        f"{name}={version[1]}\n" for name, version in zip(held, versions, strict=True) if version
    ]
    tree.root.with_suffix(".packages").write_text("".join(sorted(listed)))


def reproducible(root: Path) -> None:
    """Set every time in the tree to the epoch: the same files then make the same layer."""
    for path in sorted(root.rglob("*"), reverse=True):  # a folder after what it holds
        os.utime(path, (0, 0), follow_symlinks=False)
    os.utime(root, (0, 0))


def main(rootfs: str, venv: str, *extra: str, root: str = "/") -> None:
    source = elf.Root(root, own=(Path(venv),))
    owners, stanzas = packages(source)
    tree = Tree(Path(rootfs), source, owners, stanzas)
    python = interpreter(Path(venv), tree)
    standard_library(tree)
    unlinked(tree)
    shared_libraries(tree, Path(venv), python, list(extra))
    system_files(tree)
    records(tree, stanzas)
    reproducible(tree.root)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--root", default="/", help="the target's root filesystem")
    parser.add_argument("rootfs")
    parser.add_argument("venv")
    parser.add_argument("packages", nargs="*")
    options = parser.parse_args()
    main(options.rootfs, options.venv, *options.packages, root=options.root)
