"""Images and skaffold, checked offline: what the cluster would run agrees with what the services read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from qrt_cli.main import SERVICES
from qrt_common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "tests" / "schemas" / "kubernetes"
SERVICE_DIRS = sorted(p.parent for p in (ROOT / "services").glob("*/Dockerfile"))


def deepest_errors(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The innermost causes: skaffold's schema hides real mistakes inside anyOf branches."""
    if not error.context:
        return [error]
    return [inner for context in error.context for inner in deepest_errors(context)]


def schema(name: str) -> dict:
    loaded: dict = json.loads((SPECS / name).read_text())
    return loaded


def test_skaffold_yaml_is_valid_and_builds_every_service_image():
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert config["apiVersion"] == "skaffold/v4beta14"  # the schema itself does not check it
    validator = jsonschema.Draft7Validator(schema("skaffold-v4beta14.schema.json"))
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for error in validator.iter_errors(config)
        for e in deepest_errors(error)
    ]
    assert problems == []
    built = {a["docker"]["dockerfile"]: a["image"] for a in config["build"]["artifacts"]}
    assert set(built) == {str(d.relative_to(ROOT) / "Dockerfile") for d in SERVICE_DIRS}
    templates = config["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    for image in built.values():
        key = image.replace("-", "_")
        assert any(f"IMAGE_REPO_{key}" in v for v in templates.values()), image


def dockerfile(directory: Path) -> str:
    return (directory / "Dockerfile").read_text()


@pytest.mark.parametrize("directory", SERVICE_DIRS, ids=lambda d: d.name)
def test_each_image_is_slim_multi_stage_and_runs_as_a_user(directory: Path):
    text = dockerfile(directory)
    # Every stage on one base, a build argument whose default is the official slim Python image
    # (skaffold and docker build); `make images` gives one made from Debian's packages.
    assert re.findall(r"^ARG BASE=(\S+)$", text, re.MULTILINE) == ["python:3.11-slim"]
    assert text.index("ARG BASE=") < text.index("FROM ")
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) >= 2 and set(bases) == {"${BASE}"}
    # Only what both bases have: python3 (Debian's Python has no `python` command).
    assert not re.search(r"\bpython -m\b|^RUN python ", text, re.MULTILINE)
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and user[-1].isdigit() and int(user[-1]) != 0
    # libs/common goes in once, with the one distribution, in the build stage.
    assert text.count("COPY libs") == 1 and "pip install ." in text


@pytest.mark.parametrize("directory", SERVICE_DIRS, ids=lambda d: d.name)
def test_each_image_starts_a_real_command_on_the_ports_it_serves(directory: Path):
    text = dockerfile(directory)
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)[-1])
    assert entrypoint[0] == "qrt" and entrypoint[1] in SERVICES
    exposed = {
        int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE) for p in line.split()
    }
    defaults = Settings()
    wanted = {defaults.port} if entrypoint[1] == "gateway" else {defaults.ops_port}
    assert wanted <= exposed
    assert "QRT_HOST=0.0.0.0" in text  # reachable from other pods, not only from loopback


def test_the_build_context_holds_what_the_images_copy():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored  # everything out, then only what the images need back in
    for needed in ("pyproject.toml", "README.md", "cli/", "libs/", "services/", "programs/"):
        assert f"!{needed}" in ignored, needed


def test_the_build_stage_copies_what_the_wheel_includes():
    # `pip install .` in the build stage fails on a forced include it cannot find (the bundled
    # programs the wheel carries).
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = [*(p.split("/")[0] for p in wheel["packages"]), *wheel.get("force-include", {})]
    for directory in SERVICE_DIRS:
        text = dockerfile(directory)
        build = text[text.index("AS build") : text.index("RUN /opt/qrt/bin/pip install .")]
        copied = set(re.findall(r"^COPY (\S+) ", build, flags=re.M))
        assert set(needed) <= copied, (directory.name, set(needed) - copied)


def test_the_four_images_share_one_build_stage():
    # Identical text, identical layers: `make images` builds the dependencies and qrt once for
    # all four, and the runtime stages start from the same virtual environment layer.
    def build_stages(directory: Path) -> str:
        text = dockerfile(directory)
        return text[text.index("ARG BASE=") : text.index("\nFROM ${BASE}\n")]

    stages = {build_stages(d) for d in SERVICE_DIRS}
    assert len(stages) == 1
    for directory in SERVICE_DIRS:
        runtime = dockerfile(directory).split("\nFROM ${BASE}\n", 1)[1].splitlines()
        instructions = [line for line in runtime if line.strip() and not line.startswith("#")]
        assert instructions[0] == "COPY --from=build /opt/qrt /opt/qrt", directory.name


@pytest.mark.parametrize("directory", SERVICE_DIRS, ids=lambda d: d.name)
def test_apt_leaves_nothing_behind_on_any_base(directory: Path):
    # The official image cleans apt's caches by itself; a base made by debootstrap does not
    # (the executor image was 80 MB larger on it).
    for step in re.findall(r"^RUN (.*?)(?<!\\)$", dockerfile(directory), re.MULTILINE | re.DOTALL):
        if "apt-get install" in step:
            assert "/var/lib/apt/lists/*" in step and "/var/cache/apt/*.bin" in step, step
