#!/usr/bin/env bash
# Run idm on this machine: web server, Celery worker and Celery beat, in the foreground.
#
#   bash scripts/run.sh              # then open http://127.0.0.1:8000 (IDM_BIND changes the address)
#
# With no configuration it uses an SQLite file and a filesystem broker in var/, so nothing else has
# to run; set DATABASE_URL and REDIS_URL for PostgreSQL and Redis (see README.md, docs/deploy.md).
# Ctrl-C (or SIGTERM) stops the three processes this script started, and only those.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

PY=.venv/bin/python
BIND="${IDM_BIND:-127.0.0.1:8000}"
VAR="${IDM_VAR_DIR:-$ROOT/var}"
mkdir -p "$VAR"

"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput --verbosity 0
# Built-in roles and the first administrator; both commands are idempotent. Run each one only
# once the app provides it, so a half-built checkout still starts.
for command in seed_roles create_first_admin; do
    if "$PY" manage.py help "$command" >/dev/null 2>&1; then
        "$PY" manage.py "$command"
    else
        echo "run: manage.py $command is not available yet; skipped"
    fi
done

pids=()
stop_children() {
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        echo "run: stopping ${pids[*]}"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        # Give them 20 s for a warm shutdown (a running task finishes), then force.
        for _ in $(seq 40); do
            kill -0 "${pids[@]}" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap 'stop_children; exit 130' INT
trap 'stop_children; exit 143' TERM
trap stop_children EXIT

# Metrics of every gunicorn and Celery process on this host add up in one directory (ops/metrics.py).
export PROMETHEUS_MULTIPROC_DIR="$VAR/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
# gunicorn 27's control socket defaults to ~/.gunicorn/gunicorn.ctl, which a second idm on the same host
# would take over: keep it in this instance's var/.
.venv/bin/gunicorn idm.wsgi:application --bind "$BIND" --workers 2 --timeout 120 \
    --control-socket "$VAR/gunicorn.ctl" \
    --access-logfile - --logger-class idm.gunicorn_logging.RedactingLogger \
    --error-logfile - --forwarded-allow-ips 127.0.0.1 &
pids+=($!)
.venv/bin/celery -A idm worker --loglevel INFO --concurrency 2 &
pids+=($!)
.venv/bin/celery -A idm beat --loglevel INFO --schedule "$VAR/celerybeat-schedule" &
pids+=($!)

echo "run: idm on http://$BIND (gunicorn ${pids[0]}, celery worker ${pids[1]}, celery beat ${pids[2]}); Ctrl-C stops"
# If any of the three exits, stop the others too: a half-running console is worse than none.
status=0
wait -n "${pids[@]}" || status=$?
echo "run: a child process exited (status $status); stopping the rest"
exit "$status"
