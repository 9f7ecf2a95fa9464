#!/usr/bin/env bash
# A private PostgreSQL for Verdant's tests and benches: Debian's packages, our own cluster.
#
#   hack/postgres.sh up       install if missing, start the cluster if stopped, create a
#                             fresh database for this run and print its URL
#   hack/postgres.sh url      print the URL of the cluster's `postgres` database (running)
#   hack/postgres.sh status   say whether it runs
#   hack/postgres.sh down     stop the cluster and delete its data
#
# The cluster lives in $VERDANT_POSTGRES_DIR (default /var/tmp/verdant-postgres-<uid>),
# listens on 127.0.0.1:$VERDANT_POSTGRES_PORT (default 55432) and a socket in that folder,
# trusts local connections (it holds throw-away test data only) and runs as the invoking
# user, or as the `postgres` OS user when invoked as root (PostgreSQL refuses root).
# Databases of earlier runs (verdant_run_<epoch>_*, verdant_test_<epoch>_*) older than six
# hours are dropped by `up`.
set -euo pipefail

DIR=${VERDANT_POSTGRES_DIR:-/var/tmp/verdant-postgres-$(id -u)}
PORT=${VERDANT_POSTGRES_PORT:-55432}
DATA=$DIR/data
LOG=$DIR/postgres.log

log() { echo ">> $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# The bin folder of the newest installed PostgreSQL (versions compared as numbers).
pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [[ -x $d/initdb ]] && echo "$d"; done |
    sort -t/ -k5,5n | tail -1
}

install_postgres() {
  [[ -n $(pg_bindir) ]] && command -v psql >/dev/null && return
  log "installing PostgreSQL from Debian packages"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql postgresql-client >/dev/null
  [[ -n $(pg_bindir) ]] || die "PostgreSQL was installed but no initdb is under /usr/lib/postgresql/*/bin"
}

# Runs a PostgreSQL server program as the cluster's owner. (The server must not inherit
# the lock on fd 9, nor the caller's output: callers wait for both to close.)
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' OS user (Debian's postgresql package creates it)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  local bin; bin=$(pg_bindir)
  [[ -n $bin && -f $DATA/PG_VERSION ]] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

psql_admin() {
  PGCONNECT_TIMEOUT=5 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"
}

start() {
  install_postgres
  local bin; bin=$(pg_bindir)
  mkdir -p "$DIR"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$DIR"; fi
  chmod 700 "$DIR"
  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "creating a PostgreSQL cluster in $DATA"
    as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
      { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  if ! running; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      die "port $PORT is taken by another program; set VERDANT_POSTGRES_PORT"
    fi
    log "starting PostgreSQL on 127.0.0.1:$PORT"
    as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start \
      </dev/null >/dev/null 2>&1 9>&- ||
      { tail -20 "$LOG" >&2 || true; die "PostgreSQL did not start (log: $LOG)"; }
  fi
}

drop_old_databases() {
  local cutoff=$(( $(date +%s) - 6 * 3600 ))
  local name epoch
  while read -r name; do
    [[ -z $name ]] && continue
    epoch=$(sed -E 's/^verdant_(run|test)_([0-9]+)_.*/\2/' <<<"$name")
    if [[ $epoch =~ ^[0-9]+$ ]] && (( epoch < cutoff )); then
      psql_admin -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
  done < <(psql_admin -At -c "SELECT datname FROM pg_database WHERE datname ~ '^verdant_(run|test)_[0-9]+_'")
}

cmd=${1:-up}
case $cmd in
  up)
    mkdir -p "$(dirname "$DIR")"
    exec 9>"$DIR.lock"
    flock 9
    start
    drop_old_databases
    db="verdant_run_$(date +%s)_$$"
    psql_admin -c "CREATE DATABASE $db" >/dev/null
    echo "postgres://postgres@127.0.0.1:$PORT/$db"
    ;;
  url)
    running || die "PostgreSQL is not running; run: hack/postgres.sh up"
    echo "postgres://postgres@127.0.0.1:$PORT/postgres"
    ;;
  status)
    if running; then echo "running on 127.0.0.1:$PORT ($DATA)"; else echo "stopped"; exit 1; fi
    ;;
  down)
    if running; then as_owner "$(pg_bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi
    rm -rf "$DIR" "$DIR.lock"
    ;;
  *)
    echo "usage: $0 up|url|status|down" >&2
    exit 2
    ;;
esac
