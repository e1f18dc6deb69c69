#!/usr/bin/env bash
# Holdfast's main job end to end on the embedded default: a throwaway
# PostgreSQL 18, a local repository; back up, change data, back up again
# (incremental), verify, restore the newest backup, start PostgreSQL on it and
# show that the data matches. Installs what it needs (see setup-testenv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD
export HOLDFAST_CACHE=${HOLDFAST_CACHE:-$repo_root/.cache}

say() { printf '\n== %s\n' "$*"; }

say "installing what the demo needs"
bash scripts/setup-testenv.sh --demo

PG=$HOLDFAST_CACHE/pg/18/bin
PSQL=/usr/lib/postgresql/15/bin/psql
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)

say "building holdfast"
work=$HOLDFAST_CACHE/demo
rm -rf "$work"
mkdir -p "$work"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
go build -tags libzstd -ldflags "-X github.com/holdfast-backup/holdfast/internal/buildinfo.Commit=$commit" -o "$work/holdfast" ./cmd/holdfast
"$work/holdfast" version
hf() { "$work/holdfast" --config-dir "$work/config" "$@"; }

sock=$(mktemp -d /tmp/holdfast-demo.XXXXXX)
chmod 0777 "$sock"
src=$work/source
dst=$work/restored
port=55432
rport=55433
mkdir -p "$src" "$dst"
[ "$(id -u)" = 0 ] && chown postgres: "$src" "$dst" "$work"
cleanup() {
	"${as_pg[@]}" "$PG/pg_ctl" -D "$src" -m immediate stop >/dev/null 2>&1 || true
	"${as_pg[@]}" "$PG/pg_ctl" -D "$dst" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$sock"
}
trap cleanup EXIT

say "starting a throwaway PostgreSQL 18 on port $port"
"${as_pg[@]}" "$PG/initdb" -D "$src" -U postgres -A trust --no-sync >"$work/initdb.log"
cat >>"$src/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$sock'
listen_addresses = ''
wal_level = replica
max_wal_senders = 10
summarize_wal = on
CONF
echo "local replication all trust" >>"$src/pg_hba.conf"
"${as_pg[@]}" "$PG/pg_ctl" -D "$src" -l "$work/source.log" -w start >/dev/null
q() { "$PSQL" -X -q -h "$sock" -p "$1" -U postgres -d "${2:-postgres}" -Atc "$3"; }
q $port postgres "CREATE ROLE backup LOGIN REPLICATION"
"$PGBENCH" -q -i -s 10 -h "$sock" -p $port -U postgres postgres 2>&1 | tail -n 1

mkdir -p "$work/config"
cat >"$work/config/demo.yaml" <<CONF
repository: $work/repository
disks:
  - host: localhost
    disk: demo db
    postgres: "host=$sock port=$port user=backup"
CONF

say "holdfast dump demo (first backup: full)"
hf dump demo

say "changing about 1% of pgbench_accounts, then holdfast dump demo (incremental)"
q $port postgres "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10000"
q $port postgres "CREATE TABLE after_full AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g"
hf dump demo

say "holdfast backups demo"
hf backups demo

say "holdfast verify demo"
hf verify demo

fingerprint() {
	q "$1" postgres "SELECT string_agg(t || ':' || c, ' ' ORDER BY t) FROM (
		SELECT 'pgbench_accounts' t, count(*) || '/' || md5(string_agg(aid || ',' || abalance, ';' ORDER BY aid)) c FROM pgbench_accounts
		UNION ALL SELECT 'pgbench_branches', count(*) || '/' || md5(string_agg(bid || ',' || bbalance, ';' ORDER BY bid)) FROM pgbench_branches
		UNION ALL SELECT 'after_full', count(*) || '/' || md5(string_agg(id || ',' || v, ';' ORDER BY id)) FROM after_full) x"
}
before=$(fingerprint $port)

say "holdfast restore demo latest --to $dst"
owner=()
[ "$(id -u)" = 0 ] && owner=(--owner postgres)
hf restore demo latest --to "$dst" "${owner[@]}"

say "starting PostgreSQL on the restored directory (port $rport)"
"${as_pg[@]}" "$PG/pg_ctl" -D "$dst" -l "$work/restored.log" -w -o "-p $rport -k $sock" start >/dev/null
after=$(fingerprint $rport)
echo "source:   $before"
echo "restored: $after"
if [ "$before" != "$after" ]; then
	echo "demo: FAILED: the restored data differs from the source" >&2
	exit 1
fi
say "demo: the restored cluster started and its data equals the source"
