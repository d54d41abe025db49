#!/bin/sh
# The image's one entry point:
#   serve      the prediction API on 0.0.0.0:$PORT (8500), $WORKERS processes (2)
#   dashboard  the Streamlit dashboard on 0.0.0.0:$PORT (8501)
#   worker     run queued jobs until none is left (python -m core.worker)
#   monitor    snapshots, alert rules and messages every MONITOR_INTERVAL_SECONDS
#   anything else: a python -m core command (bootstrap, versions, drift, keys, ...)
# Options after the command are passed on (e.g. `serve --workers 4`).
set -e
command="${1:-serve}"
[ "$#" -gt 0 ] && shift
case "$command" in
    serve)
        exec python -m core serve --host 0.0.0.0 --port "${PORT:-8500}" \
            --workers "${WORKERS:-2}" "$@" ;;
    dashboard)
        exec python -m streamlit run dashboard/app.py --server.address 0.0.0.0 \
            --server.port "${PORT:-8501}" "$@" ;;
    worker)
        exec python -m core.worker "$@" ;;
    monitor)
        exec python -m core monitor run "$@" ;;
    *)
        exec python -m core "$command" "$@" ;;
esac
