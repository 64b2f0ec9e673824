"""ELF files, read with the standard library alone: what each one needs, and whether it loads.

The builder runs under emulation for a foreign architecture, where running `ldd` (that is,
the target's own loader) may crash; reading the files themselves works the same everywhere.
"""

import functools
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"\x7fELF"
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 1, 5, 14, 15, 29
SHT_DYNSYM = 11
PAGE = 4096  # the smallest page size of every architecture we build for


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
    """One ELF file: its segments, its dynamic entries and its section names."""

    path: Path
    machine: int
    segments: list[Segment]
    interpreter: str | None = None
    needed: list[str] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    soname: str | None = None
    sections: list[str] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)  # the dynamic symbols it takes from others

    def symbols_to_strip(self) -> bool:
        """Whether stripping could take anything: a symbol table or debugging sections."""
        return any(name == ".symtab" or name.startswith(".debug") for name in self.sections)

    def load_problems(self) -> list[str]:
        """What glibc's loader (elf/dl-load.c) would reject in this file's load segments."""
        problems = []
        loads = [segment for segment in self.segments if segment.kind == PT_LOAD]
        if not loads:
            problems.append("no load segment")
        for segment in loads:
            if (segment.vaddr - segment.offset) % PAGE:
                problems.append("load segment address/offset not page-aligned")
            elif segment.align and (
                segment.align % PAGE or (segment.vaddr - segment.offset) % segment.align
            ):
                problems.append("load segment address/offset not aligned to its own alignment")
            if segment.filesz > segment.memsz:
                problems.append("load segment larger in the file than in memory")
        if [segment.vaddr for segment in loads] != sorted(segment.vaddr for segment in loads):
            problems.append("load segments not in ascending order")
        dynamic = [segment for segment in self.segments if segment.kind == PT_DYNAMIC]
        if dynamic and not any(_inside(dynamic[0], segment) for segment in loads):
            problems.append("dynamic section outside every load segment")
        return problems

    def linkage(self) -> tuple:
        """What the loader reads to link the file: stripping must leave it as it was."""
        return (self.needed, self.rpath, self.runpath, self.soname, sorted(self.imports))


def _inside(part: Segment, whole: Segment) -> bool:
    return whole.offset <= part.offset and part.offset + part.filesz <= whole.offset + whole.filesz


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


def read(path: Path) -> Elf:
    """Read PATH, which must be an ELF file (see is_elf)."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _Reader(path, data).elf()


class _Reader:
    """The ELF structures of DATA, in its class (32 or 64 bits) and byte order."""

    def __init__(self, path: Path, data: mmap.mmap) -> None:
        self.path, self.data = path, data
        self.wide = data[4] == 2  # ELFCLASS64
        self.order = "<" if data[5] == 1 else ">"  # ELFDATA2LSB

    def unpack(self, layout: str, offset: int) -> tuple:
        return struct.unpack_from(self.order + layout, self.data, offset)

    def string(self, offset: int) -> str:
        end = self.data.find(b"\0", offset)
        return self.data[offset:end].decode("utf-8", "replace")

    def elf(self) -> Elf:
        if self.wide:
            (machine,) = self.unpack("H", 18)
            phoff, shoff = self.unpack("QQ", 32)
            phentsize, phnum, shentsize, shnum, shstrndx = self.unpack("HHHHH", 54)
        else:
            (machine,) = self.unpack("H", 18)
            phoff, shoff = self.unpack("II", 28)
            phentsize, phnum, shentsize, shnum, shstrndx = self.unpack("HHHHH", 42)
        segments = [self.segment(phoff + index * phentsize) for index in range(phnum)]
        elf = Elf(self.path, machine, segments)
        for segment in segments:
            if segment.kind == PT_INTERP:
                elf.interpreter = self.string(segment.offset)
            elif segment.kind == PT_DYNAMIC:
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
        for offset in range(segment.offset, segment.offset + segment.filesz, size):
            tag, value = self.unpack(layout, offset)
            if tag == 0:  # DT_NULL ends the table
                break
            entries.append((tag, value))
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
        headers = [self.section(shoff + index * size) for index in range(count)]
        if not count and shoff:  # extended numbering: the count is in the first header
            first = self.section(shoff)
            headers = [self.section(shoff + index * size) for index in range(first[3])]
        if not headers or names >= len(headers):
            return
        strings = headers[names][2]
        elf.sections = [self.string(strings + header[0]) for header in headers]
        for _, kind, offset, length, link, entsize in headers:
            if kind == SHT_DYNSYM and entsize:
                elf.imports = self.imports(offset, length, entsize, headers[link][2])

    def section(self, offset: int) -> tuple[int, int, int, int, int, int]:
        """A section header: name, type, file offset, size, link and entry size."""
        if self.wide:
            name, kind, _, _, offset_, size, link, _, _, entsize = self.unpack("IIQQQQIIQQ", offset)
        else:
            name, kind, _, _, offset_, size, link, _, _, entsize = self.unpack("IIIIIIIIII", offset)
        return name, kind, offset_, size, link, entsize

    def imports(self, offset: int, length: int, entsize: int, strings: int) -> set[str]:
        """The undefined, named symbols of a dynamic symbol table."""
        layout, shndx_at = ("IBBHQQ", 3) if self.wide else ("IIIBBH", 5)
        found = set()
        for entry in range(offset, offset + length, entsize):
            fields = self.unpack(layout, entry)
            if fields[0] and fields[shndx_at] == 0:  # SHN_UNDEF: defined elsewhere
                found.add(self.string(strings + fields[0]))
        return found
