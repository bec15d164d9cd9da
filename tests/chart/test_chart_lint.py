"""helm lint --strict and yamllint on the chart's files and on the rendered output."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_VALUES = REPO_ROOT / "values.example.yaml"

# Hand-written YAML: yamllint's defaults, long lines up to 120 characters, no `---` required.
SOURCE_CONFIG = YamlLintConfig("""
extends: default
rules:
  line-length: {max: 120}
  document-start: disable
""")
# Rendered objects of our own templates: the defaults, except line length and document start (helm output).
RENDERED_CONFIG = YamlLintConfig("""
extends: default
rules:
  line-length: disable
  document-start: disable
""")
# Everything helm prints, the subchart's objects included (real Z2JH output is not ours to restyle):
# only errors count, i.e. broken YAML or duplicated keys.
FULL_OUTPUT_CONFIG = YamlLintConfig("""
extends: relaxed
rules:
  line-length: disable
  document-start: disable
  trailing-spaces: {level: warning}
""")


def lint_text(text: str, config: YamlLintConfig) -> list[str]:
    return [f"{p.line}:{p.column} {p.level} {p.message} ({p.rule})" for p in linter.run(text, config)
            if p.level == "error" or config is not FULL_OUTPUT_CONFIG]


@pytest.mark.parametrize("values", [(), (EXAMPLE_VALUES,)], ids=["defaults", "example"])
def test_helm_lint_strict(renderer, values):
    out = renderer.lint(values=values)
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


@pytest.mark.parametrize("path", ["chart/Chart.yaml", "chart/values.yaml", "values.example.yaml"])
def test_yamllint_sources(path):
    text = (REPO_ROOT / path).read_text()
    problems = lint_text(text, SOURCE_CONFIG)
    repo_config = REPO_ROOT / ".yamllint.yaml"  # the repository-wide configuration, when there is one
    if repo_config.exists():
        problems += [f"{p.line}:{p.column} {p.message} ({p.rule}, .yamllint.yaml)"
                     for p in linter.run(text, YamlLintConfig(file=str(repo_config))) if p.level == "error"]
    assert not problems, f"{path}:\n" + "\n".join(problems)


RENDER_CASES = {
    "defaults": ((), ()),
    "example": ((EXAMPLE_VALUES,), ()),
    "everything": ((EXAMPLE_VALUES,), ("jupyterhub.custom.brandingFiles.logo\\.png=iVBORw0KGgo=",
                                       "jupyterhub.custom.ds.storage.shared.storageClass=nfs")),
}


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_yamllint_rendered_objects_of_ours(renderer, chart_module, case):
    values, set_values = RENDER_CASES[case]
    ours = [r for r in renderer.documents(*set_values, values=values) if chart_module.is_ours(r)]
    assert ours
    for r in ours:
        problems = lint_text(r.text, RENDERED_CONFIG)
        assert not problems, f"{r.source} ({r.doc['kind']}):\n" + "\n".join(problems) + "\n" + r.text


@pytest.mark.parametrize("case", list(RENDER_CASES))
def test_yamllint_full_rendered_output(renderer, case):
    values, set_values = RENDER_CASES[case]
    problems = lint_text(renderer.text(*set_values, values=values), FULL_OUTPUT_CONFIG)
    assert not problems, "\n".join(problems)
