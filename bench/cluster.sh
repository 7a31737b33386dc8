#!/usr/bin/env bash
# Cluster benchmark: messages/s through one node on SQLite, one node on PostgreSQL + Redis and two nodes
# sharing them (Postfix's smtp-source -> Portcullis -> smtp-sink), and quarantine search latency at 1 million
# quarantined items on each backend (see bench/cluster.py). Not run in CI.
# Usage: bash bench/cluster.sh [--count N] [--sessions N] [--items N] [--searches N] [--only throughput|search]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
install_debian_packages postfix python3 redis-tools
ensure_postgres
ensure_redis
say "building Portcullis and the search benchmark (release)"
cargo build --release --locked -p portcullis
cargo build --release --locked -p store --example quarantine_scale
target=${CARGO_TARGET_DIR:-$PWD/target}
as_root python3 bench/cluster.py --binary "$target/release/portcullis" \
  --search-example "$target/release/examples/quarantine_scale" "$@"
