"""The SBOM that `inv build` makes of each image, from the image itself: what ships is what it
says. Every ELF file belongs to a component; the OS packages are there, with their versions."""

import os
import re

import pytest
from support import PODMAN, VERSION, docker, elf_files, image_id, inv, owners, sbom_of

pytestmark = pytest.mark.docker


def test_the_sbom_names_the_image_its_python_and_its_os_packages(image):
    sbom = sbom_of(image.ref)
    root = sbom["metadata"]["component"]
    assert (root["type"], root["name"], root["version"]) == ("container", "my-project", VERSION)
    assert root["hashes"] == [{"alg": "SHA-256", "content": image_id(image.ref).split(":")[1]}]
    components = {component["name"]: component for component in sbom["components"]}
    assert {"fire", "polars", "polars-runtime-32", "termcolor"} <= components.keys()
    for package in ("libc6", "zlib1g", "libsqlite3-0", "libffi8", "libexpat1", "tzdata"):
        assert components[package]["purl"].startswith(f"pkg:deb/debian/{package}@"), package
        assert components[package]["version"], package
    assert any(name.startswith("libssl3") for name in components), "no libssl3"


def test_every_elf_file_belongs_to_a_component(image):
    """0 unattributed: each ELF file of the image is named under the package that holds it."""
    elves = elf_files(image.ref)
    assert len(elves) > 20  # the interpreter, its modules, the libraries, polars' engine
    assert sorted(elves - owners(sbom_of(image.ref)).keys()) == []


@pytest.mark.slow
@pytest.mark.skipif(PODMAN, reason="the corpus is Docker's to build")
def test_an_sdist_built_dependency_brings_its_libraries_into_the_sbom(corpus):
    """psycopg2, built from source: libpq5 and its closure are in the image, and its SBOM."""
    for image in corpus.images.values():
        sbom = sbom_of(image.ref, corpus.folder)
        components = {component["name"]: component for component in sbom["components"]}
        assert {"libpq5", "libgssapi-krb5-2", "psycopg2", "numpy"} <= components.keys()
        assert sorted(elf_files(image.ref) - owners(sbom).keys()) == []


@pytest.mark.slow
def test_after_an_edit_of_the_app_syft_reads_the_layers_above_alone_and_says_the_same(project):
    """The SBOM of an edit is the one a scan of the whole image gives, to the byte."""
    name = f"my-project-sbom-{os.getpid()}"
    env, ref = {"INVOKE_DOCKER_IMAGE": name}, f"{name}:{VERSION}"
    read = re.compile(r"\(syft read (\d+) of (\d+) layers, ")
    try:
        first = inv("build", cwd=project, env=env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        hello = project / "my_project" / "hello.py"
        hello.write_text(hello.read_text() + "# edited\n")
        edited = inv("build", cwd=project, env=env)
        assert edited.returncode == 0, edited.stdout[-3000:] + edited.stderr[-3000:]
        [(part, layers)] = read.findall(edited.stdout)
        assert 0 < int(part) < int(layers), edited.stdout
        sbom = project / "dist" / f"{name}-{VERSION}.cdx.json"
        kept = sbom.read_text()
        whole = inv("build", "--no-cache", cwd=project, env=env)
        assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
        assert read.findall(whole.stdout) == [(layers, layers)]
        assert sbom.read_text() == kept
        root = sbom_of(ref, project)["metadata"]["component"]
        assert root["hashes"][0]["content"] == image_id(ref).removeprefix("sha256:")
        hello = "/opt/venv/lib/python3.13/site-packages/my_project/hello.py"
        assert owners(sbom_of(ref, project))[hello] == "my-project"  # the app's own package
    finally:
        docker("image", "rm", "--force", ref, f"{name}:latest", check=False)
