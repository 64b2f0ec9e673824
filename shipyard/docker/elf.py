"""ELF files, read with the standard library alone: what each needs, where the loader finds it
(Loader, shared by distroless.py and libraries.py), and whether it loads.

The builder runs on the engine's own CPU, also for another architecture's image: the target's
root filesystem is then data, mounted in a folder (Root), whose programs never run here. So
nothing runs `ldd` (the target's own loader); and under emulation, qemu's 4 KB pages would
hide what a 64 KB-page arm64 kernel refuses. Reading the files works the same everywhere.
"""

import functools
import glob
import hashlib
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"\x7fELF"
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_PHDR = 1, 2, 3, 6
DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 1, 5, 14, 15, 29
# The dynamic entries that hold addresses, which the loader reads without a check.
DT_ADDRESSES = {4, 5, 6, 7, 12, 13, 17, 23, 25, 26, 36,
                0x6FFFFEF5, 0x6FFFFFF0, 0x6FFFFFFC, 0x6FFFFFFE}  # fmt: skip
SHT_DYNSYM, SHT_NOBITS, SHF_ALLOC = 11, 8, 0x2
# The largest page of each architecture (e_machine): what its segments must be aligned to.
PAGE = {62: 0x1000, 3: 0x1000, 22: 0x1000, 243: 0x1000,
        183: 0x10000, 40: 0x10000, 20: 0x10000, 21: 0x10000}  # fmt: skip


# What a build says to do about a library that the loader finds nowhere.
ADVICE = (
    "Name the package that provides it in docker.runtime_packages "
    "(INVOKE_DOCKER_RUNTIME_PACKAGES), a base image that has it in docker.base "
    "(INVOKE_DOCKER_BASE), or, where the host mounts it at run time (NVIDIA's libcuda.so.1), "
    "the library in docker.host_libraries (INVOKE_DOCKER_HOST_LIBRARIES)."
)


def host_libraries() -> set[str]:
    """docker.host_libraries, which the build passes on: what the host provides at run time."""
    return set(os.environ.get("HOST_LIBRARIES", "").split())


@dataclass
class Segment:
    kind: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass
class Elf:
    """One ELF file: its segments, its dynamic entries and its sections."""

    path: Path
    machine: int
    size: int
    segments: list[Segment]
    interpreter: str | None = None
    needed: list[str] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    soname: str | None = None
    addresses: list[int] = field(default_factory=list)  # of the dynamic entries that hold one
    sections: list[str] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)  # the dynamic symbols it takes from others
    loaded: dict[str, tuple[int, str]] = field(default_factory=dict)  # section: address, digest

    def symbols_to_strip(self) -> bool:
        """Whether stripping could take anything: a symbol table or debugging sections."""
        return any(
            name in {".symtab", ".strtab"} or name.startswith(".debug") for name in self.sections
        )

    def load_problems(self) -> list[str]:
        """What glibc's loader would refuse, or trust and so crash on (elf/dl-load.c)."""
        page = PAGE.get(self.machine, 0x10000)
        loads = [segment for segment in self.segments if segment.kind == PT_LOAD]
        problems = [] if loads else ["no load segment"]
        previous = None
        for segment in loads:
            where = f"load segment at {segment.vaddr:#x}"
            if (segment.vaddr - segment.offset) % page:
                problems.append(f"{where}: address/offset not page-aligned")
            if segment.align > 1 and (
                segment.align % page or (segment.vaddr - segment.offset) % segment.align
            ):
                problems.append(f"{where}: address/offset not aligned as it says (glibc < 2.35)")
            if segment.offset + segment.filesz > self.size:
                problems.append(f"{where}: past the end of the file")
            if segment.filesz > segment.memsz:
                problems.append(f"{where}: larger in the file than in memory")
            if previous and segment.vaddr < previous.vaddr:
                problems.append(f"{where}: not in ascending order")
            elif previous and _overlap(previous, segment, page):
                problems.append(f"{where}: shares a page with the one before, at another offset")
            previous = segment
        for segment in self.segments:
            if segment.kind in (PT_DYNAMIC, PT_PHDR) and not self.backed(
                segment.vaddr, segment.filesz
            ):
                problems.append(f"segment {segment.kind} outside the load segments' file data")
        problems += [f"dynamic address {address:#x} outside the file's data"
                     for address in self.addresses if not self.backed(address)]  # fmt: skip
        return problems

    def backed(self, address: int, length: int = 1) -> bool:
        """Whether the loader maps LENGTH bytes at ADDRESS from the file."""
        return any(
            segment.kind == PT_LOAD and segment.vaddr <= address
            and address + length <= segment.vaddr + segment.filesz
            for segment in self.segments
        )  # fmt: skip


def _overlap(first: Segment, second: Segment, page: int) -> bool:
    """Whether SECOND starts on a page that FIRST ends on, mapped from another file offset."""
    shared = second.vaddr // page * page < first.vaddr + first.memsz
    return shared and second.vaddr - second.offset != first.vaddr - first.offset


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(4) == MAGIC
    except OSError:
        return False


@functools.cache
def machine(path: Path) -> int | None:
    """The architecture (e_machine) of the ELF file at PATH; None where there is none."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != MAGIC:
        return None
    return struct.unpack_from("<H" if header[5] == 1 else ">H", header, 18)[0]


def read(path: Path, contents: bool = False) -> Elf:
    """Read PATH, which must be an ELF file (see is_elf); with CONTENTS, digest what it loads."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _Reader(path, data, contents).elf()


class _Reader:
    """The ELF structures of DATA, in its class (32 or 64 bits) and byte order."""

    def __init__(self, path: Path, data: mmap.mmap, contents: bool) -> None:
        self.path, self.data, self.contents = path, data, contents
        self.wide = data[4] == 2  # ELFCLASS64
        self.order = "<" if data[5] == 1 else ">"  # ELFDATA2LSB

    def unpack(self, layout: str, offset: int) -> tuple:
        return struct.unpack_from(self.order + layout, self.data, offset)

    def string(self, offset: int) -> str:
        end = self.data.find(b"\0", offset)
        return self.data[offset:end].decode("utf-8", "replace")

    def elf(self) -> Elf:
        (machine,) = self.unpack("H", 18)
        if self.wide:
            phoff, shoff = self.unpack("QQ", 32)
            phentsize, phnum, shentsize, shnum, shstrndx = self.unpack("HHHHH", 54)
        else:
            phoff, shoff = self.unpack("II", 28)
            phentsize, phnum, shentsize, shnum, shstrndx = self.unpack("HHHHH", 42)
        segments = [self.segment(phoff + index * phentsize) for index in range(phnum)]
        elf = Elf(self.path, machine, len(self.data), segments)
        for segment in segments:
            if segment.kind == PT_INTERP:
                elf.interpreter = self.string(segment.offset)
            elif segment.kind == PT_DYNAMIC and segment.offset + segment.filesz <= elf.size:
                self.dynamic(elf, segment)
        if shoff:
            self.sections(elf, shoff, shentsize, shnum, shstrndx)
        return elf

    def segment(self, offset: int) -> Segment:
        if self.wide:
            kind, _, p_offset, vaddr, _, filesz, memsz, align = self.unpack("IIQQQQQQ", offset)
        else:
            kind, p_offset, vaddr, _, filesz, memsz, _, align = self.unpack("IIIIIIII", offset)
        return Segment(kind, p_offset, vaddr, filesz, memsz, align)

    def file_offset(self, elf: Elf, vaddr: int) -> int | None:
        """Where the byte that the loader maps at VADDR lies in the file."""
        for segment in elf.segments:
            if segment.kind == PT_LOAD and segment.vaddr <= vaddr < segment.vaddr + segment.filesz:
                return vaddr - segment.vaddr + segment.offset
        return None

    def dynamic(self, elf: Elf, segment: Segment) -> None:
        layout, size = ("qQ", 16) if self.wide else ("iI", 8)
        entries = []
        for offset in range(segment.offset, segment.offset + segment.filesz - size + 1, size):
            tag, value = self.unpack(layout, offset)
            if tag == 0:  # DT_NULL ends the table
                break
            entries.append((tag, value))
        elf.addresses = [value for tag, value in entries if tag in DT_ADDRESSES]
        strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
        base = self.file_offset(elf, strtab) if strtab is not None else None
        if base is None:
            return
        for tag, value in entries:
            if tag == DT_NEEDED:
                elf.needed.append(self.string(base + value))
            elif tag == DT_SONAME:
                elf.soname = self.string(base + value)
            elif tag == DT_RPATH:
                elf.rpath += self.string(base + value).split(":")
            elif tag == DT_RUNPATH:
                elf.runpath += self.string(base + value).split(":")

    def sections(self, elf: Elf, shoff: int, size: int, count: int, names: int) -> None:
        if not count:  # extended numbering: the count is in the first header
            count = self.section(shoff)[5]
        headers = [self.section(shoff + index * size) for index in range(count)]
        if not headers or names >= len(headers):
            return
        strings = headers[names][4]
        elf.sections = [self.string(strings + header[0]) for header in headers]
        for name, (_, kind, flags, address, offset, length, link, entsize) in zip(
            elf.sections, headers, strict=True
        ):
            if kind == SHT_DYNSYM and entsize:
                elf.imports = self.imports(offset, length, entsize, headers[link][4])
            if self.contents and flags & SHF_ALLOC and kind != SHT_NOBITS:
                content = hashlib.sha256(self.data[offset : offset + length]).hexdigest()
                elf.loaded[f"{name}@{address:#x}"] = (address, content)

    def section(self, offset: int) -> tuple[int, ...]:
        """A section header: name, type, flags, address, offset, size, link, entry size."""
        if self.wide:
            name, kind, flags, addr, offset_, size, link, _, _, entsize = self.unpack(
                "IIQQQQIIQQ", offset
            )
        else:
            name, kind, flags, addr, offset_, size, link, _, _, entsize = self.unpack(
                "IIIIIIIIII", offset
            )
        return name, kind, flags, addr, offset_, size, link, entsize

    def imports(self, offset: int, length: int, entsize: int, strings: int) -> set[str]:
        """The undefined, named symbols of a dynamic symbol table."""
        layout, shndx_at = ("IBBHQQ", 3) if self.wide else ("IIIBBH", 5)
        found = set()
        for entry in range(offset, offset + length, entsize):
            fields = self.unpack(layout, entry)
            if fields[0] and fields[shndx_at] == 0:  # SHN_UNDEF: defined elsewhere
                found.add(self.string(strings + fields[0]))
        return found


class Root:
    """The target's root filesystem as the builder sees it: mounted in FOLDER ("/" where the
    builder is the target), with the builder's OWN folders over it (the venv, made here).
    Paths are the target's (/usr/lib/x.so); host() says where each one is here, and
    realpath() resolves links as the target would, an absolute link inside the root."""

    def __init__(self, folder: str | Path = "/", own: tuple[Path, ...] = ()) -> None:
        self.folder, self.own = Path(folder), own

    def host(self, path: str | Path) -> Path:
        path = Path(path)
        if self.folder == Path("/") or any(path.is_relative_to(mine) for mine in self.own):
            return path
        return self.folder / path.relative_to("/")

    def realpath(self, path: str | Path) -> Path:
        if self.folder == Path("/"):
            return Path(os.path.realpath(path))
        resolved, pending, links = Path("/"), list(Path(path).parts[1:]), 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                resolved = resolved.parent
                continue
            here = self.host(resolved / part)
            if not here.is_symlink() or links == 40:  # where the kernel gives up on a loop
                resolved = resolved / part
                continue
            links += 1
            link = Path(os.readlink(here))
            pending = [*link.parts[1 if link.is_absolute() else 0 :], *pending]
            resolved = Path("/") if link.is_absolute() else resolved
        return resolved

    def is_dir(self, path: str | Path) -> bool:
        return self.host(self.realpath(path)).is_dir()

    def machine(self, path: str | Path) -> int | None:
        return machine(self.host(self.realpath(path)))

    def read(self, path: str | Path, contents: bool = False) -> Elf:
        """The ELF file at the target's PATH, named by that path (for $ORIGIN)."""
        found = read(self.host(self.realpath(path)), contents)
        found.path = Path(path)
        return found


class Loader:
    """Finds shared libraries where glibc's loader does, in ROOT: RPATH, RUNPATH, ld.so.conf,
    and the default folders."""

    def __init__(self, root: Root | None = None) -> None:
        self.root = root or Root()
        self.folders = [
            *self.configured("/etc/ld.so.conf"),
            "/lib",
            "/usr/lib",
            "/lib64",
            "/usr/lib64",
        ]

    def configured(self, conf: str) -> list[str]:
        folders, here = [], self.root.host(conf)
        for line in here.read_text().splitlines() if here.is_file() else []:
            line = line.partition("#")[0].strip()
            if line.startswith("include "):
                pattern = str(self.root.host(line.split(None, 1)[1]))
                for included in sorted(glob.glob(pattern)):
                    folders += self.configured("/" + os.path.relpath(included, self.root.folder))
            elif line:
                folders.append(line)
        return folders

    def find(self, name: str, needer: Elf) -> Path | None:
        origin = str(needer.path.parent)
        rpath = [] if needer.runpath else needer.rpath
        for folder in [*rpath, *needer.runpath, *self.folders]:
            candidate = Path(folder.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)) / name
            if self.root.machine(candidate) == needer.machine:
                return candidate
        return None
