"""docker/imports.py: which modules a distribution names, and what cannot be checked.

No Docker: the script's own parts, on distributions made here.
"""

import sys
from pathlib import Path

from support import ROOT

sys.path.insert(0, str(ROOT / "shipyard" / "docker"))
import imports  # docker/ is a folder of scripts, not a package


class Distribution:
    """What importlib.metadata gives of a distribution: its top_level.txt, and its RECORD."""

    def __init__(self, top_level: str | None, files: list[str]) -> None:
        self.top_level, self.files = top_level, [Path(name) for name in files]

    def read_text(self, name: str) -> str | None:
        return self.top_level if name == "top_level.txt" else None


def test_top_level_txt_names_the_modules_and_record_is_read_where_it_is_missing():
    """RECORD's first parts that are modules: packages, module files, extension modules; not
    metadata, scripts, bytecode, .pth files, or auditwheel's folders of libraries."""
    assert imports.modules(Distribution("yaml\n_yaml\n", [])) == ["_yaml", "yaml"]
    record = ["fire/__init__.py", "fire/core.py", "fire-0.7.1.dist-info/RECORD", "six.py",
              "_cffi_backend.cpython-313-x86_64-linux-gnu.so", "numpy.libs/libopenblas.so",
              "../../../bin/fire", "__pycache__/six.cpython-313.pyc",
              "distutils-precedence.pth"]  # fmt: skip
    assert imports.modules(Distribution(None, record)) == ["_cffi_backend", "fire", "six"]


def failing(name: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(f"No module named '{name}'", name=name)


def test_what_the_image_lacks_is_a_failure_and_what_the_lock_leaves_out_is_not():
    """An optional dependency that the lock does not install, or a module that only metadata
    names, cannot be checked; a standard module that the runtime left out (Tk) is a failure."""
    assert "does not install" in imports.absent(
        "adbc_driver_duckdb", failing("adbc_driver_manager")
    )
    assert "only the distribution's metadata" in imports.absent("_sodium", failing("_sodium"))
    assert imports.absent("customtk", failing("tkinter")) is None
    assert imports.absent("mine", failing("json")) is None  # there, so it failed otherwise


def test_a_fontconfig_with_no_font_is_told(tmp_path, monkeypatch):
    """fontconfig in a library folder, a wheel's own (auditwheel renames it), or linked into
    another library (pyvips-binary's libvips), with no font file where fontconfig looks: its
    path; with a font, or without fontconfig: None."""
    lib, fonts, venv = tmp_path / "lib", tmp_path / "fonts", tmp_path / "venv"
    for folder in (lib, fonts, venv):
        folder.mkdir()
    monkeypatch.setattr(imports, "LIBRARY_FOLDERS", (str(lib),))
    monkeypatch.setattr(imports, "FONT_FOLDERS", (str(fonts),))
    monkeypatch.setattr(imports.sys, "prefix", str(venv))
    (lib / "libfreetype.so.6").write_bytes(b"\x7fELF freetype")
    (lib / "libempty.so.1").touch()
    assert imports.fontless() is None
    linked = venv / "lib" / "pyvips_binary.libs" / "libvips-e42572c0.so.42"
    linked.parent.mkdir(parents=True)
    linked.write_bytes(b"\x7fELF ... getenv FONTCONFIG_FILE ...")
    assert imports.fontless() == str(linked)
    linked.unlink()
    bundled = venv / "lib" / "skia_python.libs" / "libfontconfig-dcb2ce6c.so.1.12.0"
    bundled.parent.mkdir(parents=True)
    bundled.touch()
    assert imports.fontless() == str(bundled)
    (fonts / "truetype" / "dejavu").mkdir(parents=True)
    (fonts / "truetype" / "dejavu" / "DejaVuSans.ttf").touch()
    assert imports.fontless() is None


def test_each_line_of_the_script_starts_a_line_of_its_own(capsys):
    """A module may print without ending its line: the script's next line is still told."""
    print("loading...", end="")
    imports.say({"start": "weasyprint", "distribution": "weasyprint"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == 'imports.py: {"start": "weasyprint", "distribution": "weasyprint"}'
