"""deploy/kubernetes, checked offline: every manifest document against the schema of its kind, and the facts that
tie the documents to each other and to the code.

Built-in kinds (Deployment, Service, PodDisruptionBudget, ConfigMap, Secret, ServiceAccount, Namespace) are
validated against the OpenAPI schemas of Kubernetes 1.34 that kubernetes-validate bundles, in their strict form
(an unknown field is refused, as `kubectl apply` does). Custom resources are validated against the
openAPIV3Schema of the CRDs their operators ship: Strimzi 1.2.0 (Kafka, KafkaNodePool, KafkaTopic, KafkaUser) and
CloudNativePG 1.29.0 (Cluster), fetched once by deploy/kubernetes/fetch-schemas.sh. A missing validator or schema
fails; nothing here skips.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from backhaul import kafka as backhaul_kafka
from backhaul.secretbox import Keyring, SecretKeyError, parse_key_file
from backhaul.settings import PROJECT_ROOT, Settings
from program.cli import DEMO_PROCESSES, build_parser, cmd_api, cmd_worker
from program.roles import METRICS_PORT_OFFSETS, POSTGRES_ROLES, ROLES
from schemas.topics import ALL_TOPICS

K8S = PROJECT_ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.34.0"
BUILT_IN_GROUPS = {"", "apps", "policy"}
CRD_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io"}
# What Strimzi's User Operator puts in the Secret it makes for a SCRAM-SHA-512 KafkaUser (same name as the user):
# Strimzi's documentation, "KafkaUser" / "SCRAM-SHA-512 authentication".
KAFKA_USER_SECRET_KEYS = {"password", "sasl.jaas.config"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# Loading ------------------------------------------------------------------------------------------------------
def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file#index kind/name, document) for every document of every manifest file."""
    found = []
    for path in manifest_files():
        for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d is not None):
            found.append((f"{path.name}#{i} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}", doc))
    return found


DOCUMENTS = load_documents()


def of_kind(kind: str, docs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [d for d in (docs if docs is not None else [d for _, d in DOCUMENTS]) if d["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return doc


def group_of(doc: dict[str, Any]) -> str:
    api_version = doc["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def config_map() -> dict[str, str]:
    return one("ConfigMap", "backhaul-config")["data"]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def command_of(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def worker_roles(deployment: dict[str, Any]) -> list[str] | None:
    """The roles a worker Deployment runs (None for the API)."""
    argv = command_of(containers(deployment)[0])
    if argv[1:2] != ["worker"]:
        return None
    return [r for r in argv[argv.index("--roles") + 1].split(",") if r]


# Schemas ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schemas_dir() -> Path:
    """The CRDs, fetched by deploy/kubernetes/fetch-schemas.sh (at once when already there)."""
    done = subprocess.run([str(K8S / "fetch-schemas.sh")], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"deploy/kubernetes/fetch-schemas.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def strict(schema: Any) -> Any:
    """A CRD's structural schema as JSON Schema, applied as the API server does with strict field validation:
    an object that lists its properties refuses any other, unless it keeps unknown fields; `nullable` admits
    null."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@pytest.fixture(scope="module")
def crd_validators(schemas_dir: Path) -> dict[tuple[str, str, str], jsonschema.protocols.Validator]:
    """(group, version, kind) -> a validator of that custom resource, from every CRD fetched."""
    validators = {}
    for path in sorted(schemas_dir.glob("*/*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                key = (spec["group"], version["name"], spec["names"]["kind"])
                validators[key] = jsonschema.Draft4Validator(schema)
    return validators


def object_meta_validator() -> jsonschema.protocols.Validator:
    """ObjectMeta of the same Kubernetes version, for the metadata of custom resources (their CRDs say only
    `type: object`; the API server checks it as for any object)."""
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
    definitions = json.loads((folder / "_definitions.json").read_text())
    registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
    ref = {"$ref": f"{definitions['$id']}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return jsonschema.Draft202012Validator(ref, registry=registry)


OBJECT_META = object_meta_validator()


def problems(doc: dict[str, Any], crds: dict[tuple[str, str, str], Any]) -> list[str]:
    """What the schema of the document's kind refuses in it (empty: valid)."""
    group = group_of(doc)
    found = []
    name = doc.get("metadata", {}).get("name", "")
    if not DNS_SUBDOMAIN.fullmatch(name):
        found.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
    if group in BUILT_IN_GROUPS:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            found.append(f"{'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            found.append(exc.message)
        return found
    if group not in CRD_GROUPS:
        return [*found, f"no schema is known for {doc['apiVersion']} {doc['kind']}"]
    key = (group, doc["apiVersion"].split("/")[1], doc["kind"])
    if key not in crds:
        return [*found, f"the fetched CRDs have no schema for {key}"]
    for error in crds[key].iter_errors(doc):
        found.append(f"{'.'.join(map(str, error.path))}: {error.message}")
    for error in OBJECT_META.iter_errors(doc.get("metadata", {})):
        found.append(f"{'.'.join(['metadata', *map(str, error.path)])}: {error.message}")
    return found


# Every document against its schema ---------------------------------------------------------------------------
def test_the_manifests_are_there() -> None:
    kinds = {d["kind"] for _, d in DOCUMENTS}
    assert {"Deployment", "PodDisruptionBudget", "Service", "ConfigMap", "Secret", "Kafka", "KafkaNodePool",
            "KafkaTopic", "KafkaUser", "Cluster"} <= kinds
    # kubernetes-validate falls back to an older version it has: the stated one must be there.
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


@pytest.mark.parametrize("doc", [d for _, d in DOCUMENTS], ids=[i for i, _ in DOCUMENTS])
def test_every_document_is_valid_for_its_kind(doc, crd_validators) -> None:
    assert problems(doc, crd_validators) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation: set the value at a dotted path (numbers index lists)."""
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return mutate


# case -> (the document, the mutation, what the refusal must say)
BROKEN = {
    "replicas not a number": (("Deployment", "backhaul-ingest"), _set("spec.replicas", "two"),
                              "spec.replicas: 'two' is not of type 'integer'"),
    "a misspelt probe": (("Deployment", "backhaul-router"),
                         _set("spec.template.spec.containers.0.livenessprobe", {"periodSeconds": 5}),
                         "('livenessprobe' was unexpected)"),
    "a PDB budget of the wrong type": (("PodDisruptionBudget", "backhaul-api"), _set("spec.maxUnavailable", [1]),
                                       "spec.maxUnavailable: [1] is not valid"),
    "Kafka replicas, gone from Strimzi's v1 API": (("Kafka", "backhaul"), _set("spec.kafka.replicas", 3),
                                                   "spec.kafka: Additional properties are not allowed ('replicas'"),
    "an unknown listener type": (("Kafka", "backhaul"), _set("spec.kafka.listeners.0.type", "public"),
                                 "spec.kafka.listeners.0.type: 'public' is not one of"),
    "a topic of no partition": (("KafkaTopic", "frames"), _set("spec.partitions", 0),
                                "spec.partitions: 0 is less than the minimum of 1"),
    "an ACL on no resource type": (("KafkaUser", "backhaul"),
                                   _set("spec.authorization.acls.0.resource.type", "topics"),
                                   "spec.authorization.acls.0.resource.type: 'topics' is not one of"),
    "a node pool of unknown role": (("KafkaNodePool", "brokers"), _set("spec.roles", ["leader"]),
                                    "spec.roles.0: 'leader' is not one of"),
    "instances not a number": (("Cluster", "backhaul-db"), _set("spec.instances", "three"),
                               "spec.instances: 'three' is not of type 'integer'"),
    "a misspelt storage size": (("Cluster", "backhaul-db"), _set("spec.storage.sise", "1Gi"),
                                "spec.storage: Additional properties are not allowed ('sise'"),
    "custom resource metadata with an unknown field": (("Cluster", "backhaul-db"), _set("metadata.label", {}),
                                                       "metadata: Additional properties are not allowed ('label'"),
    "a name Kubernetes refuses": (("KafkaTopic", "dead-letters"), _set("metadata.name", "Dead_Letters"),
                                  "is not a DNS-1123 subdomain"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_document_is_refused(case, crd_validators) -> None:
    """The validation above can fail: each mutation of a valid document is refused, for what it broke."""
    (kind, name), mutate, reason = BROKEN[case]
    doc = copy.deepcopy(one(kind, name))
    assert problems(doc, crd_validators) == []
    mutate(doc)
    found = problems(doc, crd_validators)
    assert any(reason in problem for problem in found), found


# Kafka: topics, cluster, users --------------------------------------------------------------------------------
class RecordingAdmin:
    """Stands in for Kafka's admin client: no topic exists, and whatever is created is kept."""

    created: list[Any] = []

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[Any]) -> None:
        self.created.extend(topics)


async def topics_the_code_creates(monkeypatch: pytest.MonkeyPatch, pod: Settings) -> dict[str, Any]:
    """What `backhaul.kafka.ensure_topics` asks Kafka for when a worker starts with the settings `pod`:
    name -> NewTopic (partitions, replication factor, configs)."""
    RecordingAdmin.created = []
    monkeypatch.setattr(backhaul_kafka, "make_admin", lambda **_: RecordingAdmin())
    monkeypatch.setattr(backhaul_kafka, "settings", lambda: pod)
    await backhaul_kafka.ensure_topics()
    return {t.name: t for t in RecordingAdmin.created}


def topic_problems(created: dict[str, Any], topics: list[dict[str, Any]]) -> list[str]:
    found = []
    by_name = {t.get("spec", {}).get("topicName") or t["metadata"]["name"]: t for t in topics}
    for name in sorted(set(created) - set(by_name)):
        found.append(f"no KafkaTopic for {name}")
    for name in sorted(set(by_name) - set(created)):
        found.append(f"KafkaTopic {name} is no topic of Backhaul's")
    for name in sorted(set(created) & set(by_name)):
        spec, wanted = by_name[name]["spec"], created[name]
        if spec.get("partitions") != wanted.num_partitions:
            found.append(f"{name}: {spec.get('partitions')} partitions, the code makes {wanted.num_partitions}")
        if spec.get("replicas") != 3 or spec["replicas"] < wanted.replication_factor:
            found.append(f"{name}: replicas {spec.get('replicas')}, not 3 (the code: {wanted.replication_factor})")
        config = {k: str(v) for k, v in spec.get("config", {}).items()}
        for key, value in wanted.topic_configs.items():
            if config.get(key) != value:
                found.append(f"{name}: {key} is {config.get(key)!r}, the code makes it {value!r}")
        if config.get("min.insync.replicas", "2") != "2":
            found.append(f"{name}: min.insync.replicas {config['min.insync.replicas']}, not 2")
    return found


async def test_every_topic_the_code_creates_has_its_kafka_topic(monkeypatch) -> None:
    topics = of_kind("KafkaTopic")
    workers = [d for d in of_kind("Deployment") if worker_roles(d) is not None]
    for deployment in workers:  # every worker makes the topics that are missing when it starts
        created = await topics_the_code_creates(monkeypatch, settings_in(containers(deployment)[0], monkeypatch))
        assert set(created) == {spec.name for spec in ALL_TOPICS}
        assert {t.num_partitions for t in created.values()} == {int(config_map()["BACKHAUL_KAFKA_PARTITIONS"])}
        assert topic_problems(created, topics) == [], deployment["metadata"]["name"]
    # The check can fail: a topic left out, and a compacted topic that is not.
    assert topic_problems(created, [t for t in topics if t["metadata"]["name"] != "frames"]) \
        == ["no KafkaTopic for frames"]
    state = copy.deepcopy(one("KafkaTopic", "ingest.state"))
    del state["spec"]["config"]["cleanup.policy"]
    others = [t for t in topics if t["metadata"]["name"] != "ingest.state"]
    assert topic_problems(created, [*others, state]) \
        == ["ingest.state: cleanup.policy is None, the code makes it 'compact'"]


def test_the_kafka_cluster_is_kraft_with_three_brokers_and_the_listener_backhaul_speaks() -> None:
    [kafka] = of_kind("Kafka")
    pools = [p for p in of_kind("KafkaNodePool") if p["metadata"]["labels"]["strimzi.io/cluster"]
             == kafka["metadata"]["name"]]
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) == 3
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) >= 3
    config = kafka["spec"]["kafka"]["config"]
    assert int(config["min.insync.replicas"]) == 2 and int(config["default.replication.factor"]) == 3
    for topic in of_kind("KafkaTopic") + of_kind("KafkaUser"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(lst["authentication"]["type"] == "scram-sha-512" for lst in listeners)
    # BACKHAUL_KAFKA names the bootstrap service of one listener, which must speak what Backhaul's client does.
    host, port = config_map()["BACKHAUL_KAFKA"].split(":")
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap"
    [listener] = [lst for lst in listeners if lst["port"] == int(port)]
    client = backhaul_kafka.connection_options(bootstrap="unused:9092", username="u", password="p")
    assert listener["tls"] == (client["security_protocol"] == "SASL_SSL")
    assert listener["authentication"]["type"] == client["sasl_mechanism"].lower()
    assert listener["type"] == "internal"


def allowed(user: dict[str, Any], resource_type: str, name: str, operation: str) -> bool:
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if acl.get("type", "allow") != "allow" or resource["type"] != resource_type:
            continue
        matches = (name == resource["name"] if resource.get("patternType", "literal") == "literal"
                   else name.startswith(resource["name"]))
        if matches and (operation in acl["operations"] or "All" in acl["operations"]):
            return True
    return False


def stage_groups() -> set[str]:
    """The consumer group of every role that consumes in one."""
    from ingest.stage import IngestStage
    from router.stage import RouterStage
    from simulator.stations import StationsStage
    from store.stage import StoreStage
    from workers import delivery
    from workers.acks import AcksStage
    from workers.downlink_dispatch import DownlinkDispatchStage
    return {IngestStage.group, RouterStage.group, StoreStage.group, StationsStage.group, AcksStage.group,
            DownlinkDispatchStage.group, delivery.GROUP}


def test_backhauls_kafka_user_may_use_its_topics_and_groups_and_create_nothing() -> None:
    user = one("KafkaUser", config_map()["BACKHAUL_KAFKA_USERNAME"])
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    for spec in ALL_TOPICS:
        for operation in ("Read", "Write", "Describe"):
            assert allowed(user, "topic", spec.name, operation), (spec.name, operation)
    groups = stage_groups()
    assert len(groups) == 7
    for group in groups:
        assert allowed(user, "group", group, "Read"), group
    assert not any(allowed(user, "topic", spec.name, "Create") for spec in ALL_TOPICS)
    assert not allowed(user, "topic", "some-other-topic", "Read")


def test_the_example_gateway_may_only_write_frames() -> None:
    gateway = one("KafkaUser", "gateway-example")
    assert gateway["spec"]["authentication"]["type"] == "scram-sha-512"
    assert allowed(gateway, "topic", "frames", "Write")
    for acl in gateway["spec"]["authorization"]["acls"]:
        assert acl["resource"] == {"type": "topic", "name": "frames", "patternType": "literal"}
        assert set(acl["operations"]) <= {"Write", "Describe"}
    assert not allowed(gateway, "topic", "frames", "Read")
    assert not any(allowed(gateway, "topic", spec.name, "Write") for spec in ALL_TOPICS if spec.name != "frames")


# Secrets ------------------------------------------------------------------------------------------------------
def cnpg_app_secret_keys(schemas_dir: Path) -> set[str]:
    """The keys CloudNativePG puts in a Cluster's app Secret, read from its source (pkg/specs/secrets.go)."""
    [source] = schemas_dir.glob("cnpg-*/secrets.go")
    block = re.search(r"StringData: map\[string\]string\{(.*?)\n\t\t\},", source.read_text(), re.S)
    assert block, f"no StringData in {source}"
    return set(re.findall(r'"([^"]+)":', block.group(1)))


def secrets_made(schemas_dir: Path) -> dict[str, set[str]]:
    """Secret name -> its keys, for every Secret the manifests declare or the operators make from them."""
    made = {u["metadata"]["name"]: KAFKA_USER_SECRET_KEYS for u in of_kind("KafkaUser")}
    app_keys = cnpg_app_secret_keys(schemas_dir)
    made |= {f"{c['metadata']['name']}-app": app_keys for c in of_kind("Cluster")}
    made |= {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {})) for s in of_kind("Secret")}
    return made


def secret_references(deployment: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(Secret name, key or None for the whole Secret) of every use in a Deployment's pods."""
    pod = deployment["spec"]["template"]["spec"]
    for container in pod["containers"]:
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref["key"]
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                yield source["secretRef"]["name"], None
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            items = volume["secret"].get("items")
            for item in items or [{"key": None}]:
                yield volume["secret"]["secretName"], item["key"]


def test_every_secret_used_is_declared_or_made_by_an_operator(schemas_dir) -> None:
    made = secrets_made(schemas_dir)
    assert {"uri", "password", "username", "host"} <= made["backhaul-db-app"]
    references = [(d["metadata"]["name"], *ref) for d in of_kind("Deployment") for ref in secret_references(d)]
    assert len(references) >= 8
    for deployment, name, key in references:
        assert name in made, f"{deployment} uses the Secret {name}, which nothing makes"
        assert key is None or key in made[name], f"{deployment} uses {name}/{key}; it holds {sorted(made[name])}"


def test_the_example_secret_holds_no_real_key() -> None:
    for secret in of_kind("Secret"):
        for key, text in secret.get("stringData", {}).items():
            with pytest.raises(SecretKeyError):
                Keyring(parse_key_file(text), key)


def secrets_keys_declared() -> set[str]:
    return set(one("Secret", "backhaul-secret-keys")["stringData"])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """Every variable a container gets: the ConfigMaps it loads, then its own (a value or a reference)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= one("ConfigMap", source["configMapRef"]["name"])["data"]
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


def test_each_process_gets_the_secrets_it_needs() -> None:
    cluster = one("Cluster", "backhaul-db")["metadata"]["name"]
    user = config_map()["BACKHAUL_KAFKA_USERNAME"]
    for deployment in of_kind("Deployment"):
        container = containers(deployment)[0]
        env, roles = env_of(container), worker_roles(deployment)
        if roles is not None:  # every worker uses Kafka
            assert env["BACKHAUL_KAFKA_PASSWORD"] == {"secretKeyRef": {"name": user, "key": "password"}}
        if roles is None or POSTGRES_ROLES & set(roles):
            assert env["BACKHAUL_DATABASE_URL"] == {"secretKeyRef": {"name": f"{cluster}-app", "key": "uri"}}
        # Processes that open or seal callback secrets refuse to start without the keys (program/roles.py,
        # oss/app.py); the key file must be in a mounted Secret.
        if roles is None or "delivery" in roles:
            key_file = Path(env["BACKHAUL_SECRET_KEY_FILE"])
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
            [volume] = [name for name, path in mounts.items() if Path(path) == key_file.parent]
            assert volumes[volume]["secret"]["secretName"] == "backhaul-secret-keys"
            assert key_file.name in secrets_keys_declared()
        else:
            assert "BACKHAUL_SECRET_KEY_FILE" not in env and "BACKHAUL_SECRET_KEYS" not in env


# Deployments: commands, ports, probes, resources, budgets -----------------------------------------------------
def test_every_deployment_runs_a_layout_the_cli_accepts_as_backhaul_up_does() -> None:
    parser = build_parser()
    layouts = set()
    for deployment in of_kind("Deployment"):
        argv = command_of(containers(deployment)[0])
        assert argv[0] == "backhaul"
        args = parser.parse_args(argv[1:])
        assert args.func in (cmd_worker, cmd_api)
        roles = worker_roles(deployment)
        if roles is not None:
            assert set(roles) <= set(ROLES) and len(roles) == len(set(roles))
        layouts.add(tuple(argv[1:]))
    assert layouts == {tuple(argv) for name, argv in DEMO_PROCESSES if name != "receiver"}


def settings_in(container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the container's process reads from its environment."""
    with monkeypatch.context() as m:
        for name in [n for n in os.environ if n.startswith("BACKHAUL_")]:
            m.delenv(name)
        for name, value in env_of(container).items():
            m.setenv(name, value if isinstance(value, str) else "from-a-secret")
        return Settings.from_env()


def test_probes_reach_the_port_the_process_listens_on(monkeypatch) -> None:
    for deployment in of_kind("Deployment"):
        container = containers(deployment)[0]
        s = settings_in(container, monkeypatch)
        roles = worker_roles(deployment)
        # program/roles.py run_roles: BACKHAUL_METRICS_PORT, else the base + the offset of the first role.
        port, host = ((s.metrics_port or s.metrics_port_base + METRICS_PORT_OFFSETS[roles[0]], s.metrics_host)
                      if roles is not None else (s.api_port, s.api_host))
        assert host == "0.0.0.0", deployment["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            target = container[probe]["httpGet"]["port"]
            assert ports.get(target, target) == port, (deployment["metadata"]["name"], probe)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)


def test_every_deployment_has_probes_resources_and_a_safe_pod() -> None:
    deployments = of_kind("Deployment")
    assert len(deployments) == 6
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        # A Service named backhaul-api would otherwise give BACKHAUL_API_PORT=tcp://...
        assert pod["enableServiceLinks"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert "httpGet" in container[probe], (name, probe)
            # Liveness waits out a restore (25 s at a million devices), the startup probe a slow start.
            live = container["livenessProbe"]
            assert live["periodSeconds"] * live["failureThreshold"] >= 60, name
            start = container["startupProbe"]
            assert start["periodSeconds"] * start["failureThreshold"] >= 300, name
            if worker_roles(deployment) is not None:
                assert container["readinessProbe"]["httpGet"]["path"] == "/ready", name
            requests, limits = container["resources"]["requests"], container["resources"]["limits"]
            assert {"cpu", "memory"} <= set(requests) and "memory" in limits, name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_replicas_fit_the_partitions() -> None:
    """A replica given no partition never says ready: replicas plus the surge of an upgrade must all get one."""
    partitions = int(config_map()["BACKHAUL_KAFKA_PARTITIONS"])
    for deployment in of_kind("Deployment"):
        if worker_roles(deployment) is None:
            continue
        spec = deployment["spec"]
        surge = spec["strategy"]["rollingUpdate"]["maxSurge"]
        assert isinstance(surge, int) and spec["replicas"] + surge <= partitions, deployment["metadata"]["name"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_deployment_has_a_disruption_budget_and_services_find_their_pods() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for deployment in of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
        mine = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(mine) == 1, deployment["metadata"]["name"]
        budget = mine[0]["spec"]
        assert budget.get("maxUnavailable", 0) < deployment["spec"]["replicas"] or budget.get("minAvailable")
    for service in of_kind("Service"):
        pods = [d for d in of_kind("Deployment")
                if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        assert pods, service["metadata"]["name"]
        names = {p["name"] for d in pods for c in containers(d) for p in c["ports"]}
        assert all(p["targetPort"] in names for p in service["spec"]["ports"])


# The kustomization and the image ------------------------------------------------------------------------------
def test_the_kustomization_applies_every_manifest_but_the_examples() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    expected = {p.name for p in manifest_files() if not p.name.endswith(".example.yaml")}
    assert set(kustomization["resources"]) == expected and len(kustomization["resources"]) == len(expected)
    namespace = kustomization["namespace"]
    for _, doc in DOCUMENTS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for d in of_kind("Deployment") for c in containers(d)}
    [override] = kustomization["images"]
    assert images == {f"{override['name']}:{version}"} and override["newTag"] == version


def test_the_containerfile_builds_every_package_for_the_user_the_pods_run_as() -> None:
    text = (K8S / "Containerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    for package in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        name = package.rstrip("*")
        assert f"COPY {name}/ {name}/" in text, name
    [user] = re.findall(r"^USER (\d+)", text, re.M)
    assert user != "0"
    for deployment in of_kind("Deployment"):
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)
    assert 'ENTRYPOINT ["backhaul"]' in text
