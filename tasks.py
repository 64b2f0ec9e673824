"""my-project's tasks: the shipyard collection's workflow (shipyard/tasks.py), and the checks
that this repository runs on the collection itself.

my-project is the collection's reference app. `inv adopt` gives any other poetry project a
tasks.py like this one, without `lint`: the collection's namespace, to which a project adds
its own tasks. `inv --list` names them all; this app's settings are in invoke.yaml.
"""

import shlex
from pathlib import Path

from invoke import task

from shipyard.tasks import install, ns
from shipyard.tooling.commands import ok
from shipyard.tooling.project import VENV

# What hadolint checks: every Dockerfile of the collection, the benchmark's baselines too.
BASELINES = sorted(str(path) for path in Path("shipyard/bench").glob("*.Dockerfile"))
DOCKERFILES = ("shipyard/Dockerfile", *BASELINES)


@task(pre=[install])
def lint(c):
    """Lint the Python code (ruff), the Dockerfiles (hadolint) and the CI workflows.

    The workflows are checked against GitHub's schema (check-jsonschema) and audited for
    security (zizmor), offline both; `.venv/bin/pre-commit install` runs the same at commit.
    """
    tools = VENV / "bin"
    ok(
        c.run(f"{tools}/ruff check .", echo=True, warn=True),
        what="ruff check",
        fix=f"Fix what ruff names above; `{tools}/ruff check --fix .` fixes many.",
    )
    ok(
        c.run(f"{tools}/ruff format --check .", echo=True, warn=True),
        what="ruff format",
        fix=f"Run `{tools}/ruff format .`.",
    )
    hadolint = [f"{tools}/hadolint", "--failure-threshold", "warning", *DOCKERFILES]
    ok(
        c.run(shlex.join(hadolint), echo=True, warn=True),
        what="hadolint",
        fix="Fix the Dockerfile lines it names, or ignore a rule on its line, with the reason.",
    )
    workflows = sorted(str(path) for path in Path(".github/workflows").glob("*.y*ml"))
    if workflows:
        schema = [f"{tools}/check-jsonschema", "--builtin-schema", "vendor.github-workflows"]
        ok(
            c.run(shlex.join([*schema, *workflows]), echo=True, warn=True),
            what="check-jsonschema",
            fix="Fix the workflow where it leaves GitHub's schema, as named above.",
        )
        ok(
            c.run(shlex.join([f"{tools}/zizmor", "--offline", *workflows]), echo=True, warn=True),
            what="zizmor",
            fix="Fix the findings above, or ignore one on its line, with the reason.",
        )


ns.add_task(lint)
