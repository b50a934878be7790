# Shared helpers for scripts/dev, scripts/test and .ci/run. Source it; do not run it.
#
# Every step is idempotent: on a machine that already has what a step installs,
# the step only checks and moves on.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"            # logs and throwaway data of local services (git-ignored)
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
AUTH_EMULATOR_HOST="127.0.0.1:9099"    # as in firebase.json
FIREBASE_DEMO_PROJECT="${FIREBASE_DEMO_PROJECT:-demo-omikeys}"

mkdir -p "$RUN_DIR"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

_cleanup_cmds=()
on_exit() { _cleanup_cmds+=("$1"); }
_run_cleanup() {
    local i
    for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do eval "${_cleanup_cmds[i]}" || true; done
}
trap _run_cleanup EXIT
trap 'exit 130' INT TERM

apt_install() {
    # apt_install PACKAGE...: install Debian packages that are missing (needs root).
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing system packages: ${missing[*]}. Install them (sudo apt-get install ${missing[*]}) and run again."
    fi
    say "Installing system packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [ "$major" -ge 20 ] || die "firebase-tools needs Node.js 20 or newer; this machine has $(node --version)."
}

ensure_python_env() {
    # ensure_python_env REQUIREMENTS_FILE: a virtualenv in .venv with those requirements.
    local req="$1" stamp="$VENV/.installed" want
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))."
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
        say "Creating the virtualenv in .venv"
        "$PYTHON" -m venv "$VENV"
    fi
    want="$req $(cat "$ROOT"/requirements*.txt | sha256sum | cut -c1-16)"
    if ! grep -qxF "$want" "$stamp" 2>/dev/null; then
        say "Installing Python packages from $req"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/$req" \
            || die "pip install -r $req failed"
        [ "$req" = requirements-test.txt ] && echo "requirements.txt $(cat "$ROOT"/requirements*.txt | sha256sum | cut -c1-16)" >>"$stamp"
        echo "$want" >>"$stamp"
    fi
}

ensure_node_modules() {
    ensure_node
    local stamp="$ROOT/node_modules/.omikeys-lock" want
    want="$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)"
    if [ ! -x "$ROOT/node_modules/.bin/firebase" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "Installing the Firebase web SDK and Auth Emulator (npm ci; about 10 minutes the first time on 2 cores)"
        (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >&2)
        echo "$want" >"$stamp"
    fi
}

ensure_chromium() {
    # The browser tests drive Debian's Chromium through Playwright (never Playwright's download).
    export OMIKEYS_CHROMIUM="${OMIKEYS_CHROMIUM:-/usr/bin/chromium}"
    [ -x "$OMIKEYS_CHROMIUM" ] || apt_install chromium fonts-liberation
}

_stop_group() {
    # SIGINT lets the emulator save its data; give it up to 10 s before forcing.
    local pgid="$1" i
    kill -INT -- "-$pgid" 2>/dev/null || return 0
    for i in $(seq 1 20); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -KILL -- "-$pgid" 2>/dev/null
}

emulator_ready() { curl -fsS "http://$AUTH_EMULATOR_HOST/" >/dev/null 2>&1; }

start_auth_emulator() {
    # start_auth_emulator [DATA_DIR]: start the Firebase Auth Emulator on $AUTH_EMULATOR_HOST
    # unless one already answers there. With DATA_DIR, accounts are loaded from it and saved
    # back on exit, so they outlive a restart (as db.sqlite3 does).
    local data_dir="${1:-}" persist=()
    export FIREBASE_AUTH_EMULATOR_HOST="$AUTH_EMULATOR_HOST"
    if emulator_ready; then
        say "Using the Auth Emulator already running on $AUTH_EMULATOR_HOST"
        return 0
    fi
    say "Starting the Firebase Auth Emulator on $AUTH_EMULATOR_HOST (project $FIREBASE_DEMO_PROJECT)"
    if [ -n "$data_dir" ]; then
        mkdir -p "$data_dir"
        [ -n "$(ls -A "$data_dir")" ] && persist+=(--import "$data_dir")
        persist+=(--export-on-exit "$data_dir")
    fi
    local log="$RUN_DIR/auth-emulator.log" pid i
    (cd "$ROOT" && exec setsid node_modules/.bin/firebase emulators:start --only auth \
        --project "$FIREBASE_DEMO_PROJECT" "${persist[@]}" >"$log" 2>&1) &
    pid=$!
    on_exit "_stop_group $pid"
    for i in $(seq 1 120); do
        emulator_ready && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the Auth Emulator exited; log above"; }
        sleep 0.5
    done
    cat "$log" >&2
    die "the Auth Emulator did not answer within 60 s"
}

start_postgres() {
    # Start a throwaway PostgreSQL cluster on loopback and export PG_DATABASE_URL.
    local pgbin pgdata port="${PG_PORT:-55432}" as=()
    pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    if [ -z "$pgbin" ]; then
        apt_install postgresql
        pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    fi
    while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    pgdata="$(mktemp -d "${TMPDIR:-/tmp}/omikeys-pg.XXXXXX")"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$pgdata"
        as=(runuser -u postgres --)
    fi
    say "Starting a throwaway PostgreSQL ($("$pgbin/postgres" --version | awk '{print $3}')) on 127.0.0.1:$port"
    "${as[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres -A trust --no-sync >"$RUN_DIR/pg-initdb.log" 2>&1 \
        || { cat "$RUN_DIR/pg-initdb.log" >&2; die "initdb failed"; }
    "${as[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/log" -w -o \
        "-p $port -k $pgdata -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >/dev/null \
        || { cat "$pgdata/log" >&2; die "PostgreSQL did not start"; }
    on_exit "${as[*]} $pgbin/pg_ctl -D $pgdata -m immediate stop >/dev/null 2>&1; rm -rf $pgdata"
    export PG_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}
