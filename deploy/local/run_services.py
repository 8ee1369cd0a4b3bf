"""Start the three services as processes, wait until each is ready, print where they listen.

Ctrl-C (or SIGTERM) stops them cleanly; if one dies, the others are stopped too.
Run by ``make run`` after ``make stack``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

SERVICES = {"ingest": 8001, "annotation": 8002, "search": 8003}
READY_TIMEOUT_SECONDS = 90


def _port(name: str) -> int:
    return int(os.environ.get(f"CORPUS_{name.upper()}_PORT", SERVICES[name]))


def derived_settings(environ: dict[str, str]) -> dict[str, str]:
    """The settings that name the services' own addresses, for the ports chosen (``CORPUS_<NAME>_PORT``),
    unless set: with other ports, the admin page's calls were refused by CORS (its origin was still :8003)."""
    ports = {name: int(environ.get(f"CORPUS_{name.upper()}_PORT", default)) for name, default in SERVICES.items()}
    derived = {
        "CORPUS_CORS_ORIGINS": json.dumps([f"http://127.0.0.1:{ports['search']}", f"http://localhost:{ports['search']}"]),
        "CORPUS_ADMIN_INGEST_URL": f"http://127.0.0.1:{ports['ingest']}",
        "CORPUS_ADMIN_ANNOTATION_URL": f"http://127.0.0.1:{ports['annotation']}",
        "CORPUS_SEARCH_URL": f"http://127.0.0.1:{ports['search']}",
    }
    return {key: value for key, value in derived.items() if key not in environ}


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return json.load(response).get("status") == "ready"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> int:
    # Ctrl-C must stop us even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    procs: dict[str, subprocess.Popen] = {}
    derived = derived_settings(dict(os.environ))
    for name in SERVICES:
        env = {**os.environ, **derived, "CORPUS_PORT": str(_port(name))}
        # Each service in its own process group: a terminal's Ctrl-C reaches only this launcher,
        # which asks each service to shut down; their worker pools are then closed by them, not killed mid-task.
        procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env, process_group=0)

    def stop(*_: object) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                if procs[name].poll() is not None:
                    print(f"{name} exited with {procs[name].returncode}; see its log above", file=sys.stderr)
                    stop()
                    return 1
                if _ready(_port(name)):
                    pending.discard(name)
            time.sleep(0.3)
        if pending:
            print(f"not ready after {READY_TIMEOUT_SECONDS}s: {', '.join(sorted(pending))}", file=sys.stderr)
            stop()
            return 1
        print("\nImage Corpus is up:", flush=True)
        for name in SERVICES:
            port = _port(name)
            print(f"  {name:<11} http://127.0.0.1:{port}   (OpenAPI: /openapi.json, metrics: /metrics)", flush=True)
        print(f"  admin page  http://127.0.0.1:{_port('search')}/admin   (give it the admin key)", flush=True)
        print("Try (K = the admin key, printed on a fresh install or set as CORPUS_ADMIN_KEY):", flush=True)
        print(f'  curl -H "Authorization: Bearer $K" -F file=@photo.jpg -F tags=cat http://127.0.0.1:{_port("ingest")}/v1/images', flush=True)
        print(f"  curl -H \"Authorization: Bearer $K\" 'http://127.0.0.1:{_port('search')}/v1/search?q=cat'", flush=True)
        print("Ctrl-C stops the services (the stack keeps running; `make stop` stops it).\n", flush=True)
        while all(proc.poll() is None for proc in procs.values()):
            time.sleep(0.5)
        dead = [name for name, proc in procs.items() if proc.poll() is not None]
        print(f"service(s) exited: {', '.join(dead)}; stopping the others", file=sys.stderr)
        stop()
        return 1
    except KeyboardInterrupt:
        stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
