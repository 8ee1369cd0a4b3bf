"""docker-compose.yml and the service image (deploy/docker/) checked without a Docker engine.

There is no Docker engine on the development machines or in CI, so the compose
topology cannot be started there. These tests read the files and hold them to
what the services really need: the four servers and three services, pinned
images, health-gated start order, service settings that name the compose hosts
and match the real settings classes, and published ports that match the ports
the services listen on. When the `docker compose` CLI is installed (it needs no
engine to parse), `docker compose config -q` validates the file against the
Compose specification as well.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from services.annotation.config import AnnotationSettings
from services.ingest.config import IngestSettings
from services.search.config import SearchSettings
from shared.settings import CorpusSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
VERSIONS_ENV = REPO / "deploy" / "local" / "versions.env"
DOCKER_DIR = REPO / "deploy" / "docker"

SERVERS = ("mongo", "elasticsearch", "minio", "rabbitmq")
SERVICES: dict[str, type[CorpusSettings]] = {
    "ingest": IngestSettings,
    "annotation": AnnotationSettings,
    "search": SearchSettings,
}
# The data directory of each server's image, which must sit on a named volume.
DATA_DIRS = {
    "mongo": "/data/db",
    "elasticsearch": "/usr/share/elasticsearch/data",
    "minio": "/data",
    "rabbitmq": "/var/lib/rabbitmq",
}
# The ports each server publishes on the host (container port == host port).
SERVER_PORTS = {
    "mongo": {27017},
    "elasticsearch": {9200},
    "minio": {9000, 9001},
    "rabbitmq": {5672, 15672},
}


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` / ``${VAR}``, with an empty environment."""

    def sub(match: re.Match[str]) -> str:
        return match.group(3) or ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}", sub, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def published(service: dict) -> list[tuple[str, int, int]]:
    """(host_ip, host_port, container_port) of each short-syntax port mapping."""
    out = []
    for entry in service.get("ports") or []:
        parts = str(entry).split(":")
        assert len(parts) == 3, f"{entry!r}: publish as HOST_IP:HOST_PORT:CONTAINER_PORT"
        host_ip, host_port, container_port = parts
        out.append((host_ip, int(host_port), int(container_port.split("/")[0])))
    return out


def image_tag(image: str) -> tuple[str, str | None]:
    name = image.partition("@")[0]
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:  # no tag (a ':' may belong to a registry host:port)
        return name, None
    return repo, tag


def healthcheck_test(service: dict) -> list[str] | str | None:
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return None
    test = check.get("test")
    if test in (None, [], "", ["NONE"]):
        return None
    return test


def load_versions() -> dict[str, str]:
    versions = {}
    for line in VERSIONS_ENV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


# --- topology -------------------------------------------------------------------


def test_the_four_servers_and_three_services_exist(services):
    assert set(services) == set(SERVERS) | set(SERVICES)


def test_server_images_are_pinned(services):
    for name in SERVERS:
        image = services[name].get("image")
        assert image, f"{name} runs an official image"
        repo, tag = image_tag(image)
        assert tag, f"{name}: {image!r} has no tag"
        assert tag != "latest" and "latest" not in tag, f"{name}: {image!r} floats"
        assert re.search(r"\d", tag), f"{name}: {image!r} names no version"


def test_the_official_images(services):
    assert image_tag(services["mongo"]["image"])[0] == "mongo"
    assert image_tag(services["mongo"]["image"])[1].startswith("7.")
    assert image_tag(services["elasticsearch"]["image"])[0] == "docker.elastic.co/elasticsearch/elasticsearch"
    assert image_tag(services["elasticsearch"]["image"])[1].startswith("8.")
    # MinIO publishes its images on quay.io only since Docker Hub's minio/minio went away.
    repo, tag = image_tag(services["minio"]["image"])
    assert repo in {"quay.io/minio/minio", "minio/minio"}
    assert tag.startswith("RELEASE.")
    repo, tag = image_tag(services["rabbitmq"]["image"])
    assert repo == "rabbitmq" and tag.endswith("-management"), "RabbitMQ with the management plugin"


def test_every_service_container_is_built_from_a_dockerfile_under_deploy(services):
    for name in SERVICES:
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name} is built, not pulled"
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        assert dockerfile.is_relative_to(REPO / "deploy"), f"{name}: {dockerfile} is not under deploy/"
        # The context must hold what the Dockerfile copies.
        for source in copy_sources(dockerfile):
            assert (context / source).exists(), f"{name}: COPY source {source} missing from the build context"


def test_every_service_runs_its_own_module(services):
    for name in SERVICES:
        command = services[name].get("command")
        assert command == [name], f"{name}: command {command!r} (the image's entrypoint takes the service name)"
        assert importlib.util.find_spec(f"services.{name}.__main__"), f"python -m services.{name} does not exist"


# --- start order and health -------------------------------------------------------


def test_every_server_has_a_healthcheck(services):
    for name in SERVERS:
        assert healthcheck_test(services[name]), f"{name} has no healthcheck"


def test_depends_on_targets_exist_and_wait_for_health(services):
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):  # the short form only waits for "started"
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            if healthcheck_test(services[target]):
                assert spec.get("condition") == "service_healthy", f"{name} -> {target} must wait for service_healthy"


def test_services_start_after_every_server_is_healthy(services):
    for name in SERVICES:
        depends = services[name].get("depends_on") or {}
        assert set(SERVERS) <= set(depends), f"{name} does not wait for {set(SERVERS) - set(depends)}"


def test_mongo_is_a_single_node_replica_set_rs0(services):
    mongo = services["mongo"]
    command = mongo["command"]
    if isinstance(command, str):
        command = command.split()
    assert command[command.index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in command, "mongod only listens on localhost otherwise"
    # The healthcheck initiates the set with the member name the services connect to.
    script = " ".join(healthcheck_test(mongo))
    assert "rs.initiate" in script and "'rs0'" in script and "mongo:27017" in script
    assert mongo.get("hostname", "mongo") == "mongo"


def test_elasticsearch_runs_single_node_without_security(services):
    env = environment(services["elasticsearch"])
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "false"
    assert "-Xms1g" in env["ES_JAVA_OPTS"] and "-Xmx1g" in env["ES_JAVA_OPTS"]
    assert "_cluster/health" in str(healthcheck_test(services["elasticsearch"]))


def test_elasticsearch_version_is_the_local_stacks(services):
    if not VERSIONS_ENV.is_file():
        pytest.skip(f"{VERSIONS_ENV.relative_to(REPO)} is absent: no local-stack version to compare with")
    expected = load_versions()["ES_VERSION"]
    assert image_tag(services["elasticsearch"]["image"])[1] == expected


def test_minio_and_rabbitmq_commands(services):
    assert services["minio"]["command"][:2] == ["server", "/data"]
    assert "--console-address" in services["minio"]["command"]
    # RabbitMQ stores its data under rabbit@<hostname>: without a fixed hostname
    # a re-created container would not find its queues on the volume.
    assert services["rabbitmq"].get("hostname")


def test_server_data_lives_on_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, path in DATA_DIRS.items():
        mounts = {}
        for volume in services[name].get("volumes") or []:
            source, _, target = str(volume).partition(":")
            mounts[target.split(":")[0]] = source
        assert path in mounts, f"{name}: {path} is not mounted"
        assert mounts[path] in declared, f"{name}: {mounts[path]} is not a named volume"


# --- service configuration ----------------------------------------------------------


def test_service_environment_names_real_settings(services):
    """Each CORPUS_* variable is a field of the service's settings class (extra="ignore"
    would silently drop a misspelt one)."""
    for name, settings_cls in SERVICES.items():
        for key in environment(services[name]):
            assert key.startswith("CORPUS_"), f"{name}: {key} is not a service setting"
            field = key.removeprefix("CORPUS_").lower()
            assert field in settings_cls.model_fields, f"{name}: {key} matches no setting of {settings_cls.__name__}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_service_settings_point_at_the_compose_hosts(services, name, monkeypatch):
    for key in list(os.environ):
        if key.startswith("CORPUS_"):
            monkeypatch.delenv(key)
    for key, value in environment(services[name]).items():
        monkeypatch.setenv(key, value)
    settings = SERVICES[name]()

    assert settings.host == "0.0.0.0", "a container must listen on every interface"
    mongo = urlsplit(settings.mongo_url)
    assert mongo.scheme == "mongodb" and mongo.hostname == "mongo" and (mongo.port or 27017) == 27017
    assert parse_qs(mongo.query).get("replicaSet") == ["rs0"]
    es = urlsplit(settings.es_url)
    assert (es.scheme, es.hostname, es.port) == ("http", "elasticsearch", 9200)
    assert settings.minio_endpoint == "minio:9000"
    amqp = urlsplit(settings.amqp_url)
    assert amqp.scheme == "amqp" and amqp.hostname == "rabbitmq" and (amqp.port or 5672) == 5672
    # Presigned URLs are for the host's browser: a published MinIO address, not `minio`.
    public_host, _, public_port = (settings.minio_public_endpoint or "").rpartition(":")
    assert public_host in {"127.0.0.1", "localhost"}
    assert int(public_port) in {p for _, p, _ in published(services["minio"])}


def test_minio_credentials_match(services):
    minio = environment(services["minio"])
    for name in SERVICES:
        env = environment(services[name])
        assert env["CORPUS_MINIO_ACCESS_KEY"] == minio["MINIO_ROOT_USER"]
        assert env["CORPUS_MINIO_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_publishes_the_port_it_listens_on(services, name):
    env = environment(services[name])
    port = int(env["CORPUS_PORT"])
    # The same port as outside Docker (the settings class's default), so URLs do not change.
    assert port == SERVICES[name].model_fields["port"].default
    assert published(services[name]) == [("127.0.0.1", port, port)]


def test_ports_are_published_on_loopback_only(services):
    for name, service in services.items():
        for host_ip, _, _ in published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip}"
    for name, ports in SERVER_PORTS.items():
        assert {(h, c) for _, h, c in published(services[name])} == {(p, p) for p in ports}


def test_no_two_containers_publish_the_same_host_port(services):
    seen: dict[int, str] = {}
    for name, service in services.items():
        for _, host_port, _ in published(service):
            assert host_port not in seen, f"{name} and {seen.get(host_port)} both publish {host_port}"
            seen[host_port] = name


# --- the image ------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def copy_sources(path: Path) -> list[str]:
    sources = []
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "COPY" and "--from=" not in rest:
            args = [a for a in rest.split() if not a.startswith("--")]
            sources.extend(args[:-1])
    return sources


def test_dockerfile():
    dockerfile = DOCKER_DIR / "Dockerfile"
    instructions = dockerfile_instructions(dockerfile)
    text = dockerfile.read_text()
    assert re.search(r"python:3\.11-slim", text), "python:3.11-slim base"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the services run as a non-root user"
    assert any(keyword == "HEALTHCHECK" and "healthcheck" in rest for keyword, rest in instructions)
    exposed = {int(p) for keyword, rest in instructions if keyword == "EXPOSE" for p in rest.split()}
    assert {settings.model_fields["port"].default for settings in SERVICES.values()} <= exposed
    assert "[test]" not in text, "no test extras in the image"
    assert any(keyword == "ENTRYPOINT" for keyword, _ in instructions)


def test_dockerignore_keeps_what_the_dockerfile_copies():
    patterns = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the context is an allowlist"
    allowed = {p.lstrip("!").rstrip("/") for p in patterns if p.startswith("!")}
    for source in copy_sources(DOCKER_DIR / "Dockerfile"):
        assert source.rstrip("/") in allowed, f"COPY {source} is excluded by .dockerignore"


@pytest.mark.parametrize("name", list(SERVICES))
def test_entrypoint_starts_the_named_service(tmp_path, name):
    """The entrypoint turns `<service>` into `python -m services.<service>` (a stub python records it)."""
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\necho "$@"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", str(DOCKER_DIR / "entrypoint.sh"), name], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["-m", f"services.{name}"]


def test_entrypoint_without_arguments_is_a_usage_error():
    result = subprocess.run(["sh", str(DOCKER_DIR / "entrypoint.sh")], capture_output=True, text=True)
    assert result.returncode == 64 and "usage" in result.stderr


@pytest.mark.parametrize("name", list(SERVICES))
def test_image_healthcheck_finds_each_services_port(tmp_path, monkeypatch, name):
    spec = importlib.util.spec_from_file_location("corpus_healthcheck", DOCKER_DIR / "healthcheck.py")
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"\0".join([b"python", b"-m", f"services.{name}".encode(), b""]))

    monkeypatch.delenv("CORPUS_PORT", raising=False)
    assert healthcheck.service_port(str(cmdline)) == SERVICES[name].model_fields["port"].default
    monkeypatch.setenv("CORPUS_PORT", "9123")
    assert healthcheck.service_port(str(cmdline)) == 9123


# --- the Compose CLI, where installed ---------------------------------------------------------


def compose_cli_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker compose version` failed: {exc}"
    if probe.returncode != 0:
        return f"the docker CLI has no compose plugin (`docker compose version`: {probe.stderr.strip()[:200]})"
    return None


def test_docker_compose_config_accepts_the_file():
    """`docker compose config` parses, interpolates and validates against the Compose spec; it needs no engine."""
    reason = compose_cli_unavailable()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
