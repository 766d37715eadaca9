# Sourced by .ci/run: a local PostgreSQL server (Debian package) for the service tests, which
# run against SQLite and PostgreSQL. Installs it when missing, starts the first cluster, makes
# the role and database (idempotent) and exports LMREC_TEST_POSTGRES_URL.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/bash -c "cd / && $1"; else sudo -u postgres bash -c "cd / && $1"; fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi
if [ -z "$(pg_lsclusters -h)" ]; then  # some images install the server without a cluster
    as_root pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main
fi
read -r pg_version pg_cluster pg_port pg_status _ < <(pg_lsclusters -h | head -n 1)
if [ "$pg_status" != "online" ]; then
    as_root pg_ctlcluster "$pg_version" "$pg_cluster" start
fi
as_postgres "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'lmrec'\" | grep -q 1 \
    || psql -v ON_ERROR_STOP=1 -c \"CREATE ROLE lmrec LOGIN PASSWORD 'lmrec'\""
as_postgres "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'lmrec_test'\" | grep -q 1 \
    || createdb -O lmrec lmrec_test"
export LMREC_TEST_POSTGRES_URL="postgresql+psycopg://lmrec:lmrec@127.0.0.1:${pg_port}/lmrec_test"
echo "PostgreSQL $pg_version ($pg_cluster) on port $pg_port for the service tests"
