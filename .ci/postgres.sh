#!/usr/bin/env bash
# Start a local PostgreSQL for the PostgreSQL backend's tests, and print the two variables
# the tests read, as shell `export` lines (everything else goes to stderr):
#
#     eval "$(.ci/postgres.sh)"
#
# ASYNCLOG_TEST_PG_DSN      the DSN of a test role and database (created if missing)
# ASYNCLOG_TEST_PG_CLUSTER  "<version> <cluster>", for the test that restarts the server
#
# Debian/Ubuntu: installs the `postgresql` package when pg_ctlcluster is missing, creates the
# cluster when there is none, starts it. Idempotent: safe to run again while it is running.
# Runs as root (or through sudo). Settings: ASYNCLOG_PG_USER, ASYNCLOG_PG_PASSWORD,
# ASYNCLOG_PG_DB (default "asynclog" each), ASYNCLOG_PG_CLUSTER_NAME (default "main").
set -euo pipefail

user=${ASYNCLOG_PG_USER:-asynclog}
password=${ASYNCLOG_PG_PASSWORD:-asynclog}
database=${ASYNCLOG_PG_DB:-asynclog}
cluster=${ASYNCLOG_PG_CLUSTER_NAME:-main}

log() { echo "postgres.sh: $*" >&2; }

as_root=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { log "needs root or sudo"; exit 1; }
    as_root=(sudo)
fi

if ! command -v pg_ctlcluster >/dev/null; then
    log "installing the postgresql package"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi

# The newest installed server version.
version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
[ -n "$version" ] || { log "no PostgreSQL server under /usr/lib/postgresql"; exit 1; }

if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c {f=1} END {exit !f}'; then
    log "creating cluster $version $cluster"
    "${as_root[@]}" pg_createcluster "$version" "$cluster" >&2
fi

status=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c {print $4}')
if [ "$status" != online ]; then
    log "starting cluster $version $cluster"
    "${as_root[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2
fi
port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c {print $3}')

as_postgres() { "${as_root[@]}" su postgres -s /bin/sh -c "$1"; }
psql_admin() { as_postgres "psql -X -q -v ON_ERROR_STOP=1 -p $port -d postgres -tA -c \"$1\""; }

# Wait until it accepts connections (a fresh start may still be recovering).
for _ in $(seq 1 60); do
    psql_admin "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
done
psql_admin "SELECT 1" >/dev/null

# The role (its password reset each time, so a changed setting takes effect) and database.
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
    log "creating role $user"
    psql_admin "CREATE ROLE \\\"$user\\\" LOGIN PASSWORD '$password'" >&2
else
    psql_admin "ALTER ROLE \\\"$user\\\" LOGIN PASSWORD '$password'" >&2
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
    log "creating database $database"
    as_postgres "createdb -p $port -O '$user' '$database'" >&2
fi

dsn="postgresql://$user:$password@127.0.0.1:$port/$database"
log "PostgreSQL $version/$cluster is up on port $port"
echo "export ASYNCLOG_TEST_PG_DSN='$dsn'"
echo "export ASYNCLOG_TEST_PG_CLUSTER='$version $cluster'"
