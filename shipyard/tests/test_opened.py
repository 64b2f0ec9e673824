"""Libraries that modules open by name, found with no setting (tooling/opened.py), for real.

A copy of the project adds, as a user would, weasyprint, which opens GLib, Pango and PangoFT2
through cffi as it imports (the corpus has nothing of the kind); python-magic, which opens
libmagic through ctypes.util.find_library (the corpus has it, with its package named); and
pyvips-binary, whose libvips holds a fontconfig of its own, which finds no font in an image
that has none. With no setting, `inv build` must find each library's package in trixie's
archive, and a font, build again until every module imports, and the image must render a PDF
with its text and tell what it is. The next build starts with what was found, and builds once.
"""

import json
import os
import re

import pytest
from support import VERSION, commit, copy_project, docker, inv

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Render a page with text, uncompressed so that its font can be read, and name what it is.
RENDER = """\
import json, magic, re, weasyprint
pdf = weasyprint.HTML(string="<h1>Hello</h1><p>wörld</p>").write_pdf(uncompressed_pdf=True)
fonts = sorted({font.decode() for font in re.findall(rb"/FontName\\s*/\\w+\\+([\\w-]+)", pdf)})
print(json.dumps({"kind": magic.from_buffer(pdf), "fonts": fonts}))
"""
FOUND = re.compile(r"^(\S+) opens (\S+) by name: Debian's (\S+) ships it; building again with it$")
FONT = re.compile(
    r"carries fontconfig \(libvips-\w+\.so\.42\) and no font: Debian's fonts-dejavu-core is one; "
    r"building again with it$",
    re.MULTILINE,
)


def builds(output: str, name: str) -> list[str]:
    """What each build of the runtime that OUTPUT tells of said: built, or unchanged."""
    done = re.compile(rf"^{name}:{VERSION} and {name}:latest \(linux/amd64\): (built|unchanged)")
    return [match[1] for match in map(done.match, output.splitlines()) if match]


def test_libraries_opened_by_name_and_a_font_need_no_setting_and_the_next_build_is_one(tmp_path):
    project = copy_project(tmp_path / "project", share_venv=False)
    name = f"my-project-byname-{os.getpid()}"
    env = {"INVOKE_DOCKER_IMAGE": name, "INVOKE_DOCKER_RUNTIME_PACKAGES": ""}
    ref = f"{name}:{VERSION}"
    try:
        dependencies = ["weasyprint", "python-magic", "pyvips-binary"]
        added = inv("poetry", "--", "add", "--lock", *dependencies, cwd=project)
        assert added.returncode == 0, added.stdout[-3000:] + added.stderr[-3000:]
        exported = inv("export", cwd=project)
        assert exported.returncode == 0, exported.stderr[-3000:]
        commit(project, "weasyprint, python-magic and pyvips-binary")
        built = inv("build", cwd=project, env=env, timeout=3600)
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
        found = [FOUND.match(line).groups() for line in built.stdout.splitlines()
                 if FOUND.match(line)]  # fmt: skip
        assert {package for _, _, package in found} == {
            "libglib2.0-0t64", "libpango-1.0-0", "libpangoft2-1.0-0", "libmagic1t64"
        }  # fmt: skip
        assert ("magic", "libmagic", "libmagic1t64") in found
        assert ("weasyprint", "libgobject-2.0-0", "libglib2.0-0t64") in found
        assert FONT.search(built.stdout), built.stdout[-4000:]
        # The first build, then one a round; libmagic, GLib and the font in the same one.
        assert len(builds(built.stdout, name)) == 4, built.stdout[-4000:]
        run = ["run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
               "--entrypoint", "/opt/venv/bin/python", ref, "-c", RENDER]  # fmt: skip
        rendered = json.loads(docker(*run).stdout.splitlines()[-1])
        assert rendered["kind"].startswith("PDF document"), rendered
        assert "DejaVu-Serif" in rendered["fonts"], rendered  # a font, embedded
        predicate = json.loads((project / "dist" / f"{name}-{VERSION}.provenance.json").read_text())
        definition = predicate["buildDefinition"]
        assert definition["externalParameters"]["RUNTIME_PACKAGES"] == ""
        carried = definition["internalParameters"]["runtimePackagesFound"]
        assert {(entry["module"], entry["package"]) for entry in carried} == {
            ("magic", "libmagic1t64"), ("weasyprint", "libglib2.0-0t64"),
            ("weasyprint", "libpango-1.0-0"), ("weasyprint", "libpangoft2-1.0-0"),
            (None, "fonts-dejavu-core"),
        }  # fmt: skip
        # The next build starts with them: one build, from the cache, and nothing looked up.
        again = inv("build", cwd=project, env=env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert builds(again.stdout, name) == ["unchanged"]
        assert not [line for line in again.stdout.splitlines() if FOUND.match(line)]
    finally:
        docker("image", "rm", "--force", ref, f"{name}:latest", check=False)
