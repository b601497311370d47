"""Every metric the chart's alerts and Grafana dashboard name exists.

The PrometheusRule and the dashboard ConfigMap are rendered by Helm's engine
(as in test_helm.py); the real issuer and verifier are started and their
/metrics scraped (on their internal listeners); every metric name in an alert expression or a dashboard
query (panels and template variables) must be one they expose, or one of
the few series other components make (Prometheus' `up`, kube-state-metrics).
A renamed or removed metric then fails here instead of leaving an alert
that never fires.
"""

from __future__ import annotations

import json
import re

import httpx

from conftest import need
from harness import listening
from test_helm import BASE, by_kind, merge, render

try:
    import promql_parser
except ImportError:  # pragma: no cover - reported by need()
    promql_parser = None

# Series that do not come from mcpgate: Prometheus' own per-target `up`, and
# kube-state-metrics (prometheusRule.kubeStateMetrics).
EXTERNAL = {"up", "kube_deployment_status_replicas_unavailable"}

def exposed_names(text: str) -> set[str]:
    """The series names a /metrics page offers: each family from its `# TYPE`
    line with the suffixes its type gives its samples (counters `_total`,
    histograms `_bucket`/`_sum`/`_count`), plus the samples' own names."""
    names: set[str] = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                "summary": ["", "_sum", "_count"], "info": ["_info"]}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(None, 3)
            names.update(family + s for s in suffixes.get(kind, [""]))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names of the vector selectors of a PromQL expression, parsed
    by a real PromQL parser (promql-parser, the Rust crate's bindings). A
    Grafana query is made PromQL first: its interval variables become
    durations and `label_values(selector, label)` its selector."""
    need(promql_parser is not None, "python package promql-parser (pip install -r tests/e2e/requirements.txt)")
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr, re.S)
    if m:
        expr = m.group(1)
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_metric_names_helpers():
    assert metric_names('sum by (reason) (rate(a_total{job="x", reason!="y"}[5m])) / scalar(sum(b) > 0) > 0.2') \
        == {"a_total", "b"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))") == {"h_bucket"}
    assert metric_names('up{job="v"} == 0 or absent(up{job="v"})') == {"up"}
    assert metric_names('x unless on (pod) y offset 5m') == {"x", "y"}
    assert metric_names('sum(rate(x[$__rate_interval])) by (pod)') == {"x"}
    assert metric_names('label_values(m_total{namespace="$namespace"}, job)') == {"m_total"}
    page = "# TYPE c counter\nc_total{a=\"b\"} 1\n# TYPE h histogram\n# TYPE g gauge\ng 0\n# EOF\n"
    assert exposed_names(page) == {"c_total", "h_bucket", "h_sum", "h_count", "g"}


def test_alerts_and_dashboard_name_only_existing_metrics(issuer, verifier):
    docs, _ = render(merge(BASE, {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}))
    queries: list[tuple[str, str]] = []
    (rule,) = by_kind(docs, "PrometheusRule")
    for group in rule["spec"]["groups"]:
        queries += [(f"alert {r.get('alert') or r['record']}", r["expr"]) for r in group["rules"]]
    (cm,) = by_kind(docs, "ConfigMap")
    dash = json.loads(cm["data"]["mcpgate.json"])
    queries += [(f"panel {p['title']}", t["expr"]) for p in dash["panels"] for t in p["targets"]]
    queries += [(f"variable {v['name']}", v["query"]["query"]) for v in dash["templating"]["list"]
                if v["type"] == "query"]
    assert len(queries) > 15, queries

    resource = "http://127.0.0.1:1/mcp"
    iss = issuer(resource=resource)
    v = verifier(iss.url, resource)
    # Some traffic, so the labelled families have series too.
    assert httpx.get(f"{v.http}/auth", headers={"x-forwarded-uri": "/mcp"}, timeout=10).status_code == 401
    # (a family without series is not listed at all on the page)
    assert httpx.post(f"{iss.url}/token", data={"grant_type": "bogus"}, timeout=10).status_code == 400
    exposed = set()
    for base, proc in ((iss.url, iss.proc), (v.http, v.proc)):
        # /metrics on the separate listener the `listening` log line names
        # (what the chart's ServiceMonitor scrapes), never on the public port.
        metrics = listening(proc)["metrics"]
        r = httpx.get(f"http://{metrics}/metrics", timeout=10)
        r.raise_for_status()
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 404
        exposed |= exposed_names(r.text)
    assert "mcpgate_verifier_decisions_total" in exposed and "mcpgate_issuer_responses_total" in exposed, exposed

    unknown = {(where, name) for where, q in queries for name in metric_names(q)
               if name not in exposed and name not in EXTERNAL}
    assert not unknown, f"names no binary exposes: {sorted(unknown)}\nexposed: {sorted(exposed)}"
    # Every alert and panel names at least one metric (a parse that found
    # nothing would pass vacuously).
    assert all(metric_names(q) for _, q in queries), queries
