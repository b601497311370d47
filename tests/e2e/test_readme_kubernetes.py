"""README.md's "Kubernetes, step by step" and "Troubleshooting" match the code.

The walk-through's values file renders with the chart into valid manifests
that use exactly the Secrets its `kubectl create secret` commands make, its
Istio snippet names the Service and port the chart creates, and the
troubleshooting table has a row for every deny reason the verifier counts
(the labels of `DenyReason` in src/verify/decision.rs).
"""

from __future__ import annotations

import re
import textwrap

import yaml

from harness import REPO
from test_helm import by_kind, render, validate_all

README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(title)
    level = re.match(r"#+", README[start:]).group(0)
    rest = README[start + len(title):]
    m = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: m.start()] if m else rest


def blocks(text: str, lang: str) -> list[str]:
    """The fenced code blocks of `lang`, also those indented in a list."""
    return [textwrap.dedent(body) for _, body in re.findall(rf"^( *)```{lang}\n(.*?)^\1```", text, re.S | re.M)]


def test_walkthrough_values_render_with_the_secrets_it_creates():
    walk = section("#### Kubernetes, step by step")
    (values,) = [yaml.safe_load(b) for b in blocks(walk, "yaml") if b.startswith("redis:")]
    docs, notes = render(values, name="mcpgate")
    validate_all(docs)
    assert "WARNING" not in notes, notes
    # Secrets the walk-through creates: name -> keys.
    created: dict[str, set[str]] = {}
    for name, args in re.findall(r"kubectl -n mcp create secret generic (\S+) (.*)", walk):
        created[name] = set(re.findall(r"--from-literal=([^=]+)=", args)) | set(
            re.findall(r"--from-file=(\S+)", args))
    used: dict[str, set[str]] = {}
    for dep in by_kind(docs, "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        for e in pod["containers"][0]["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref["name"].startswith("mcpgate-secrets"):
                used.setdefault(ref["name"], set()).add(ref["key"])
        for v in pod.get("volumes", []):
            if "secret" in v and v["secret"]["secretName"] != "mcpgate-secrets":
                used.setdefault(v["secret"]["secretName"], set()).add(values["issuer"]["signing"]["keyFileKey"])
    assert used == created, (used, created)
    # The Istio provider entry of step 3 is the chart's verifier Service and gRPC port.
    svc = next(s for s in by_kind(docs, "Service") if s["metadata"]["name"].endswith("-verifier"))
    grpc = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert f"service: {svc['metadata']['name']}.mcp.svc.cluster.local, port: {grpc}" in walk
    kinds = {d["kind"] for d in docs}
    assert {"HorizontalPodAutoscaler", "NetworkPolicy", "PrometheusRule", "ConfigMap", "Ingress"} <= kinds, kinds


def test_troubleshooting_has_a_row_for_every_deny_reason():
    src = (REPO / "src" / "verify" / "decision.rs").read_text()
    labels = set(re.findall(r'DenyReason::\w+ => "([a-z_]+)"', src))
    assert len(labels) > 10, labels
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", section("## Troubleshooting"), re.M)) - {"reason"}  # the header
    assert rows == labels, (sorted(labels - rows), sorted(rows - labels))
