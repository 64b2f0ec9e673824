"""Gather what the app needs at run time into a root filesystem for a `FROM scratch` stage.

Usage: python3 distroless.py ROOTFS VENV

The tree holds the interpreter of VENV, the parts of its standard library that a
command-line app can need (compiled, without sources), the shared libraries that
all of these link, CA certificates and an unprivileged user: no shell, no package
manager, no compiler. It works for any Debian-based Python image: Debian's own
python3 in /usr and the official images' build in /usr/local alike.
"""

import compileall
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

UID = GID = 10001
# Development, GUI and terminal parts of the standard library, which the app never imports.
UNNEEDED = re.compile(
    r"^(__pycache__|config-.*|curses|dbm|distutils|ensurepip|idlelib|idle_test|lib2to3|pydoc_data"
    r"|site-packages|dist-packages|tests?|tkinter|turtledemo|venv"
    r"|_curses|_curses_panel|_dbm|_gdbm|_tkinter|_test\w*|_ctypes_test|_xxtestfuzz|xxlimited\w*"
    r"|nis|ossaudiodev|readline|turtle)\b"
)
# A line of ldd's output names a library it found as "/path/to/lib.so (0x...)".
LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)$", re.MULTILINE)


def copy(src: Path, rootfs: Path) -> None:
    """Copy SRC to the same path under ROOTFS, following every link on the way."""
    dst = rootfs / src.relative_to("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def interpreter(venv: Path, rootfs: Path) -> None:
    """Copy the interpreter that VENV runs, and the links that name it (python3 -> python3.11)."""
    path = venv / "bin" / "python"
    while path.is_symlink():
        target = os.readlink(path)
        if not path.is_relative_to(venv):
            link = rootfs / path.relative_to("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
        path = Path(os.path.normpath(path.parent / target))
    copy(path, rootfs)


def standard_library(rootfs: Path) -> None:
    """Copy the standard library without the unneeded parts, then keep bytecode only."""
    stdlib = Path(sysconfig.get_path("stdlib"))

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {name for name in names if UNNEEDED.match(name)}

    target = rootfs / stdlib.relative_to("/")
    shutil.copytree(stdlib, target, ignore=ignore)
    # Bytecode beside each module (legacy layout) lets Python import it without the source.
    compileall.compile_dir(target, quiet=1, legacy=True, workers=0, optimize=0)
    for source in target.rglob("*.py"):
        source.unlink()


def shared_libraries(rootfs: Path, venv: Path) -> None:
    """Copy every shared library that the interpreter or an extension module links."""
    files = [*rootfs.rglob("*"), *venv.rglob("*")]
    binaries = [path for path in files if path.is_file() and not path.is_symlink() and is_elf(path)]
    needed = set()
    for binary in binaries:
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
        needed.update(LDD_PATH.findall(ldd.stdout))
    for library in sorted(needed):
        if not (rootfs / library.lstrip("/")).exists():
            copy(Path(library), rootfs)
    # The loader finds libraries outside its default folders (/usr/local/lib) through this cache.
    shutil.copytree("/etc/ld.so.conf.d", rootfs / "etc/ld.so.conf.d", dirs_exist_ok=True)
    copy(Path("/etc/ld.so.conf"), rootfs)
    subprocess.run(["ldconfig", "-r", rootfs], check=True)


def is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def system_files(rootfs: Path) -> None:
    """CA certificates, an unprivileged user, a writable /tmp, and the engine's mount points."""
    copy(Path("/etc/ssl/certs/ca-certificates.crt"), rootfs)
    etc = rootfs / "etc"
    users = f"root:x:0:0:root:/root:/sbin/nologin\napp:x:{UID}:{GID}::/home/app:/sbin/nologin\n"
    (etc / "passwd").write_text(users)
    (etc / "group").write_text(f"root:x:0:\napp:x:{GID}:\n")
    home = rootfs / "home" / "app"
    home.mkdir(parents=True)
    os.chown(home, UID, GID)
    tmp = rootfs / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    # Made here, so that a RUN in the scratch stage finds them and its layer stays empty.
    for folder in ("dev", "proc", "sys"):
        (rootfs / folder).mkdir()
    for name in ("hosts", "hostname", "resolv.conf"):
        (etc / name).touch()


def reproducible(rootfs: Path) -> None:
    """Set every time in the tree to the epoch: the same files then make the same layer."""
    for path in sorted(rootfs.rglob("*"), reverse=True):  # a folder after what it holds
        os.utime(path, (0, 0), follow_symlinks=False)
    os.utime(rootfs, (0, 0))


def main(rootfs: str, venv: str) -> None:
    root = Path(rootfs)
    interpreter(Path(venv), root)
    standard_library(root)
    system_files(root)
    shared_libraries(root, Path(venv))
    reproducible(root)


if __name__ == "__main__":
    main(*sys.argv[1:])
