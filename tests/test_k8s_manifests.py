"""deploy/k8s cannot be applied here (no cluster): this keeps the manifests valid and honest.

Every resource is validated strictly against the Kubernetes API schemas (kubernetes-validate ships
them, so this runs offline), and checked against what the services really read and serve.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deployment_support import SERVICES, reads_mongodb, unknown_variables

from scicat_schemas.topics import ALL_TOPICS

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
"""The oldest release still commonly run at facilities, and the newest the schemas know."""


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


RESOURCES = [doc for name in KUSTOMIZATION["resources"] for doc in _documents(K8S / name)]
SECRETS = {doc["metadata"]["name"]: doc for doc in _documents(K8S / "secrets.example.yaml")}
PATCHES = [doc for path in sorted((K8S / "patches").glob("*.yaml")) for doc in _documents(path)]
KAFKA_CA_PATCHES = {path.stem: _documents(path)[0] for path in (K8S / "patches/kafka-ca").glob("*")}
KAFKA_CA_DIR = "/etc/scicat/kafka-ca"


def _named(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in RESOURCES if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _container(service: str) -> dict[str, Any]:
    [container] = _named("Deployment", service)["spec"]["template"]["spec"]["containers"]
    return container


def _env(service: str) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in _container(service)["env"]}


def test_the_kustomization_lists_every_manifest() -> None:
    manifests = {p.name for p in K8S.glob("*.yaml")} - {
        "kustomization.yaml",
        "secrets.example.yaml",
    }
    assert set(KUSTOMIZATION["resources"]) == manifests


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_and_example_is_valid_kubernetes(version: str) -> None:
    for document in [*RESOURCES, *SECRETS.values()]:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_data_mount_patch_is_valid_once_merged_into_the_ingestor() -> None:
    """Kustomize merges containers by name and volumes by name; so does `_merged`."""
    [patch] = PATCHES
    assert (patch["kind"], patch["metadata"]["name"]) == ("Deployment", "ingestor")
    kubernetes_validate.validate(_merged(patch), KUBERNETES_VERSIONS[-1], strict=True)
    [patched] = patch["spec"]["template"]["spec"]["containers"]
    assert all(mount["readOnly"] for mount in patched["volumeMounts"])


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_variable_names_a_settings_field_and_every_reference_resolves(service: str) -> None:
    env = _env(service)
    assert not unknown_variables(service, [name for name in env if not name.startswith("OTEL_")])
    config = _named("ConfigMap", "scicat-endpoints")["data"]
    for name, item in env.items():
        source = item.get("valueFrom", {})
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["name"] == "scicat-endpoints"
            assert ref["key"] in config or ref.get("optional"), f"{name}: no key {ref['key']}"
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["key"] in SECRETS[ref["name"]]["stringData"], f"{name}: {ref}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_credentials_come_from_secrets_only(service: str) -> None:
    for name, item in _env(service).items():
        if re.search(r"PASSWORD|SECRET|MONGO__URI", name):
            assert "secretKeyRef" in item.get("valueFrom", {}), f"{name} is not from a Secret"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_probes_and_metrics_reach_the_port_the_service_listens_on(service: str) -> None:
    container = _container(service)
    _, prefix = SERVICES[service]
    [port] = container["ports"]
    assert _env(service)[f"{prefix}HTTP__PORT"]["value"] == str(port["containerPort"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    annotations = _named("Deployment", service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_object_selects_its_pods(service: str) -> None:
    deployment = _named("Deployment", service)
    selector = _named("Service", service)["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_that_reads_mongodb_is_told_where_it_is(service: str) -> None:
    if not reads_mongodb(service):
        pytest.skip(f"{service} does not read MongoDB")
    _, prefix = SERVICES[service]
    assert f"{prefix}MONGO__URI" in _env(service)


def test_every_pod_runs_unprivileged_and_read_only() -> None:
    """The namespace enforces the `restricted` Pod Security Standard; these are its rules."""
    for document in RESOURCES:
        if document["kind"] not in {"Deployment", "Job"}:
            continue
        pod = document["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            if document["kind"] == "Deployment":
                assert context["readOnlyRootFilesystem"] is True


def test_the_topics_job_creates_every_contract_and_dead_letter_topic() -> None:
    [container] = _named("Job", "scicat-topics")["spec"]["template"]["spec"]["containers"]
    words = set(re.findall(r"[\w.-]+", " ".join(container["args"])))
    assert not [topic for topic in ALL_TOPICS if topic not in words]


def test_every_service_image_is_one_the_kustomization_tags() -> None:
    tagged = {image["name"] for image in KUSTOMIZATION["images"]}
    assert {_container(service)["image"] for service in SERVICES} == tagged
    assert tagged == {f"scicat-{service}" for service in SERVICES}


def _run_topics_job(tmp_path: Path, ca: str | None = None, **env: str) -> list[dict[str, Any]]:
    """The Job's script under `sh`, with `kafka-topics.sh` replaced by a recorder: per call, its
    arguments, `KAFKA_OPTS` and the client files it was given. `ca`: a CA certificate where the
    kafka-ca patch mounts one."""
    [container] = _named("Job", "scicat-topics")["spec"]["template"]["spec"]["containers"]
    [mount] = container["volumeMounts"]
    recorder = tmp_path / "kafka-topics.sh"
    calls = tmp_path / "calls.jsonl"
    recorder.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"config = {str(tmp_path / 'config')!r}\n"
        "files = {n: open(os.path.join(config, n)).read() for n in sorted(os.listdir(config))}\n"
        f"with open({str(calls)!r}, 'a') as out:\n"
        "    out.write(json.dumps({'args': sys.argv[1:], 'opts': os.environ.get('KAFKA_OPTS'),"
        " 'files': files}) + '\\n')\n"
    )
    recorder.chmod(0o755)
    (tmp_path / "config").mkdir()
    (tmp_path / "kafka-ca").mkdir()
    if ca is not None:
        (tmp_path / "kafka-ca" / "ca.crt").write_text(ca)
    script = (
        container["args"][0]
        .replace("/opt/kafka/bin/kafka-topics.sh", str(recorder))
        .replace(mount["mountPath"] + "/", str(tmp_path / "config") + "/")
        .replace(KAFKA_CA_DIR + "/", str(tmp_path / "kafka-ca") + "/")
    )
    subprocess.run(
        [container["command"][0], "-c", script],
        env={"PATH": os.environ["PATH"], "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", **env},
        check=True,
    )
    return [json.loads(line) for line in calls.read_text().splitlines()]


def test_the_topics_job_connects_in_plaintext_by_default(tmp_path: Path) -> None:
    calls = _run_topics_job(tmp_path, KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
    assert len(calls) == len(ALL_TOPICS)
    for call in calls:
        config = call["args"][call["args"].index("--command-config") + 1]
        assert config.endswith("/client.properties")
        assert call["files"] == {"client.properties": "security.protocol=PLAINTEXT\n"}
        assert call["opts"] is None


@pytest.mark.parametrize(
    ("mechanism", "module"),
    [
        (None, "org.apache.kafka.common.security.scram.ScramLoginModule"),
        ("PLAIN", "org.apache.kafka.common.security.plain.PlainLoginModule"),
    ],
)
def test_the_topics_job_signs_in_as_the_services_do(
    tmp_path: Path, mechanism: str | None, module: str
) -> None:
    """SASL from the same ConfigMap keys and Secret as the services; a password with quotes and
    backslashes is escaped for the JAAS file, not cut short."""
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "scicat",
        "KAFKA_SASL_PASSWORD": 'p"a\\ss word',
    }
    if mechanism is not None:
        env["KAFKA_SASL_MECHANISM"] = mechanism
    [call, *_] = _run_topics_job(tmp_path, **env)

    assert call["files"]["client.properties"] == (
        f"security.protocol=SASL_SSL\nsasl.mechanism={mechanism or 'SCRAM-SHA-512'}\n"
    )
    assert call["files"]["jaas.conf"] == (
        f'KafkaClient {{\n  {module} required\n  username="scicat"\n'
        '  password="p\\"a\\\\ss word";\n};\n'
    )
    assert call["opts"] == (
        f"-Djava.security.auth.login.config={tmp_path / 'config' / 'jaas.conf'}"
    )


def _merged(patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` merged into the resource it names, as Kustomize merges it: containers by name
    (env and mounts appended), volumes appended."""
    merged = yaml.safe_load(yaml.safe_dump(_named(patch["kind"], patch["metadata"]["name"])))
    pod, extra = merged["spec"]["template"]["spec"], patch["spec"]["template"]["spec"]
    for patched in extra["containers"]:
        [container] = [c for c in pod["containers"] if c["name"] == patched["name"]]
        for field in ("env", "volumeMounts"):
            container[field] = container.get(field, []) + patched.get(field, [])
    pod["volumes"] = pod.get("volumes", []) + extra["volumes"]
    return merged


def test_the_kafka_ca_patches_cover_every_kafka_client_and_stay_valid() -> None:
    assert set(KAFKA_CA_PATCHES) == {*SERVICES, "topics-job"}
    for patch in KAFKA_CA_PATCHES.values():
        merged = _merged(patch)
        kubernetes_validate.validate(merged, KUBERNETES_VERSIONS[-1], strict=True)
        [volume] = patch["spec"]["template"]["spec"]["volumes"]
        assert volume["configMap"] == {
            "name": "scicat-kafka-ca",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        }
        [container] = patch["spec"]["template"]["spec"]["containers"]
        assert container["volumeMounts"] == [
            {"name": volume["name"], "mountPath": KAFKA_CA_DIR, "readOnly": True}
        ]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_kafka_ca_patch_points_the_service_at_the_mounted_file(service: str) -> None:
    [container] = KAFKA_CA_PATCHES[service]["spec"]["template"]["spec"]["containers"]
    [variable] = container["env"]
    assert not unknown_variables(service, [variable["name"]])
    assert variable["name"].endswith("_KAFKA__SECURITY__SSL_CAFILE")
    assert variable["value"] == f"{KAFKA_CA_DIR}/ca.crt"


def test_the_topics_job_trusts_the_mounted_ca_when_there_is_one(tmp_path: Path) -> None:
    [call, *_] = _run_topics_job(
        tmp_path, ca="-----BEGIN CERTIFICATE-----\n", KAFKA_SECURITY_PROTOCOL="SSL"
    )
    assert call["files"]["client.properties"] == (
        "security.protocol=SSL\nssl.truststore.type=PEM\n"
        f"ssl.truststore.location={tmp_path / 'kafka-ca' / 'ca.crt'}\n"
    )
