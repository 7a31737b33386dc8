#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (Debian packages, Python
# test peers), starts the services they use, then runs formatting and lint checks, the Rust tests and the
# integration tests against real peers (Python smtplib, swaks, aiosmtpd) on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_cargo
install_debian_packages swaks ca-certificates openssl nsd clamav-daemon clamav-testfiles clamdscan 7zip zip chromium chromium-driver
ensure_postgres
ensure_redis
ensure_python_env .venv-test

say "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

say "building"
cargo build --workspace --locked

say "Rust tests"
cargo test --workspace --locked

say "integration tests against real peers"
GATEWAY_BIN="$PWD/target/debug/portcullis" .venv-test/bin/python -m pytest -q -p no:cacheprovider tests "$@"
say "all tests passed"
