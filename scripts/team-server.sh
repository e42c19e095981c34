#!/usr/bin/env bash
# The team's MLflow tracking server, deployed the way MLflow's docs deploy one: a PostgreSQL backend
# store, artifacts proxied by the server (clients see mlflow-artifacts:/ and need no storage
# credentials), and MLflow's basic-auth app (every request signs in). docs/team.md says what each
# piece is and how to swap in a managed PostgreSQL or an s3:// artifact root.
#
#   scripts/team-server.sh [start]                 PostgreSQL (unless TEAM_BACKEND_STORE_URI), then the server
#   scripts/team-server.sh add-user NAME [--read]  a teammate (EDIT on the experiments; --read: READ only)
#   scripts/team-server.sh stop                    the server, then the local PostgreSQL
#
# Settings, from the environment (defaults in brackets):
#   TEAM_SERVER_DIR [.team-server]       its database, artifacts, logs and password files (git-ignored; never commit)
#   TEAM_SERVER_HOST [127.0.0.1]         0.0.0.0 serves other machines (then set TEAM_SERVER_ALLOWED_HOSTS)
#   TEAM_SERVER_PORT [5050]  TEAM_SERVER_WORKERS [2]  TEAM_PG_PORT [5433]  TEAM_SERVER_WAIT [120] (seconds)
#     host and ports: those of the last start (kept in TEAM_SERVER_DIR/settings) unless set, so that
#     add-user and stop find the server that start started, whatever port it was given
#   TEAM_BACKEND_STORE_URI, TEAM_AUTH_DATABASE_URI   a managed PostgreSQL instead of the local one
#                                        (postgresql://user@host:5432/db; the password in PGPASSWORD or ~/.pgpass)
#   TEAM_ARTIFACTS_DESTINATION [TEAM_SERVER_DIR/artifacts]   or s3://bucket/path (boto3 and AWS credentials)
#   MLFLOW_AUTH_ADMIN_PASSWORD           the admin's password on first start; generated if unset
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=${TEAM_SERVER_DIR:-$ROOT/.team-server}
SETTINGS=$DIR/settings
remembered() { [ -s "$SETTINGS" ] && sed -n "s/^$1=//p" "$SETTINGS" | tail -1; }  # remembered KEY: the last start's
HOST=${TEAM_SERVER_HOST:-$(remembered HOST || true)}; HOST=${HOST:-127.0.0.1}
PORT=${TEAM_SERVER_PORT:-$(remembered PORT || true)}; PORT=${PORT:-5050}
WORKERS=${TEAM_SERVER_WORKERS:-2}
PG_PORT=${TEAM_PG_PORT:-$(remembered PG_PORT || true)}; PG_PORT=${PG_PORT:-5433}
WAIT=${TEAM_SERVER_WAIT:-120}
MLFLOW=$ROOT/.venv/bin/mlflow
PY=$ROOT/.venv/bin/python

fail() { echo "team-server: $*" >&2; exit 1; }
[ -x "$MLFLOW" ] || fail "no .venv here: run 'make setup' first."
"$PY" -c 'import psycopg, flask_wtf' 2>/dev/null \
  || fail "the team extra is not installed: .venv/bin/pip install -c constraints.txt -e '.[team]'"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PGDATA_DIR=$DIR/postgres
umask 077  # every file written below holds or guards a secret

secret() {  # secret FILE: the file's secret, made once (random) unless it exists
  [ -s "$1" ] || "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$1"
  cat "$1"
}

# PostgreSQL refuses to run as root: as root, the local cluster belongs to Debian's `postgres` user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || fail "no PostgreSQL here: apt-get install postgresql (or set TEAM_BACKEND_STORE_URI to a managed one)"
  echo "$bin"
}
pg_running() { [ -s "$PGDATA_DIR/PG_VERSION" ] && as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }
server_pid() { [ -s "$DIR/mlflow-server.pid" ] && kill -0 "$(cat "$DIR/mlflow-server.pid")" 2>/dev/null && cat "$DIR/mlflow-server.pid"; }

start_local_postgres() {
  local bin
  bin=$(pg_bin)
  if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
    mkdir -p "$PGDATA_DIR"
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$PGDATA_DIR"
      runuser -u postgres -- test -w "$PGDATA_DIR" \
        || fail "the postgres user cannot enter $DIR: set TEAM_SERVER_DIR to a folder it can reach (e.g. under /srv)"
    fi
    # Local socket: peer (only this OS user); TCP: passwords (scram-sha-256).
    as_pg "$bin/initdb" -D "$PGDATA_DIR" --auth-local=peer --auth-host=scram-sha-256 -E UTF8 >"$DIR/initdb.log" 2>&1 \
      || fail "initdb failed: see $DIR/initdb.log"
  fi
  if ! pg_running; then
    as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/postgres.log" -w -t "$WAIT" \
      -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='$PGDATA_DIR'" start >/dev/null \
      || fail "PostgreSQL did not start on 127.0.0.1:$PG_PORT: see $PGDATA_DIR/postgres.log (port taken? set TEAM_PG_PORT)"
  fi
  local password
  password=$(secret "$DIR/postgres-password")
  sql() { as_pg "$bin/psql" -h "$PGDATA_DIR" -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
  # The server's own role owns two databases: the tracking store and the auth app's users.
  if [ -z "$(sql -c "SELECT 1 FROM pg_roles WHERE rolname = 'mlflow'")" ]; then
    sql -c "CREATE ROLE mlflow LOGIN PASSWORD '$password'" >/dev/null
  fi
  for db in mlflow mlflow_auth; do
    [ -n "$(sql -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ] || sql -c "CREATE DATABASE $db OWNER mlflow" >/dev/null
  done
  # libpq reads the password from here: it is in no URI, command line or log.
  echo "127.0.0.1:$PG_PORT:*:mlflow:$password" > "$DIR/pgpass"
  export PGPASSFILE=$DIR/pgpass
  BACKEND=postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow
  AUTH_DB=postgresql://mlflow@127.0.0.1:$PG_PORT/mlflow_auth
  BACKEND_TEXT="$BACKEND (local PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), data in $PGDATA_DIR)"
}

admin_env() {  # the admin's credentials, for the commands this script sends as admin
  [ -s "$DIR/admin-password" ] || fail "no $DIR/admin-password: start the server first (scripts/team-server.sh)"
  export MLFLOW_TRACKING_URI=http://127.0.0.1:$PORT MLFLOW_TRACKING_USERNAME=admin
  MLFLOW_TRACKING_PASSWORD=$(cat "$DIR/admin-password"); export MLFLOW_TRACKING_PASSWORD
}

start() {
  if pid=$(server_pid); then
    echo "team-server: already running (pid $pid) at http://$HOST:$PORT; 'scripts/team-server.sh stop' stops it"
    return 0
  fi
  if [ -n "${TEAM_BACKEND_STORE_URI:-}" ]; then
    BACKEND=$TEAM_BACKEND_STORE_URI
    AUTH_DB=${TEAM_AUTH_DATABASE_URI:?set TEAM_AUTH_DATABASE_URI too: the auth app keeps its users in a database of its own}
    BACKEND_TEXT="$BACKEND (given by TEAM_BACKEND_STORE_URI)"
  else
    start_local_postgres
  fi
  ARTIFACTS=${TEAM_ARTIFACTS_DESTINATION:-$DIR/artifacts}
  [[ $ARTIFACTS == *://* ]] || mkdir -p "$ARTIFACTS"
  if [ ! -s "$DIR/admin-password" ] && [ -n "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then
    echo "$MLFLOW_AUTH_ADMIN_PASSWORD" > "$DIR/admin-password"
  fi
  local admin_password
  admin_password=$(secret "$DIR/admin-password")
  cat > "$DIR/auth.ini" <<INI
[mlflow]
# Users without a grant of their own may read every experiment and write none.
default_permission = READ
database_uri = $AUTH_DB
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Every request checks its password (PBKDF2, tens of ms of CPU): a training that logs every few seconds
# costs the server more than the work. A checked password is trusted for 30 s in each worker, so a
# changed password or a deleted user takes up to 30 s to be refused everywhere.
auth_cache_ttl_seconds = 30
INI
  local allowed=()
  [ -z "${TEAM_SERVER_ALLOWED_HOSTS:-}" ] || allowed=(--allowed-hosts "$TEAM_SERVER_ALLOWED_HOSTS")
  # setsid: its own process group, so that stop ends the workers with it.
  MLFLOW_AUTH_CONFIG_PATH=$DIR/auth.ini MLFLOW_AUTH_ADMIN_PASSWORD=$admin_password \
  MLFLOW_FLASK_SERVER_SECRET_KEY=$(secret "$DIR/flask-secret-key") MLFLOW_DISABLE_TELEMETRY=true \
    setsid "$MLFLOW" server --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS" \
      --app-name basic-auth --host "$HOST" --port "$PORT" --workers "$WORKERS" "${allowed[@]}" \
      >"$DIR/mlflow-server.log" 2>&1 < /dev/null &
  echo $! > "$DIR/mlflow-server.pid"
  "$PY" - "http://127.0.0.1:$PORT/health" "$WAIT" "$(cat "$DIR/mlflow-server.pid")" <<'PY' \
    || fail "the server did not answer; the end of $DIR/mlflow-server.log:
$(tail -5 "$DIR/mlflow-server.log")"
import os, sys, time, urllib.request
url, wait, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + wait
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)  # it exited: the log says why
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if answer.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(1)
sys.exit(1)
PY
  printf 'HOST=%s\nPORT=%s\nPG_PORT=%s\n' "$HOST" "$PORT" "$PG_PORT" > "$SETTINGS"
  admin_env
  "$PY" -m dcgan.servers.team init  # the experiments, so that teammates can be granted them
  local version
  version=$("$PY" -c 'import mlflow; print(mlflow.__version__)')
  echo "team-server: MLflow $version at http://$HOST:$PORT (pid $(cat "$DIR/mlflow-server.pid"), log $DIR/mlflow-server.log)"
  echo "  backend store: $BACKEND_TEXT"
  echo "  artifacts:     proxied by the server to $ARTIFACTS (clients see mlflow-artifacts:/)"
  echo "  sign-in:       MLflow's basic-auth app; users in $AUTH_DB"
  if [ ! -e "$DIR/admin-password.shown" ]; then  # the first start that got this far
    echo "  admin:         user admin, password $admin_password"
    echo "                 (shown this once; kept in $DIR/admin-password, mode 600: never commit $DIR)"
    touch "$DIR/admin-password.shown"
  else
    echo "  admin:         user admin, password in $DIR/admin-password"
  fi
  local address=$HOST
  if [ "$HOST" = 127.0.0.1 ]; then
    echo "  only this machine reaches it: TEAM_SERVER_HOST=0.0.0.0 serves the network"
  elif [ "$HOST" = 0.0.0.0 ]; then
    address=$(hostname -f 2>/dev/null || hostname)
  fi
  cat <<TEXT

Add a teammate (prints their password once):  scripts/team-server.sh add-user NAME   (--read: read only)
Each teammate, in the shell where they run dvc and dcgan-compare:
  export MLFLOW_TRACKING_URI=http://$address:$PORT
  export MLFLOW_TRACKING_USERNAME=NAME
  export MLFLOW_TRACKING_PASSWORD='their password'
Stop: scripts/team-server.sh stop
TEXT
}

stop() {
  if pid=$(server_pid); then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "team-server: stopped the MLflow server (pid $pid)"
  fi
  rm -f "$DIR/mlflow-server.pid"
  if pg_running; then
    as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
    echo "team-server: stopped PostgreSQL ($PGDATA_DIR)"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  add-user) shift; admin_env; "$PY" -m dcgan.servers.team add-user "$@" ;;
  *) fail "unknown command '$1': start, add-user NAME [--read], or stop" ;;
esac
