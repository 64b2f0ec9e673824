"""Cross builds: another architecture's image, made on the engine's own CPU.

Emulating a whole build of arm64 on amd64 costs 17 times the native build, yet almost none of
it needs the target's CPU: wheels are files, bytecode is the same on every machine, strip
reads any ELF file (binutils for the target), and the distroless tree is read off the target's
files, mounted as data. So the Dockerfile's builder runs on the engine's platform, with the
same base there, and only what must run on the target does, under emulation: installing its
Debian packages, the sdists (the dependencies that have no wheel for it, read off
poetry.lock), the loader's cache, the suite in the image and the smoke tests. 64-bit targets
only: a venv is laid out by the word size of the Python that makes it. docker.cross=false
emulates every step, as a check of the same image.
"""

import re
import tomllib
from pathlib import Path

from invoke import Context

from shipyard.tooling import bootstrap, platforms
from shipyard.tooling.project import NAME

# binutils for each 64-bit Debian architecture, by the GNU name of its target: the package
# and its strip. The engine's own architecture needs no more than `binutils`.
STRIPS = {
    "amd64": ("binutils-x86-64-linux-gnu", "x86_64-linux-gnu-strip"),
    "arm64": ("binutils-aarch64-linux-gnu", "aarch64-linux-gnu-strip"),
    "ppc64el": ("binutils-powerpc64le-linux-gnu", "powerpc64le-linux-gnu-strip"),
    "riscv64": ("binutils-riscv64-linux-gnu", "riscv64-linux-gnu-strip"),
    "s390x": ("binutils-s390x-linux-gnu", "s390x-linux-gnu-strip"),
}
# What wheels call each Debian architecture (the platform tags' machine).
MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "ppc64el": "ppc64le", "riscv64": "riscv64",
            "s390x": "s390x"}  # fmt: skip


def build_args(c: Context, platform: str, python: str) -> dict[str, str]:
    """The Dockerfile's arguments that place the build of PLATFORM's image: its base; its
    builder, on the engine's platform with its own base where it can cross, on PLATFORM
    otherwise; and the sdists, which build on PLATFORM (Python PYTHON, "3.13")."""
    base = bootstrap.base(c, platform)
    builder, image = platform, base
    if can_cross(c, platform):
        own = platforms.own(c)
        own_base = bootstrap.base(c, own)
        if own_base.startswith(f"{NAME}-base:") == base.startswith(f"{NAME}-base:"):
            builder, image = own, own_base
        else:  # a venv made on one would name an interpreter that the other has elsewhere
            print(f"{platform}: emulating its builder, as {base} and {own}'s {own_base} differ")
    target = platforms.debian(platform)
    package, program = STRIPS[target] if builder != platform else ("binutils", "strip")
    return {
        "BASE_IMAGE": base,
        "BUILDER_PLATFORM": builder,
        "BUILD_IMAGE": image,
        "STRIP_PACKAGE": package,
        "STRIP_PROGRAM": program,
        "SDISTS": " ".join(sdists(Path("poetry.lock"), Path("requirements.txt"), target, python)),
    }


def can_cross(c: Context, platform: str) -> bool:
    """Whether PLATFORM is another 64-bit architecture than the engine's, and docker.cross on."""
    own = platforms.own(c)
    return (
        bool(c.docker.cross)
        and platform != own
        and all(platforms.debian(each) in STRIPS for each in (own, platform))
    )


def sdists(lock: Path, requirements: Path, architecture: str, python: str) -> list[str]:
    """The requirements that LOCK has no wheel of for ARCHITECTURE (Debian's name) and Python
    PYTHON ("3.13"): they build from their sdists, on the target."""
    pin = re.compile(r"^([A-Za-z0-9][\w.-]*)==(\S+?)\s", re.MULTILINE)
    pinned = {_normalized(name): version for name, version in pin.findall(requirements.read_text())}
    machine = MACHINES.get(architecture, architecture)
    found = []
    for package in tomllib.loads(lock.read_text()).get("package", []):
        name = _normalized(package["name"])
        if pinned.get(name) != package["version"]:
            continue
        wheels = [
            item["file"] for item in package.get("files", []) if item["file"].endswith(".whl")
        ]
        if not any(fits(wheel, machine, python) for wheel in wheels):
            found.append(name)
    return sorted(found)


def fits(wheel: str, machine: str, python: str) -> bool:
    """Whether the wheel file WHEEL installs on CPython PYTHON ("3.13") with glibc, on MACHINE
    (x86_64, aarch64): its platform is any, or manylinux or linux for MACHINE; its Python is 3
    and not newer, and its ABI none, abi3, or this very CPython's."""
    *_, pythons, abis, tags = wheel.removesuffix(".whl").split("-")
    minor = int(python.split(".")[1])
    machine_fits = any(
        tag == "any" or re.fullmatch(rf"(manylinux\w*|linux)_{machine}", tag)
        for tag in tags.split(".")
    )

    def python_fits(tag: str, abi: str) -> bool:
        found = re.fullmatch(r"(py|cp)3(\d*)", tag)
        if not found:
            return False
        kind, version = found[1], int(found[2] or 0)
        if abi == "none":
            return version <= minor
        if abi == "abi3":
            return kind == "cp" and version <= minor
        return kind == "cp" and version == minor and abi == f"cp3{minor}"

    pairs = [(tag, abi) for tag in pythons.split(".") for abi in abis.split(".")]
    return machine_fits and any(python_fits(tag, abi) for tag, abi in pairs)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
