#!/usr/bin/env bash
# Build Portcullis and run the gateway on its embedded defaults (or with the arguments given, e.g.
# `--config /etc/portcullis.toml`): SMTP on 127.0.0.1:2525, data in ./portcullis-data, accepted domain
# localhost, clean mail delivered to Maildirs under ./portcullis-data/mailboxes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
say "building (release)"
cargo build --release --locked -p portcullis
exec target/release/portcullis "$@" serve
