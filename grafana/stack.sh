#!/usr/bin/env bash
# stack.sh — a local monitoring stack for soakd (make stack): the Debian
# `prometheus` and `prometheus-alertmanager` on loopback, scraping soakd and
# loading grafana/prometheus/soakd-rules.yaml. Runs in the foreground;
# Ctrl-C stops both.
#
#   SOAKD_ADDR=127.0.0.1:9477   soakd's --listen address to scrape
#   PROM_ADDR=127.0.0.1:9090    Prometheus web/API address
#   AM_ADDR=127.0.0.1:9093      Alertmanager address
#   STACK_DIR=./soakd-stack     configs and TSDB/Alertmanager data (kept)
#
# Then: http://$PROM_ADDR/alerts, http://$AM_ADDR, and for Grafana the files
# in grafana/provisioning/ (see grafana/README.md). To have soakd push its
# own leak alerts (with evidence paths) too, set in its config
#   alerting: {alertmanager_url: http://$AM_ADDR}
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SOAKD_ADDR=${SOAKD_ADDR:-127.0.0.1:9477}
PROM_ADDR=${PROM_ADDR:-127.0.0.1:9090}
AM_ADDR=${AM_ADDR:-127.0.0.1:9093}
STACK_DIR=${STACK_DIR:-./soakd-stack}

need() { command -v "$1" >/dev/null 2>&1 || { echo "stack.sh: $1 not found; install Debian package $2" >&2; exit 1; }; }
need prometheus prometheus
need promtool prometheus
am=$(command -v prometheus-alertmanager || command -v alertmanager || true)
[ -n "$am" ] || { echo "stack.sh: prometheus-alertmanager not found; install Debian package prometheus-alertmanager" >&2; exit 1; }

for a in "$SOAKD_ADDR" "$PROM_ADDR" "$AM_ADDR"; do
	case $a in
		127.*:*|localhost:*|\[::1\]:*) ;;
		*) echo "stack.sh: $a is not a loopback address; this stack listens on loopback only" >&2; exit 1 ;;
	esac
done

mkdir -p "$STACK_DIR/prometheus-data" "$STACK_DIR/alertmanager-data"
cp "$here/prometheus/soakd-rules.yaml" "$STACK_DIR/soakd-rules.yaml"
cp "$here/prometheus/alertmanager.yml" "$STACK_DIR/alertmanager.yml"
sed -e "s/127\.0\.0\.1:9477/$SOAKD_ADDR/" -e "s/127\.0\.0\.1:9093/$AM_ADDR/" \
	"$here/prometheus/prometheus.yml" >"$STACK_DIR/prometheus.yml"
promtool check config "$STACK_DIR/prometheus.yml" >/dev/null

pids=()
cleanup() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$am" --config.file="$STACK_DIR/alertmanager.yml" \
	--storage.path="$STACK_DIR/alertmanager-data" \
	--web.listen-address="$AM_ADDR" \
	--cluster.listen-address= \
	--log.level=warn &
pids+=($!)

prometheus --config.file="$STACK_DIR/prometheus.yml" \
	--storage.tsdb.path="$STACK_DIR/prometheus-data" \
	--web.listen-address="$PROM_ADDR" \
	--web.enable-lifecycle \
	--log.level=warn &
pids+=($!)

echo "stack.sh: Prometheus http://$PROM_ADDR (scraping soakd at $SOAKD_ADDR), Alertmanager http://$AM_ADDR; data in $STACK_DIR; Ctrl-C stops"
wait -n "${pids[@]}"
echo "stack.sh: a component exited; stopping" >&2
exit 1
