#!/usr/bin/env bash
# posfleet on PostgreSQL against posfleet on Badger, on the same machine in
# the same run. The script starts a throwaway PostgreSQL cluster of its own
# (initdb in a temporary directory, fsync=on, synchronous_commit=on,
# loopback only; as the postgres OS user when run as root) and removes it
# afterwards.
#
#   bench/postgres.sh authorize   durable Authorize ceiling, Badger then PostgreSQL
#                                 (PAIRS times, interleaved): each against the health
#                                 check's ceiling, and PostgreSQL ÷ Badger
#   bench/postgres.sh peak-hour   the loadgen peak-hour scenario (bench/run.sh) against
#                                 a server on PostgreSQL
#   bench/postgres.sh cluster     durable Authorize on PostgreSQL, one node alone then the
#                                 same with two hot standbys on its database (PAIRS times,
#                                 interleaved), as a ratio; then the peak-hour scenario with
#                                 --target listing the active node and both standbys
#
# Knobs (environment): PAIRS (1), ROUNDS (1), BENCH_DURATION (10s), WORKERS (256),
# TERMINALS (256), PG_PROFILE (a file prefix: CPU profiles of the server on
# PostgreSQL), POSFLEET_BIN, OUT; peak-hour and cluster's peak-hour take
# bench/run.sh's knobs (RATE, DURATION, TERMINALS, …). Needs Go and PostgreSQL's server binaries
# (Debian: postgresql).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCENARIO=${1:-}
PAIRS=${PAIRS:-1}
ROUNDS=${ROUNDS:-1}
BENCH_DURATION=${BENCH_DURATION:-10s}
WORKERS=${WORKERS:-256}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/postgres-$SCENARIO-$STAMP}

usage() {
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}
log() { printf '== %s\n' "$*" >&2; }

case "$SCENARIO" in
authorize | peak-hour | cluster) ;;
*) usage ;;
esac

PGBIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
	echo "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)" >&2
	exit 1
fi

mkdir -p "$OUT"
WORK=$(mktemp -d)
PGDIR=$WORK/pg
mkdir -p "$PGDIR"
PG_STARTED=""

# as_pg runs a PostgreSQL command as the postgres OS user when this script
# runs as root (the server refuses root), else as the caller.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

cleanup() {
	if [ -n "$PG_STARTED" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# start_pg starts the cluster on a free loopback port with PostgreSQL's
# durable defaults spelled out: every commit is flushed to disk before it
# is acknowledged.
start_pg() {
	if [ "$(id -u)" = 0 ]; then
		chmod 755 "$WORK"
		chown postgres: "$PGDIR"
	fi
	as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A trust >"$OUT/initdb.log" 2>&1
	local p
	PGPORT=""
	for p in $(seq 15400 15499); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			PGPORT=$p
			break
		fi
	done
	[ -n "$PGPORT" ] || { echo "no free port in 15400-15499" >&2; return 1; }
	log "starting PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT (fsync=on, synchronous_commit=on)"
	as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -o \
		"-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=100 -c shared_buffers=256MB" \
		start >/dev/null
	PG_STARTED=1
}

# new_database NAME creates an empty database and prints its URL.
new_database() {
	as_pg "$PGBIN/createdb" -h "$PGDIR" -p "$PGPORT" -U postgres "$1"
	echo "postgres://postgres@127.0.0.1:$PGPORT/$1?sslmode=disable"
}

# build sets POSFLEET: POSFLEET_BIN, else a posfleet built from this tree.
build() {
	POSFLEET=${POSFLEET_BIN:-$WORK/posfleet}
	[ -n "${POSFLEET_BIN:-}" ] || (cd "$ROOT" && go build -o "$POSFLEET" ./cmd/posfleet)
}

# bench_authorize NAME ARGS... runs bench/authorize with posfleet serve ARGS.
bench_authorize() {
	local name=$1
	shift
	local extra=()
	local a
	for a in "$@"; do
		extra+=("-server-arg=$a")
	done
	if [ "$name" != "${name#postgres}" ] && [ -n "${PG_PROFILE:-}" ]; then
		extra+=("-server-cpuprofile=$PG_PROFILE.$name")
	fi
	if [ -n "${STANDBYS:-}" ]; then
		extra+=("-standbys=$STANDBYS")
	fi
	log "bench/authorize on $name"
	"$WORK/bench-authorize" -posfleet "$POSFLEET" -workers "$WORKERS" -terminals "${TERMINALS:-256}" \
		-rounds "$ROUNDS" -duration "$BENCH_DURATION" "${extra[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.log"
	cat "$OUT/$name.txt" >&2
}

# median_of FILE prints "health/s authorize/s" from bench/authorize's median line.
median_of() {
	sed -n 's/^median: health \([0-9]*\)\/s, durable authorize \([0-9]*\)\/s.*/\1 \2/p' "$1"
}

scenario_authorize() {
	build
	(cd "$ROOT" && go build -o "$WORK/bench-authorize" ./bench/authorize)
	start_pg
	local i
	{
		echo "### durable Authorize, PostgreSQL vs Badger ($STAMP, load avg $(cut -d' ' -f1 /proc/loadavg))"
		echo
		echo "| pair | backend | health/s | durable Authorize/s | Authorize ÷ health | decisions per commit | ms per commit | commits/s |"
		echo "|---:|---|---:|---:|---:|---:|---:|---:|"
	} >"$OUT/results.md"
	for i in $(seq 1 "$PAIRS"); do
		bench_authorize "badger-$i"
		bench_authorize "postgres-$i" --store=postgres "--database-url=$(new_database "bench_$i")"
		local b p
		for b in badger postgres; do
			read -r h a < <(median_of "$OUT/$b-$i.txt")
			p=$(sed -n 's/.*group commit: [0-9]* commits, \([0-9.]*\) decisions per commit, \([0-9.]*\) ms per commit, \([0-9]*\) commits\/s/\1 \2 \3/p' "$OUT/$b-$i.txt")
			read -r dpc mpc cps <<<"${p:-- - -}"
			awk -v i="$i" -v b="$b" -v h="$h" -v a="$a" -v d="$dpc" -v m="$mpc" -v c="$cps" \
				'BEGIN { printf "| %s | %s | %d | %d | %.3f | %s | %s | %s |\n", i, b, h, a, a/h, d, m, c }' >>"$OUT/results.md"
		done
		read -r bh ba < <(median_of "$OUT/badger-$i.txt")
		read -r ph pa < <(median_of "$OUT/postgres-$i.txt")
		awk -v i="$i" -v bh="$bh" -v ba="$ba" -v ph="$ph" -v pa="$pa" \
			'BEGIN { printf "\npair %s: PostgreSQL ÷ Badger, durable Authorize/s: **%.2f** (each against its own health ceiling: %.2f)\n", i, pa/ba, (pa/ph)/(ba/bh) }' >>"$OUT/results.md"
	done
	cat "$OUT/results.md"
}

# result_row PAIR LABEL NAME appends NAME's median and group commit figures
# to the results table.
result_row() {
	local h a p dpc mpc cps
	read -r h a < <(median_of "$OUT/$3.txt")
	p=$(sed -n 's/.*group commit: [0-9]* commits, \([0-9.]*\) decisions per commit, \([0-9.]*\) ms per commit, \([0-9]*\) commits\/s/\1 \2 \3/p' "$OUT/$3.txt")
	read -r dpc mpc cps <<<"${p:-- - -}"
	awk -v i="$1" -v b="$2" -v h="$h" -v a="$a" -v d="$dpc" -v m="$mpc" -v c="$cps" \
		'BEGIN { printf "| %s | %s | %d | %d | %.3f | %s | %s | %s |\n", i, b, h, a, a/h, d, m, c }' >>"$OUT/results.md"
}

scenario_cluster() {
	build
	(cd "$ROOT" && go build -o "$WORK/bench-authorize" ./bench/authorize)
	start_pg
	local i
	{
		echo "### durable Authorize on PostgreSQL, one node alone vs 1 active + 2 hot standbys ($STAMP, load avg $(cut -d' ' -f1 /proc/loadavg))"
		echo
		echo "| pair | nodes | health/s | durable Authorize/s | Authorize ÷ health | decisions per commit | ms per commit | commits/s |"
		echo "|---:|---|---:|---:|---:|---:|---:|---:|"
	} >"$OUT/results.md"
	for i in $(seq 1 "$PAIRS"); do
		# Odd pairs run the node alone first, even pairs the standbys
		# first, so that what grows during a run (PostgreSQL's WAL and
		# checkpoints, the machine's other work) does not favour one side.
		if [ $((i % 2)) = 1 ]; then
			bench_authorize "postgres-alone-$i" --store=postgres "--database-url=$(new_database "alone_$i")"
		fi
		STANDBYS=2 bench_authorize "postgres-standbys-$i" --store=postgres "--database-url=$(new_database "standbys_$i")"
		if [ $((i % 2)) = 0 ]; then
			bench_authorize "postgres-alone-$i" --store=postgres "--database-url=$(new_database "alone_$i")"
		fi
		result_row "$i" "1 alone" "postgres-alone-$i"
		result_row "$i" "1 + 2 standbys" "postgres-standbys-$i"
		read -r oh oa < <(median_of "$OUT/postgres-alone-$i.txt")
		read -r sh sa < <(median_of "$OUT/postgres-standbys-$i.txt")
		awk -v i="$i" -v oh="$oh" -v oa="$oa" -v sh="$sh" -v sa="$sa" \
			'BEGIN { printf "\npair %s: with 2 standbys ÷ alone, durable Authorize/s: **%.2f** (each against its own health ceiling: %.2f)\n\n", i, sa/oa, (sa/sh)/(oa/oh) }' >>"$OUT/results.md"
	done
	cat "$OUT/results.md"

	local url
	url=$(new_database bench_cluster_peak)
	log "bench/run.sh peak-hour against 1 active + 2 hot standbys on PostgreSQL, --target listing all three"
	OUT=$OUT/peak-hour NODES=3 POSFLEET_BIN=$POSFLEET SERVER_ARGS="--store=postgres --database-url=$url" "$ROOT/bench/run.sh" peak-hour
}

scenario_peak_hour() {
	build
	start_pg
	local url
	url=$(new_database bench_peak)
	log "bench/run.sh peak-hour against a server on PostgreSQL"
	OUT=$OUT POSFLEET_BIN=$POSFLEET SERVER_ARGS="--store=postgres --database-url=$url" "$ROOT/bench/run.sh" peak-hour
}

case "$SCENARIO" in
authorize) scenario_authorize ;;
peak-hour) scenario_peak_hour ;;
cluster) scenario_cluster ;;
esac
log "results in $OUT"
