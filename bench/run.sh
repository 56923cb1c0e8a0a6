#!/usr/bin/env bash
# Reproducible posfleet benchmarks. One command per scenario:
#
#   bench/run.sh ceiling        health-check ceiling and durable Authorize ceiling, one server, as a ratio
#   bench/run.sh latency        health check and Authorize at the same fixed rate: latency and generator cost
#   bench/run.sh steady|peak-hour|holiday-spike|registration-storm|config-rollout
#                               a fleet scenario with the health-check ceiling measured first
#   bench/run.sh ghz            generator CPU per request: posfleet loadgen vs ghz on the health check
#   bench/run.sh all            ceiling, latency and ghz
#
# Knobs (environment): RATE, DURATION, WARMUP, TERMINALS, CONNECTIONS,
# CEIL_RATE, CEIL_DURATION, REPEAT, POSFLEET_BIN (a prebuilt posfleet binary
# instead of building one), SERVER_ARGS (more arguments of posfleet serve,
# split at spaces: bench/postgres.sh gives --store and --database-url),
# NODES (1; more starts hot standbys on the same PostgreSQL database after
# the first node, and the fleet scenarios target all of them),
# DECLINE_TOKENS (default: the issuer
# simulator's declining test cards), OUT (results directory),
# GHZ (a ghz binary; by default ghz $GHZ_VERSION is installed into a
# temporary GOBIN — a benchmark-time tool, never a dependency of the module).
# Needs Go and bash; everything else comes from the repository.
# Exit status: 3 when a run missed an SLO (the other runs still happen and
# their results are written), another non-zero status on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCENARIO=${1:-}
RATE=${RATE:-500}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
TERMINALS=${TERMINALS:-200}
CONNECTIONS=${CONNECTIONS:-8}
CEIL_RATE=${CEIL_RATE:-100000}
CEIL_DURATION=${CEIL_DURATION:-10s}
REPEAT=${REPEAT:-3}
NODES=${NODES:-1}
GHZ_VERSION=${GHZ_VERSION:-v0.93.0}
DECLINE_TOKENS=${DECLINE_TOKENS:-}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/bench/results/$SCENARIO-$STAMP}

usage() {
	sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

[ -n "$SCENARIO" ] || usage
if [ "$NODES" -gt 1 ]; then
	case " ${SERVER_ARGS:-} " in
	*" --store=postgres "*) ;;
	*)
		echo "NODES=$NODES needs the nodes on one PostgreSQL database (SERVER_ARGS with --store=postgres; bench/postgres.sh cluster)" >&2
		exit 2
		;;
	esac
fi
mkdir -p "$OUT"
WORK=$(mktemp -d)
SERVER_PID=""
STANDBY_PIDS=()
SLO_MISSED=""

# stop_standbys stops the hot standbys (before the active node, so that
# none takes over from it).
stop_standbys() {
	local pid
	for pid in "${STANDBY_PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			wait "$pid" || true
		fi
	done
	STANDBY_PIDS=()
}

cleanup() {
	stop_standbys
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID"
		wait "$SERVER_PID" || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

build() {
	if [ -n "${POSFLEET_BIN:-}" ]; then
		log "using prebuilt $POSFLEET_BIN"
		POSFLEET=$POSFLEET_BIN
		return
	fi
	log "building posfleet"
	(cd "$ROOT" && go build -o "$WORK/posfleet" ./cmd/posfleet)
	POSFLEET=$WORK/posfleet
}

# free_port prints a free loopback TCP port.
free_port() {
	local p
	for p in $(seq 17400 17499); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port in 17400-17499" >&2
	return 1
}

# start_server starts a fresh server with its data on disk (durable).
start_server() {
	PORT=$(free_port)
	TARGET=127.0.0.1:$PORT
	TOKEN_FILE=$WORK/admin.token
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TOKEN_FILE"
	chmod 600 "$TOKEN_FILE"
	rm -rf "$WORK/data"
	log "starting server on $TARGET (log: $OUT/server.log)"
	# --quota-scale 0: the benchmarks drive a few hundred terminals at the
	# server's capacity, far beyond one real terminal's call quota.
	# shellcheck disable=SC2086 # SERVER_ARGS is split at spaces on purpose
	"$POSFLEET" serve --listen "$TARGET" --data-dir "$WORK/data" --admin-token-file "$TOKEN_FILE" \
		--log-level warn --quota-scale 0 --console-listen off ${SERVER_ARGS:-} >>"$OUT/server.log" 2>&1 &
	SERVER_PID=$!
	local i
	for i in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			return
		fi
		kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited; see $OUT/server.log" >&2; return 1; }
		sleep 0.1
	done
	echo "server did not start listening" >&2
	return 1
}

# start_standbys starts nodes 2..NODES on the server's database and waits
# until each answers as a hot standby; TARGETS lists every node, the
# active one first.
start_standbys() {
	TARGETS=$TARGET
	local n p pid i
	for n in $(seq 2 "$NODES"); do
		p=$(free_port)
		log "starting hot standby $n on 127.0.0.1:$p (log: $OUT/server-$n.log)"
		# shellcheck disable=SC2086 # SERVER_ARGS is split at spaces on purpose
		"$POSFLEET" serve --listen "127.0.0.1:$p" --data-dir "$WORK/data-$n" --admin-token-file "$TOKEN_FILE" \
			--log-level info --quota-scale 0 --console-listen off ${SERVER_ARGS:-} >>"$OUT/server-$n.log" 2>&1 &
		pid=$!
		STANDBY_PIDS+=("$pid")
		for i in $(seq 1 300); do
			grep -q 'answering as a standby' "$OUT/server-$n.log" && break
			kill -0 "$pid" 2>/dev/null || { echo "standby $n exited; see $OUT/server-$n.log" >&2; return 1; }
			sleep 0.1
		done
		grep -q 'answering as a standby' "$OUT/server-$n.log" || { echo "node $n is not a standby after 30s; see $OUT/server-$n.log" >&2; return 1; }
		TARGETS="$TARGETS,127.0.0.1:$p"
	done
}

stop_server() {
	stop_standbys
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" || true
	SERVER_PID=""
}

# loadgen NAME ARGS... runs posfleet loadgen with its report in $OUT/NAME.
loadgen() {
	local name=$1
	shift
	log "loadgen $name: $*"
	local rc=0
	"$POSFLEET" loadgen --target "${LG_TARGET:-$TARGET}" --admin-token-file "$TOKEN_FILE" --report "$OUT/$name" \
		--log-level warn --quiet "$@" >"$OUT/$name.txt" 2>"$OUT/$name.log" || rc=$?
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
		echo "loadgen $name failed (exit $rc); see $OUT/$name.log" >&2
		cat "$OUT/$name.log" >&2
		return "$rc"
	fi
	# The head of the summary, and its SLO verdicts wherever they are.
	awk '/^SLOs$/ { slo = 1 } slo || NR <= 40' "$OUT/$name.txt" >&2
	if [ "$rc" -eq 3 ]; then
		# Exit status 3: an SLO was missed. Carry on (the results are still
		# worth writing) and fail at the end.
		echo "loadgen $name: SLO missed (see the FAIL lines above)" >&2
		SLO_MISSED="$SLO_MISSED $name"
	fi
}

summarize() {
	(cd "$ROOT" && go run ./bench/summarize "$@") | tee -a "$OUT/results.md"
}

decline_args() {
	if [ -n "$DECLINE_TOKENS" ]; then
		echo "--decline-tokens=$DECLINE_TOKENS"
	fi
}

health_ceiling() {
	loadgen health-ceiling --driver health --rate "$CEIL_RATE" --duration "$CEIL_DURATION" --warmup 2s \
		--arrivals uniform --terminals 64 --connections "$CONNECTIONS" --queue-depth 4096 --drain 10s
}

scenario_ceiling() {
	build
	start_server
	health_ceiling
	loadgen authorize-ceiling --driver fleet --mix approve=100 --no-watch --rate "$CEIL_RATE" \
		--duration "$CEIL_DURATION" --warmup 2s --arrivals uniform --terminals "$TERMINALS" \
		--connections "$CONNECTIONS" --queue-depth 16 --drain 10s
	stop_server
	echo "### ceiling ($STAMP)" >>"$OUT/results.md"
	summarize "health=$OUT/health-ceiling/report.json" "authorize=$OUT/authorize-ceiling/report.json"
}

scenario_latency() {
	build
	start_server
	loadgen health-latency --driver health --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
		--terminals 64 --connections "$CONNECTIONS"
	loadgen authorize-latency --driver fleet --mix approve=100 --no-watch --rate "$RATE" \
		--duration "$DURATION" --warmup "$WARMUP" --terminals "$TERMINALS" --connections "$CONNECTIONS"
	stop_server
	echo "### latency at $RATE/s ($STAMP)" >>"$OUT/results.md"
	summarize "health=$OUT/health-latency/report.json" "authorize=$OUT/authorize-latency/report.json"
}

scenario_fleet() {
	local profile=$1
	build
	start_server
	health_ceiling
	start_standbys
	# shellcheck disable=SC2046
	LG_TARGET=$TARGETS loadgen "$profile" --driver fleet --profile "$profile" --rate "$RATE" --duration "$DURATION" \
		--warmup "$WARMUP" --terminals "$TERMINALS" --connections "$CONNECTIONS" $(decline_args) \
		--slo 'authorize.p99<=50ms' --slo 'authorize.error_rate<0.1%' --slo 'txn.error_rate<0.1%'
	stop_server
	echo "### $profile ($STAMP)" >>"$OUT/results.md"
	summarize "health=$OUT/health-ceiling/report.json" "$profile=$OUT/$profile/report.json"
}

# ghz_bin prints a ghz binary, installing the pinned version into a
# temporary GOBIN unless GHZ is set.
ghz_bin() {
	if [ -n "${GHZ:-}" ]; then
		echo "$GHZ"
		return
	fi
	log "installing ghz $GHZ_VERSION into a temporary GOBIN"
	GOBIN=$WORK/gobin GOFLAGS= go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" >&2
	echo "$WORK/gobin/ghz"
}

# duration_secs D prints duration D (Go syntax in h, m and s, such as 30s,
# 2m or 1h30m; a bare number is seconds) as a number of seconds.
duration_secs() {
	local d=$1 rest=$1 sum=0
	if [[ $d =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
		rest=${d}s
	fi
	while [ -n "$rest" ]; do
		if [[ ! $rest =~ ^([0-9]+(\.[0-9]+)?)([hms])(.*)$ ]]; then
			echo "duration '$d': want a duration in h, m and s, such as 30s, 2m or 1h30m" >&2
			return 1
		fi
		case ${BASH_REMATCH[3]} in
		h) sum="$sum + ${BASH_REMATCH[1]} * 3600" ;;
		m) sum="$sum + ${BASH_REMATCH[1]} * 60" ;;
		s) sum="$sum + ${BASH_REMATCH[1]}" ;;
		esac
		rest=${BASH_REMATCH[4]}
	done
	awk -v d="$d" "BEGIN {
		t = $sum
		if (t <= 0) { printf \"duration '%s': want a positive duration, such as 30s\\n\", d > \"/dev/stderr\"; exit 1 }
		if (t == int(t)) printf \"%d\\n\", t; else printf \"%.3f\\n\", t
	}"
}

# cpu_of FILE CMD...: runs CMD, appends "user sys" CPU seconds of it to FILE.
cpu_of() {
	local file=$1
	shift
	local TIMEFORMAT='%U %S'
	{ time "$@" >/dev/null 2>&1; } 2>>"$file"
}

scenario_ghz() {
	local secs
	secs=$(duration_secs "$DURATION") || exit 2
	build
	local ghz
	ghz=$(ghz_bin)
	start_server
	local conc=16 conns=2
	printf '| tool | run | requests | user s | sys s | CPU µs/request |\n|---|---:|---:|---:|---:|---:|\n' >"$OUT/ghz.md"
	local i
	for i in $(seq 1 "$REPEAT"); do
		log "ghz run $i: $RATE/s for ${secs}s, $conc workers, $conns connections"
		: >"$WORK/cpu"
		cpu_of "$WORK/cpu" "$ghz" --insecure --call grpc.health.v1.Health.Check -d '{}' --rps "$RATE" \
			-z "${secs}s" -c "$conc" --connections "$conns" -O json -o "$OUT/ghz-$i.json" "$TARGET"
		local n
		n=$(grep -o '"count":[0-9]*' "$OUT/ghz-$i.json" | head -1 | cut -d: -f2)
		awk -v n="$n" -v i="$i" '{ printf "| ghz %s | %s | %d | %.2f | %.2f | %.1f |\n", "'"$GHZ_VERSION"'", i, n, $1, $2, ($1+$2)*1e6/n }' "$WORK/cpu" >>"$OUT/ghz.md"

		log "posfleet loadgen run $i: $RATE/s for ${secs}s, $conc workers, $conns connections"
		: >"$WORK/cpu"
		cpu_of "$WORK/cpu" "$POSFLEET" loadgen --target "$TARGET" --driver health --rate "$RATE" --duration "${secs}s" \
			--warmup 0 --arrivals uniform --terminals "$conc" --connections "$conns" --quiet --log-level warn \
			--report "$OUT/loadgen-$i"
		n=$(grep -o '"issued": [0-9]*' "$OUT/loadgen-$i/report.json" | head -1 | grep -o '[0-9]*$')
		awk -v n="$n" -v i="$i" '{ printf "| posfleet loadgen | %s | %d | %.2f | %.2f | %.1f |\n", i, n, $1, $2, ($1+$2)*1e6/n }' "$WORK/cpu" >>"$OUT/ghz.md"
	done
	stop_server
	{
		echo "### generator CPU per request, health check at $RATE/s ($STAMP)"
		cat "$OUT/ghz.md"
	} | tee -a "$OUT/results.md"
}

# ghz gets DURATION in seconds: check it before anything runs.
case "$SCENARIO" in
ghz | all) duration_secs "$DURATION" >/dev/null || exit 2 ;;
esac

case "$SCENARIO" in
ceiling) scenario_ceiling ;;
latency) scenario_latency ;;
steady | peak-hour | holiday-spike | registration-storm | config-rollout) scenario_fleet "$SCENARIO" ;;
ghz) scenario_ghz ;;
all)
	OUT_BASE=$OUT
	OUT=$OUT_BASE/ceiling && mkdir -p "$OUT" && scenario_ceiling
	OUT=$OUT_BASE/latency && mkdir -p "$OUT" && scenario_latency
	OUT=$OUT_BASE/ghz && mkdir -p "$OUT" && scenario_ghz
	cat "$OUT_BASE"/*/results.md >"$OUT_BASE/results.md"
	OUT=$OUT_BASE
	;;
*) usage ;;
esac
log "results in $OUT"
if [ -n "$SLO_MISSED" ]; then
	log "SLO missed in:$SLO_MISSED"
	exit 3
fi
