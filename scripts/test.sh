#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (Debian packages, Python
# test peers), starts the services they use, then runs formatting and lint checks, the Rust tests and the
# integration tests against real peers (Python smtplib, swaks, aiosmtpd) on loopback, and last the fuzz
# targets: their committed corpora replayed, then each fuzzed for PORTCULLIS_FUZZ_SECONDS (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_cargo
# libnet-ssleay-perl: swaks speaks STARTTLS through it, and apt does not install recommended packages here.
install_debian_packages swaks libnet-ssleay-perl ca-certificates openssl nsd clamav-daemon clamav-testfiles clamdscan 7zip zip chromium chromium-driver
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
say "fuzzing: the committed corpora replayed, then each target for ${PORTCULLIS_FUZZ_SECONDS:-15}s"
(cd fuzz && cp ../Cargo.lock Cargo.lock && CARGO_TARGET_DIR="$PWD/../target" cargo test --quiet)
bash fuzz/run.sh "${PORTCULLIS_FUZZ_SECONDS:-15}" fuzz-ci
say "all tests passed"
