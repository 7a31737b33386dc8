#!/usr/bin/env bash
# Fuzz every target (one per file in src/bin/) for a bounded time with AFL++ through cargo-afl (stable
# toolchain).
#   fuzz/run.sh [SECONDS_PER_TARGET] [PROFILE]     defaults: 60, release (the test command: 15, fuzz-ci)
# Installs cargo-afl if missing. Crashes land in fuzz/out/<target>/default/crashes/; copy each into
# fuzz/corpus/<target>/ (named crash-...) so `cargo test` here replays it as a regression test. Fails
# when a target crashes or runs no executions at all.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
profile=${2:-release}
command -v cargo-afl >/dev/null 2>&1 || cargo install cargo-afl --locked
cargo afl config --build >/dev/null 2>&1 || true
# The workspace's lock file pins what this separate workspace shares with it.
cp ../Cargo.lock Cargo.lock
cargo afl build --profile "$profile" --features afl
bin_dir="${CARGO_TARGET_DIR:-target}/$profile"
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
status=0
mkdir -p out
for src in src/bin/*.rs; do
  t=$(basename "$src" .rs)
  echo "==> fuzzing $t for ${secs}s"
  rm -rf "out/$t"
  cargo afl fuzz -V "$secs" -i "corpus/$t" -o "out/$t" "$bin_dir/$t" >"out/$t.log" 2>&1 || true
  crashes=$(find "out/$t/default/crashes" -type f ! -name README.txt 2>/dev/null | wc -l)
  execs=$(grep -E '^execs_done' "out/$t/default/fuzzer_stats" 2>/dev/null | awk '{print $3}')
  echo "    $t: ${execs:-no} executions, $crashes crash(es)"
  if [ "$crashes" -ne 0 ]; then
    status=1
    find "out/$t/default/crashes" -type f ! -name README.txt | head -n 5 | sed 's/^/    crash: fuzz\//'
  fi
  if [ -z "$execs" ] || [ "$execs" -eq 0 ]; then
    echo "    $t did not run; the end of its log:" && tail -n 20 "out/$t.log" | sed 's/^/    /'
    status=1
  fi
done
exit $status
