"""The image of a commit has one ID: built again without cache, in another time zone and under
another umask, or by an engine started for the test with nothing but the base, it is the very
same image; a change of the source gives another one.
"""

import datetime
import json
import os
import subprocess

import pytest
from support import DOCKER, VERSION, commit, context, docker, image_id, inv

from shipyard.tooling import bootstrap, engine

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_the_same_commit_gives_the_same_image_and_a_change_another(project):
    name = f"my-project-repro-{os.getpid()}"
    env = {"INVOKE_DOCKER_IMAGE": name}
    ref = f"{name}:{VERSION}"
    try:
        first = inv("build", cwd=project, env=env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        built = image_id(ref)
        elsewhere = {**env, "TZ": "Asia/Tokyo"}
        again = inv("build", "--no-cache", cwd=project, env=elsewhere,
                    preexec_fn=lambda: os.umask(0o077))  # fmt: skip
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert image_id(ref) == built
        # Every time in it is the commit's, not the build's.
        epoch = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=project,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        created = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        assert json.loads(docker("image", "inspect", ref).stdout)[0]["Created"] == (
            created.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        history = docker("history", "--format", "{{.CreatedAt}}", "--human=false", ref).stdout
        assert len(set(history.split())) == 1  # the same instant, however the CLI shows it
        (project / "my_project" / "hello.py").write_text(
            (project / "my_project" / "hello.py").read_text() + "# changed\n"
        )
        commit(project, "a change of the source")
        changed = inv("build", cwd=project, env=env)
        assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
        assert image_id(ref) not in {None, built}
    finally:
        docker("image", "rm", "--force", ref, f"{name}:latest", check=False)


def test_an_empty_engine_given_only_the_base_builds_the_very_same_image(distroless, online_engine):
    """No cache of any kind, no layer and no wheel: the second engine gets the base image (an
    input, known by its ID) and builds the commit, downloading and compiling all of it."""
    fresh = {**os.environ, "DOCKER_HOST": online_engine}
    base = bootstrap.base(context())
    saved = subprocess.Popen([*DOCKER, "save", base], stdout=subprocess.PIPE)
    subprocess.run([*DOCKER, "load"], stdin=saved.stdout, env=fresh, check=True,
                   capture_output=True)  # fmt: skip
    assert saved.wait() == 0
    built = inv("build", env={"DOCKER_HOST": online_engine})
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert any("pip-install --for" in step for step in engine.ran(built.stdout + built.stderr))
    identity = ["image", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}", distroless.ref]
    assert docker(*identity, env=fresh).stdout == docker(*identity).stdout
