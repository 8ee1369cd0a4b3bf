#!/bin/sh
# Container entrypoint: `ingest`, `annotation` or `search` starts that service
# (`python -m services.<name>`, as PID 1 so it receives SIGTERM); anything else is
# run as a command (e.g. `corpus --help`, `sh`).
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: <ingest|annotation|search> | <command> [args...]" >&2
    exit 64
fi

case "$1" in
    ingest | annotation | search)
        service="$1"
        shift
        exec python -m "services.${service}" "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
