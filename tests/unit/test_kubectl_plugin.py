"""``kubectl jupyterhub`` without a cluster: usage and exit codes, output formats, the port-forward's port
parsing and failure message (a stand-in kubectl script), values without PyYAML, and the sign-ups API's body
parsing. The commands themselves run end to end in tests/e2e/chart/test_kubectl_plugin.py."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from hub_extensions.signups_api import parse_authorized
from kubectl_jupyterhub import cli, kube, output

COMMANDS = [["status"], ["users", "list"], ["users", "create"], ["users", "delete"], ["users", "rename"],
            ["users", "authorize"], ["servers", "list"], ["servers", "start"], ["servers", "stop"],
            ["servers", "restart"], ["volumes", "list"], ["volumes", "reset"], ["volumes", "adopt"], ["top"],
            ["extend"], ["broadcast"], ["logs"], ["events"]]


@pytest.mark.parametrize("args", [[], *COMMANDS], ids=lambda a: " ".join(a) or "(none)")
def test_help_everywhere(args, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([*args, "-h"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kubectl jupyterhub")
    if (args and args[0] not in ("users", "servers", "volumes")) or len(args) == 2:
        assert "--kubeconfig" in out and "--namespace" in out and "--output" in out


@pytest.mark.parametrize("args", [["users", "list", "--bogus"], ["status", "-o", "wide"], ["extend", "bob", "1.5"],
                                  ["users"], ["servers", "start"], ["frobnicate"], ["logs", "a", "--tail", "x"]])
def test_usage_errors_exit_2_with_one_line(args, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_global_flags_before_or_after_the_command():
    parser = cli.build_parser()
    a = parser.parse_args(["-n", "ns1", "--context", "c", "users", "list", "-o", "json"])
    b = parser.parse_args(["users", "list", "--namespace", "ns1", "--context", "c", "--output", "json"])
    for args in (a, b):
        assert (args.namespace, args.context, args.output) == ("ns1", "c", "json")
    assert not hasattr(parser.parse_args(["status"]), "namespace")  # unset: the context's namespace


def test_table_is_kubectl_like(capsys):
    output.emit("table", None, [{"name": "a", "admin": True, "n": None}, {"name": "long-name", "admin": False,
                                                                         "n": 1.25}],
                [("NAME", "name"), ("ADMIN", "admin"), ("N", "n")])
    assert capsys.readouterr().out.splitlines() == ["NAME        ADMIN   N", "a           yes     <none>",
                                                    "long-name   no      1.2"]
    output.emit("json", {"a": [1]})
    assert json.loads(capsys.readouterr().out) == {"a": [1]}


def test_yaml_output_without_pyyaml(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(output.OutputError, match="needs PyYAML"):
        output.emit("yaml", {})


@pytest.mark.parametrize("with_yaml", [True, False])
def test_base_url_from_the_hub_secret_values(with_yaml, monkeypatch):
    if not with_yaml:
        monkeypatch.setitem(sys.modules, "yaml", None)
    text = "Chart:\n  Name: jupyterhub\nhub:\n  image:\n    name: x\n  baseUrl: /jhub/\n  other: 1\n"
    assert kube.parse_values(text)["hub"]["baseUrl"] == "/jhub/"
    assert kube.parse_values("hub:\n  image: {}\n").get("hub", {}).get("baseUrl") is None


def fake_kubectl(tmp_path: Path, script: str) -> kube.Kubectl:
    exe = tmp_path / "kubectl"
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(0o755)
    return kube.Kubectl(namespace="ns", binary=str(exe))


def test_port_forward_reads_the_chosen_port(tmp_path):
    k = fake_kubectl(tmp_path, 'echo "Forwarding from 127.0.0.1:41234 -> 8081"; exec sleep 30')
    with kube.PortForward(k, "hub-abc", 8081) as pf:
        assert pf.local_port == 41234
        proc = pf.proc
    assert proc.poll() is not None  # stopped on exit


def test_port_forward_failure_is_one_line(tmp_path):
    k = fake_kubectl(tmp_path, 'echo "error: error upgrading connection: pods \\"hub\\" is forbidden" >&2; exit 1')
    with pytest.raises(kube.KubeError, match=r'^kubectl port-forward to pod/hub failed: error: error upgrading'):
        kube.PortForward(k, "hub", 8081).__enter__()


def test_kubectl_errors_keep_its_last_line(tmp_path):
    k = fake_kubectl(tmp_path, 'echo "W0101 warning" >&2; echo "error: You must be logged in" >&2; exit 1')
    with pytest.raises(kube.KubeError, match=r"^error: You must be logged in$"):
        k.run("get", "pods")


def test_missing_kubectl_is_a_failure(capsys, monkeypatch):
    monkeypatch.setenv("KUBECTL", "no-such-kubectl-binary")
    assert cli.main(["-n", "x", "status"]) == 1
    assert capsys.readouterr().err == "error: no-such-kubectl-binary not found on PATH " \
                                      "(kubectl jupyterhub runs kubectl)\n"


def test_reset_without_terminal_needs_yes(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    with pytest.raises(cli.Usage, match="--yes"):
        cli.confirm("Reset?")


@pytest.mark.parametrize(("body", "expected"), [(None, True), ({}, True), ({"authorized": False}, False),
                                                 ({"authorized": True}, True)])
def test_signup_body(body, expected):
    assert parse_authorized(body) is expected


@pytest.mark.parametrize("body", [[], "yes", {"authorized": "true"}, {"authorized": 1}])
def test_signup_body_refused(body):
    with pytest.raises(ValueError, match="authorized"):
        parse_authorized(body)


def test_status_summaries_of_the_health_answer():
    assert cli.gpu_summary({"mode": 0, "mode_name": "off"}) == "off"
    assert cli.gpu_summary({"mode": 2, "mode_name": "auto", "nodes_with_gpus": None}) == "auto: nodes not listed yet"
    assert cli.gpu_summary({"mode": 2, "mode_name": "auto", "nodes_with_gpus": ["gpu-0 (1 allocatable)"]}) \
        == "auto: 1 GPU node"
    assert cli.gpu_summary(None) == "not reported"
    assert cli.metrics_summary({"available": True}) == "available"
    assert cli.metrics_summary({"available": False, "error": "503 Service Unavailable"}) \
        == "unavailable (503 Service Unavailable)"
