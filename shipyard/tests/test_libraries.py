"""docker/libraries.py: which libraries are missing, and how the archive's answers are read.

No Docker and no network: the pure parts, on ELF files made here and on real apt output.
"""

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

sys.path.insert(0, str(ROOT / "shipyard" / "docker"))
import elf  # docker/ is a folder of scripts, not a package
import libraries

# What `dpkg-deb --contents` prints for trixie's libgomp1 (amd64).
FOLDER = "./usr/lib/x86_64-linux-gnu"
LIBGOMP1 = f"""\
drwxr-xr-x root/root         0 2025-03-15 01:47 ./
drwxr-xr-x root/root         0 2025-03-15 01:47 {FOLDER}/
-rw-r--r-- root/root    348056 2025-03-15 01:47 {FOLDER}/libgomp.so.1.0.0
lrwxrwxrwx root/root         0 2025-03-15 01:47 {FOLDER}/libgomp.so.1 -> libgomp.so.1.0.0
lrwxrwxrwx root/root         0 2025-03-15 01:47 ./usr/share/doc/libgomp1 -> gcc-14-base
"""
FOLDERS = {"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/lib"}


def shared_object(path: Path, machine: int, needed: list[str]) -> Path:
    """Write at PATH the smallest 64-bit shared object that NEEDED libraries: one load
    segment, and a dynamic one with its string table."""
    strings = b"\0" + b"".join(name.encode() + b"\0" for name in needed)
    offsets = [1 + sum(len(name) + 1 for name in needed[:index]) for index in range(len(needed))]
    strtab = 64 + 2 * 56
    dynamic = (strtab + len(strings) + 7) // 8 * 8
    entries = [(elf.DT_NEEDED, offset) for offset in offsets] + [(elf.DT_STRTAB, strtab), (0, 0)]
    size = dynamic + 16 * len(entries)
    header = b"\x7fELF\x02\x01\x01" + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", elf.PT_LOAD, 4, 0, 0, 0, size, size, 0x1000)
    dynamic_segment = struct.pack(
        "<IIQQQQQQ", elf.PT_DYNAMIC, 6, dynamic, dynamic, dynamic, size - dynamic, size - dynamic, 8
    )
    table = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    data = header + load + dynamic_segment + strings
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.ljust(dynamic, b"\0") + table)
    return path


def test_the_naming_rule_guesses_debians_library_packages():
    """A soname gives its package's name, lowercase, a hyphen between two digits, and t64."""
    assert libraries.candidates("libgomp.so.1") == ["libgomp1", "libgomp1t64"]
    assert libraries.candidates("libfoo-2.0.so.0") == ["libfoo-2.0-0", "libfoo-2.0-0t64"]
    assert libraries.candidates("libssl.so.3") == ["libssl3", "libssl3t64"]
    assert libraries.candidates("libgcc_s.so.1")[0] == "libgcc-s1"
    assert libraries.candidates("libstdc++.so.6")[0] == "libstdc++6"
    assert libraries.candidates("libSDL2-2.0.so.0")[0] == "libsdl2-2.0-0"
    assert libraries.candidates("not-a-library") == []


def test_a_package_listing_gives_absolute_paths_and_links_by_their_own_name():
    """dpkg-deb's listing: each path from /, a link by its name, not what it points to."""
    paths = libraries.listed(LIBGOMP1)
    assert "/usr/lib/x86_64-linux-gnu/libgomp.so.1" in paths
    assert "/usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0" in paths
    assert not any("->" in path for path in paths)


def test_a_contents_line_gives_the_path_and_every_package_that_ships_it():
    """A Contents line: the path (spaces and all), then section/package, comma-separated."""
    line = "usr/lib/x86_64-linux-gnu/libodbc.so.2      libs/libodbc2,non-free/libs/libodbc2t64\n"
    path, packages = libraries.contents_line(line)
    assert path == "/usr/lib/x86_64-linux-gnu/libodbc.so.2"
    assert packages == ["libodbc2", "libodbc2t64"]
    assert libraries.contents_line("usr/share/a b/c.so.1 libs/x\n") == (
        "/usr/share/a b/c.so.1",
        ["x"],
    )


def test_a_contents_index_names_every_package_that_ships_the_library_where_the_loader_looks(
    tmp_path,
):
    """libmlx5.so.1 is in ibverbs-providers, which no naming rule guesses; a copy of it
    elsewhere (a private folder) does not count."""
    index = tmp_path / "contents.gz"
    with gzip.open(index, "wt") as contents:
        contents.write(
            "usr/lib/x86_64-linux-gnu/libmlx5.so.1          libs/ibverbs-providers\n"
            "usr/lib/x86_64-linux-gnu/private/libmlx5.so.1  libs/other\n"
            "usr/share/doc/libmlx5/README                   doc/ibverbs-providers\n"
        )
    found = libraries.indexed(["libmlx5.so.1", "libnone.so.1"], FOLDERS, [index])
    assert found == {"libmlx5.so.1": ["ibverbs-providers"]}


def test_only_a_file_of_that_name_in_a_folder_the_loader_searches_counts():
    """libgomp.so.1 in the multiarch folder counts; in LLVM's private folder or lib32, not."""
    assert libraries.shipped("libgomp.so.1", libraries.listed(LIBGOMP1), FOLDERS)
    assert not libraries.shipped("libgomp.so", libraries.listed(LIBGOMP1), FOLDERS)
    assert not libraries.shipped("libgomp.so.1", ["/usr/lib/llvm-22/lib/libgomp.so.1"], FOLDERS)
    assert not libraries.shipped("libgomp.so.1", ["/usr/lib32/libgomp.so.1"], FOLDERS)


def test_missing_is_what_neither_the_loader_nor_the_folders_provide(tmp_path):
    """The C library is found; a sibling wheel's library, preloaded by path, is provided; a
    file of another machine never loads here; what is left is missing, with who needs it."""
    own = elf.machine(Path(sys.executable))
    other = 183 if own != 183 else 62  # aarch64, or x86_64 on aarch64
    needer = shared_object(
        tmp_path / "pkg" / "ext.so", own, ["libc.so.6", "libsibling.so.1", "libnowhere.so.7"]
    )
    shared_object(tmp_path / "nvidia" / "lib" / "libsibling.so.1", own, ["libc.so.6"])
    shared_object(tmp_path / "foreign" / "attach.so", other, ["libnowhere.so.7", "libalso.so.1"])
    (tmp_path / "pkg" / "__init__.py").write_text("")
    assert libraries.missing([tmp_path]) == {"libnowhere.so.7": [needer]}


def test_nothing_missing_runs_nothing_and_prints_nothing(tmp_path, monkeypatch, capsys):
    """With every need met, --missing leaves its output empty, and --install of that neither
    runs a program (no apt, no network) nor prints: the target's step costs nothing."""
    venv = tmp_path / "venv"
    shared_object(venv / "ext.so", elf.machine(Path(sys.executable)), ["libc.so.6"])

    def refuse(*args, **kwargs):
        pytest.fail(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    libraries.main(["--missing", str(tmp_path / "missing.json"), str(venv)])
    assert (tmp_path / "missing.json").read_text() == ""
    libraries.main(["--install", str(tmp_path / "missing.json")])
    assert capsys.readouterr() == ("", "")


def test_missing_reads_the_target_s_root_as_data(tmp_path):
    """In a cross build the target's root is a folder: its loader's folders and links are
    followed there, never on the builder; the venv is the builder's own."""
    root, venv = tmp_path / "target", tmp_path / "venv"
    own = elf.machine(Path(sys.executable))
    (root / "etc" / "ld.so.conf.d").mkdir(parents=True)
    (root / "etc" / "ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (root / "etc" / "ld.so.conf.d" / "arch.conf").write_text("/usr/lib/triplet\n")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    shared_object(root / "usr" / "bin" / Path(sys.executable).name, own, [])
    lib = root / "usr" / "lib" / "triplet"
    shared_object(lib / "libthere.so.1", own, [])
    (lib / "libalias.so.1").symlink_to("/usr/lib/triplet/libthere.so.1")  # absolute: in the root
    needer = shared_object(venv / "ext.so", own, ["libthere.so.1", "libalias.so.1", "libc.so.6"])
    target = elf.Root(root, own=(venv,))
    assert target.realpath("/bin/x") == Path("/usr/bin/x")
    assert elf.Loader(target).folders[0] == "/usr/lib/triplet"
    # libc.so.6 is the builder's, not the target's: missing there.
    python = Path("/usr/bin") / Path(sys.executable).name
    assert libraries.missing([venv], target, python) == {"libc.so.6": [needer]}


def test_the_failure_is_one_line_that_names_the_file_the_library_and_the_setting():
    """The line that ends a build: the needer, the library, and docker.runtime_packages."""
    line = libraries.failure("libx.so.1", [Path("/opt/venv/a.so")], "no Debian package ships it")
    assert "\n" not in line
    assert line.startswith("error: /opt/venv/a.so needs libx.so.1, and no Debian package")
    assert "docker.runtime_packages (INVOKE_DOCKER_RUNTIME_PACKAGES)" in line


def test_related_names_find_what_the_naming_rule_misses_and_nothing_else():
    """libglib-2.0.so.0 is in libglib2.0-0t64, not libglib-2.0-0: a name of the same letters
    and digits, ending in its major version, is a candidate; -dev, -doc and others are not."""
    names = ["libglib2.0-dev", "libglib2.0-bin", "libglib2.0-0t64", "libglibd-2.0-0",
             "libglib-testing-0-0", "libglibmm-2.68-1t64", "libglib2.0-doc"]  # fmt: skip
    assert libraries.related("libglib-2.0.so.0", names) == ["libglib2.0-0t64"]
    assert libraries.related("libGL.so.1", ["libgl1", "libgl-dev", "libglu1-mesa"]) == ["libgl1"]
    python = ["libpython3.13-dev", "libpython3.13", "libpython3.13-stdlib"]
    assert libraries.related("libpython3.13.so.1.0", python) == ["libpython3.13"]
    assert libraries.related("libfoo.so", ["libfoo1"]) == []  # no version: no rule to follow


def test_a_name_opened_by_name_means_the_files_that_the_loader_would_take():
    """What code asks for by name: ctypes' "magic" or "libmagic", any versioned soname of it but
    the development link; cffi's "libgobject-2.0-0", Windows' way of naming libgobject-2.0.so.0,
    with any later part of its version; a soname, or a path, its own file alone."""
    assert libraries.opened("magic") == libraries.opened("libmagic") == "libmagic"
    assert libraries.opened("/usr/lib/libfoo.so.1") == "libfoo.so.1"
    assert libraries.soname("libgobject-2.0-0") == "libgobject-2.0.so.0"
    assert libraries.soname("libfontconfig-1") == "libfontconfig.so.1"
    assert libraries.soname("libgobject-2.0") is None
    assert libraries.soname("libmagic") is None
    folder = "/usr/lib/x86_64-linux-gnu"
    magic = [f"{folder}/libmagic.so", f"{folder}/libmagic-mgc.so.1"]
    assert not libraries.shipped("libmagic", magic, FOLDERS)
    assert libraries.shipped("libmagic", [f"{folder}/libmagic.so.1.0.0"], FOLDERS)
    glib = [f"{folder}/libgobject-2.0.so.0.8400.0"]
    assert libraries.shipped("libgobject-2.0-0", glib, FOLDERS)
    assert not libraries.shipped("libgobject-2.0-0", [f"{folder}/libgobject-2.0.so.1"], FOLDERS)
    assert not libraries.shipped("libvips.so.42", [f"{folder}/libvips.so.42.1"], FOLDERS)


def test_names_opened_by_name_are_guessed_by_the_same_rules():
    """The naming rule, where the version is known; related names otherwise (libmagic1t64)."""
    assert libraries.candidates("libgobject-2.0-0") == ["libgobject-2.0-0", "libgobject-2.0-0t64"]
    assert libraries.candidates("libpango-1.0-0")[0] == "libpango-1.0-0"
    assert libraries.candidates("libmagic") == []
    names = ["libmagic-dev", "libmagic-mgc", "libmagic1t64", "libmagickcore-7.q16-10"]
    assert libraries.related("libmagic", names) == ["libmagic1t64"]


def test_the_contents_index_finds_a_name_opened_by_name_and_not_its_development_link(tmp_path):
    index = tmp_path / "contents.gz"
    with gzip.open(index, "wt") as contents:
        contents.write(
            "usr/lib/x86_64-linux-gnu/libmagic.so                 libdevel/libmagic-dev\n"
            "usr/lib/x86_64-linux-gnu/libmagic.so.1               libs/libmagic1t64\n"
            "usr/lib/x86_64-linux-gnu/libgobject-2.0.so.0         libs/libglib2.0-0t64\n"
            "usr/lib/x86_64-linux-gnu/libgobject-2.0.so.0.8400.0  libs/libglib2.0-0t64\n"
        )
    found = libraries.indexed(["libmagic", "libgobject-2.0-0", "libnone-3"], FOLDERS, [index])
    assert found == {"libmagic": ["libmagic1t64"], "libgobject-2.0-0": ["libglib2.0-0t64"] * 2}
