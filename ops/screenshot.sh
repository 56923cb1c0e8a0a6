#!/usr/bin/env bash
# ops/screenshot.sh: pictures of the dashboard's metrics for the README.
#
# Starts posfleet on loopback with its metrics listener, a real Prometheus
# scraping it every second with ops/prometheus/alerts.yml loaded, drives a
# short loadgen run (peak-hour profile) plus one merchant-mismatch payment,
# and takes headless-Chromium screenshots of Prometheus's own graph view
# showing the Grafana dashboard's key queries (ops/grafana/posfleet.json,
# with [$__rate_interval] written as [15s] and no instance filter), and of
# its alerts page. Every process it starts is stopped when it exits.
#
#   ops/screenshot.sh [OUTDIR]        (default docs/monitoring)
#
# Needs go, curl, prometheus (Debian: prometheus) and chromium (Debian:
# chromium). A documentation tool, not a CI step: it takes about two
# minutes. Environment: DURATION (loadgen's measured duration, default
# 60s), RATE (mean arrivals per second, default 80), TERMINALS (default
# 60), PROM_ADDR (default 127.0.0.1:19090), KEEP=1 keeps the scratch
# directory.
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-docs/monitoring}
duration=${DURATION:-60s}
rate=${RATE:-80}
terminals=${TERMINALS:-60}
prom_addr=${PROM_ADDR:-127.0.0.1:19090}

for tool in go curl prometheus chromium; do
	command -v "$tool" >/dev/null || { echo "screenshot: $tool not found" >&2; exit 1; }
done
if curl -fsS "http://$prom_addr/" >/dev/null 2>&1; then
	echo "screenshot: $prom_addr is taken; set PROM_ADDR" >&2
	exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${KEEP:-} == 1 ]]; then
		echo "screenshot: scratch directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# wait_for CMD...: retry CMD for up to 60 s.
wait_for() {
	local i
	for i in $(seq 600); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "screenshot: timed out waiting for: $*" >&2
	return 1
}

# log_field FILE REGEX: the first capture of REGEX (sed -E) in FILE, waiting
# until it appears.
log_field() {
	wait_for grep -Eq "$2" "$1"
	sed -nE "s|.*$2.*|\\1|p" "$1" | head -n1
}

# urlencode STRING: STRING percent-encoded for a query parameter.
urlencode() {
	local LC_ALL=C s=$1 c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) printf '%s' "$c" ;;
		*) printf '%%%02X' "'$c" ;;
		esac
	done
}

echo "screenshot: building posfleet" >&2
go build -o "$work/posfleet" ./cmd/posfleet
bin=$work/posfleet

"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
	--console-listen off >"$work/serve.log" 2>&1 &
pids+=($!)
grpc_addr=$(log_field "$work/serve.log" 'msg=serving addr=([0-9.:]+)')
metrics_url=$(log_field "$work/serve.log" '(http://[0-9.:]+)/metrics')
wait_for curl -fsS "$metrics_url/readyz"
echo "screenshot: posfleet on $grpc_addr, metrics on $metrics_url" >&2

# Prometheus runs in the scratch directory with relative paths, so that
# its alerts page names the rules file ops/prometheus/alerts.yml.
mkdir -p "$work/ops/prometheus"
cp ops/prometheus/alerts.yml "$work/ops/prometheus/alerts.yml"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - ops/prometheus/alerts.yml
scrape_configs:
  - job_name: posfleet
    static_configs:
      - targets: ["${metrics_url#http://}"]
EOF
(cd "$work" && exec prometheus --config.file=prometheus.yml --storage.tsdb.path=prom \
	--web.listen-address="$prom_addr" >prometheus.log 2>&1) &
pids+=($!)
wait_for curl -fsS "http://$prom_addr/-/ready"
prom_start=$(date +%s)
echo "screenshot: prometheus on http://$prom_addr" >&2

admin() { "$bin" admin --target "$grpc_addr" --admin-token-file "$work/data/admin.token" "$@"; }
terminal() { "$bin" terminal --terminal-file "$work/terminal.json" "$@"; }

echo "screenshot: loadgen --profile peak-hour --rate $rate --duration $duration" >&2
"$bin" loadgen --target "$grpc_addr" --admin-token-file "$work/data/admin.token" \
	--profile peak-hour --rate "$rate" --duration "$duration" --warmup 5s \
	--terminals "$terminals" --report "$work/report" --quiet >"$work/loadgen.log" 2>&1 &
load=$!
pids+=($load)

# Halfway through, a terminal claims a merchant it is not bound to: a
# declined payment (03) and a merchant-mismatch alert.
sleep 30
admin merchants create --id SHOTM1 --legal-name "Screenshot Foods Ltd" --mcc 5411 --currency NZD >/dev/null
admin stores create --merchant SHOTM1 --id s1 --name One >/dev/null
code=$(admin terminals provision --serial SN-SHOT-1 --merchant SHOTM1 --store s1 --json |
	sed -nE 's/.*"enrollment_?[cC]ode": *"([^"]+)".*/\1/p')
terminal register --serial SN-SHOT-1 --code "$code" --target "$grpc_addr" >/dev/null
terminal pay --merchant SHOTM2 12.50NZD >/dev/null || true

wait "$load" || echo "screenshot: loadgen exited $? (see its summary below)" >&2
cat "$work/report/summary.txt" >&2 || true
sleep 3 # two more scrapes and rule evaluations

# graph_url RANGE EXPR...: Prometheus's graph page with one panel per EXPR.
graph_url() {
	local range=$1 i=0 url="http://$prom_addr/classic/graph?"
	shift
	for expr in "$@"; do
		url+="g$i.expr=$(urlencode "$expr")&g$i.tab=0&g$i.stacked=0&g$i.show_exemplars=0&g$i.range_input=$range&"
		i=$((i + 1))
	done
	printf '%s' "${url%&}"
}

# shoot FILE HEIGHT URL: a 1280-wide screenshot of URL.
shoot() {
	chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
		--disable-component-update --disable-sync --no-first-run --hide-scrollbars \
		--user-data-dir="$(mktemp -d -p "$work")" --virtual-time-budget=15000 \
		--window-size="1280,$2" --screenshot="$1" "$3" >>"$work/chromium.log" 2>&1
	echo "screenshot: wrote $1" >&2
}

# The graphs span the whole run, from Prometheus's start until now.
range=$(($(date +%s) - prom_start + 5))s
mkdir -p "$out"
shoot "$out/payments.png" 1560 "$(graph_url "$range" \
	'sum by (decision) (rate(posfleet_payment_authorizations_total[15s]))' \
	'histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket{grpc_service="posfleet.v1.PaymentService",grpc_method="Authorize"}[15s])))')"
shoot "$out/commits-terminals.png" 1560 "$(graph_url "$range" \
	'histogram_quantile(0.99, sum by (le) (rate(posfleet_payment_commit_seconds_bucket[15s])))' \
	'sum by (connectivity) (posfleet_terminals)')"
shoot "$out/alerts.png" 1400 "http://$prom_addr/classic/alerts"
