"""The GitHub Actions workflow, tested here, where it cannot run: what it runs are the
developers' own tasks, with options that exist; the settings it reads are the README's; and
it passes GitHub's schema and zizmor's audit (both offline, through `inv lint`)."""

import re
import shlex

import pytest
import yaml
from support import ROOT, inv

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def inv_commands() -> list[list[str]]:
    """Each `inv` command line of the workflow's steps, as the words after `inv`."""
    found = []
    for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").replace("\\\n", " ").splitlines():
                words = shlex.split(line)
                if "inv" in words:
                    found.append(words[words.index("inv") + 1 :])
    return found


def tasks_of(words: list[str]) -> list[tuple[str, list[str]]]:
    """inv's words as tasks, each with its options: lint test --all -> lint [], test [--all]."""
    tasks = []
    for word in words:
        if word.startswith("-"):
            tasks[-1][1].append(word.split("=")[0])
        else:
            tasks.append((word, []))
    return tasks


def test_the_workflow_runs_the_readme_s_commands():
    """The tests on every push and pull request; the release, with push, on a tag."""
    assert ["lint", "test", "--all"] in inv_commands()
    assert ["release", "--push"] in inv_commands()
    assert "inv lint test --all" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("words", inv_commands(), ids=" ".join)
def test_each_inv_command_of_the_workflow_exists_with_its_options(words):
    for task, options in tasks_of(words):
        shown = inv("--help", task)
        assert shown.returncode == 0, f"no task {task}: {shown.stderr}"
        for option in options:
            assert re.search(rf"^\s+(-\w( [A-Z]+)?, )?{option}\b", shown.stdout, re.MULTILINE), (
                f"inv {task} has no option {option}"
            )


def test_every_setting_the_workflow_reads_is_in_the_readme():
    """The INVOKE_* variables it sets, and the repository's variables and secrets it reads."""
    text, readme = WORKFLOW.read_text(), (ROOT / "README.md").read_text()
    names = set(re.findall(r"\b(INVOKE_[A-Z_]+)\b", text))
    names |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)\b", text))
    assert {"INVOKE_REGISTRY_URL", "INVOKE_REGISTRY_CACHE", "INVOKE_DOCKER_PLATFORMS"} <= names
    assert [name for name in sorted(names) if f"`{name}`" not in readme] == []


def test_every_action_is_pinned_to_a_commit_with_its_version_beside_it():
    uses = re.findall(r"uses: (\S+)(.*)$", WORKFLOW.read_text(), re.MULTILINE)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+(\.\d+)*", comment), f"{action}: {comment!r}"
