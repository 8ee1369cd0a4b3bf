"""Docker HEALTHCHECK for the service image: exit 0 when GET /healthz answers 200.

The port is the service's own setting: ``CORPUS_PORT`` when set, otherwise the
default port of the settings class of the service that runs as PID 1
(``python -m services.<name>``), read from that service's ``config`` module, so
the defaults live in one place (the services' code).
"""

from __future__ import annotations

import importlib
import os
import sys
import urllib.request


def service_port(cmdline: str = "/proc/1/cmdline") -> int:
    if os.environ.get("CORPUS_PORT"):
        return int(os.environ["CORPUS_PORT"])
    with open(cmdline, "rb") as f:
        argv = f.read().decode().split("\0")
    module = argv[argv.index("-m") + 1]  # services.<name>
    from shared.settings import CorpusSettings

    config = importlib.import_module(f"{module}.config")
    for value in vars(config).values():
        if isinstance(value, type) and issubclass(value, CorpusSettings) and value is not CorpusSettings:
            return value().port
    raise LookupError(f"no settings class in {module}.config")


def main() -> int:
    host = os.environ.get("CORPUS_HOST", "0.0.0.0")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    url = f"http://{host}:{service_port()}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
