#!/usr/bin/env bash
# Run every check idm has: ruff, then the pytest suite on SQLite and on PostgreSQL.
#
#   bash scripts/test.sh                         # everything (what CI runs, via .ci/run)
#   bash scripts/test.sh -k scim -x              # extra arguments go to pytest
#   IDM_TEST_DBS=sqlite bash scripts/test.sh     # choose databases: "sqlite", "postgres" or both
#   IDM_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/idm_mine bash scripts/test.sh
#                                                # another database name (pytest-django adds test_)
#
# Needs PostgreSQL and Redis on 127.0.0.1 (started here when they are not running). Every step
# runs even when an earlier one failed; the exit status is non-zero if any failed, and pytest's
# "no tests collected" (exit 5) counts as a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

IDM_TEST_DBS="${IDM_TEST_DBS:-sqlite postgres}"
PG_URL="${IDM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/idm}"
export IDM_TEST_REDIS_URL="${IDM_TEST_REDIS_URL:-redis://127.0.0.1:6379/9}"
# Tests never use the developer's own configuration.
unset DATABASE_URL REDIS_URL IDM_CELERY_EAGER

wait_for() { # wait_for SECONDS COMMAND...: retry COMMAND until it succeeds or time runs out
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        return 0
    fi
    echo "test: starting PostgreSQL"
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n1)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for 30 pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
        return 0
    fi
    echo "test: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for 30 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
}

declare -a summary=()
failed=0
record() { # record NAME STATUS
    if [[ $2 -eq 0 ]]; then
        summary+=("$1 ok")
    else
        summary+=("$1 FAILED (exit $2)")
        failed=1
    fi
}

status=0
ensure_redis || status=$?
record redis "$status"

if [[ " $IDM_TEST_DBS " == *" postgres "* ]]; then
    status=0
    ensure_postgres || status=$?
    record postgresql "$status"
fi

echo "test: ruff check ."
status=0
.venv/bin/ruff check . || status=$?
record ruff "$status"

# The databases run side by side (two cores, two pytest processes), each with its own Redis database
# number so real Celery workers never share a broker; IDM_TEST_SEQUENTIAL=1 runs them one after the
# other with live output. Each run's full output is printed once it ends.
LOG_DIR="$ROOT/var/test-logs"
mkdir -p "$LOG_DIR"
redis_base="${IDM_TEST_REDIS_URL%/*}"
redis_db="${IDM_TEST_REDIS_URL##*/}"
declare -a run_dbs=() run_pids=()
index=0
for db in $IDM_TEST_DBS; do
    case "$db" in
        sqlite) db_env=() ;;
        postgres) db_env=("DATABASE_URL=$PG_URL") ;;
        *)
            record "pytest[$db]" 2
            echo "test: unknown database '$db' in IDM_TEST_DBS (use sqlite and/or postgres)" >&2
            continue
            ;;
    esac
    # First run keeps IDM_TEST_REDIS_URL; later ones count down from it (9, 8, ...).
    db_env+=("IDM_TEST_REDIS_URL=$redis_base/$((redis_db - index))")
    db_env+=("IDM_TEST_SQLITE=$ROOT/var/test-$db.sqlite3")
    index=$((index + 1))
    if [[ ${IDM_TEST_SEQUENTIAL:-0} == 1 ]]; then
        echo "test: pytest on $db"
        status=0
        env "${db_env[@]}" .venv/bin/pytest "$@" || status=$?
        # Exit 5 means no test was collected: never a pass.
        record "pytest[$db]" "$status"
        continue
    fi
    echo "test: pytest on $db (output in $LOG_DIR/pytest-$db.log, printed when it ends)"
    env "${db_env[@]}" .venv/bin/pytest "$@" >"$LOG_DIR/pytest-$db.log" 2>&1 &
    run_dbs+=("$db")
    run_pids+=("$!")
done
for i in "${!run_pids[@]}"; do
    status=0
    wait "${run_pids[$i]}" || status=$?
    echo "===== pytest on ${run_dbs[$i]} (exit $status) ====="
    cat "$LOG_DIR/pytest-${run_dbs[$i]}.log"
    # Exit 5 means no test was collected: never a pass.
    record "pytest[${run_dbs[$i]}]" "$status"
done

joined="$(printf '%s; ' "${summary[@]}")"
if ((failed)); then
    echo "test.sh: FAILED: ${joined%; }"
    exit 1
fi
echo "test.sh: all passed: ${joined%; }"
