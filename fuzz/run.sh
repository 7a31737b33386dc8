#!/usr/bin/env bash
# Fuzz every target for a bounded time with AFL++ through cargo-afl (stable toolchain).
#   fuzz/run.sh [SECONDS_PER_TARGET]      default 60
# Installs cargo-afl if missing. Crashes land in fuzz/out/<target>/default/crashes/; copy each into
# fuzz/corpus/<target>/ (named crash-...) so `cargo test` here replays it as a regression test.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
command -v cargo-afl >/dev/null 2>&1 || cargo install cargo-afl --locked
cargo afl config --build >/dev/null 2>&1 || true
cargo afl build --release --features afl
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
status=0
for t in smtp_session smuggling mime verdict; do
  echo "==> fuzzing $t for ${secs}s"
  mkdir -p out
  cargo afl fuzz -V "$secs" -i "corpus/$t" -o "out/$t" "target/release/$t" >"out/$t.log" 2>&1 || true
  crashes=$(find "out/$t/default/crashes" -type f ! -name README.txt 2>/dev/null | wc -l)
  execs=$(grep -E '^execs_done' "out/$t/default/fuzzer_stats" 2>/dev/null | awk '{print $3}')
  echo "    $t: ${execs:-?} executions, $crashes crash(es)"
  [ "$crashes" -eq 0 ] || status=1
done
exit $status
