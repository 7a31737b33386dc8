#!/usr/bin/env bash
# Attachment pipeline benchmark: Portcullis inspection with and without clamd, beside clamdscan on the
# same files, in one run (see bench/attachments.py). Not part of CI.
# Usage: bash bench/attachments.sh [--repeat N] [--results FILE] [--seed N] [--write-corpus DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
install_debian_packages clamav-daemon clamav-testfiles clamdscan python3
say "building Portcullis (release)"
cargo build --release --locked -p portcullis
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/portcullis"
python3 bench/attachments.py --binary "$bin" "$@"
