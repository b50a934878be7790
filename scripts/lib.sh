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

NODE_MAJOR_NEEDED=20    # firebase-tools 15 needs Node.js 20 or newer

node_20_help() {
    # How to get Node.js 20 where apt offers an older one (Debian 12 has Node.js 18).
    cat <<'HELP'
firebase-tools (the Auth Emulator) needs Node.js 20 or newer. Debian 12's own packages
(and bookworm-backports) have Node.js 18 only. Get Node.js 20 from NodeSource:

    curl -fsSL https://deb.nodesource.com/setup_20.x -o /tmp/nodesource_setup.sh
    sudo bash /tmp/nodesource_setup.sh && sudo apt-get install -y nodejs

(or with nvm: nvm install 20), then run this script again. Debian 13 has Node.js 20
in its own packages.
HELP
}

ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        # Install from apt only when apt offers a Node.js that is new enough.
        local candidate
        candidate="$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')"
        candidate="${candidate#*:}"
        if [ -z "$candidate" ] || [ "$candidate" = "(none)" ] || [ "${candidate%%.*}" -lt "$NODE_MAJOR_NEEDED" ] 2>/dev/null; then
            node_20_help >&2
            die "Node.js $NODE_MAJOR_NEEDED or newer is not installed${candidate:+, and apt offers only $candidate}."
        fi
        apt_install nodejs npm
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$major" -lt "$NODE_MAJOR_NEEDED" ]; then
        node_20_help >&2
        die "this machine has Node.js $(node --version); $NODE_MAJOR_NEEDED or newer is needed."
    fi
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
        # --omit=optional: firebase-tools' optional re2 (for the Hosting emulator, which is
        # not used) would be compiled from source for ~10 minutes; nothing else optional is needed.
        say "Installing the Firebase web SDK, the Auth Emulator and axe-core (npm ci; under a minute the first time)"
        (cd "$ROOT" && npm ci --omit=optional --no-audit --no-fund --loglevel=error >&2)
        echo "$want" >"$stamp"
    fi
}

dev_settings() {
    # The settings of the local development setup, shared by scripts/dev and scripts/manage so
    # that a command run beside the server sees what the server sees: debug mode, the
    # emulator's project, and webhook receivers on this machine allowed (a local test
    # receiver, as docs/integrating.md shows). A value already in the environment wins.
    export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
    export FIREBASE_PROJECT_ID="${FIREBASE_PROJECT_ID:-$FIREBASE_DEMO_PROJECT}"
    export OMIKEYS_WEBHOOK_ALLOWED_NETWORKS="${OMIKEYS_WEBHOOK_ALLOWED_NETWORKS:-127.0.0.0/8,::1}"
}

apply_migrations() {
    # Bring the database (DATABASE_URL, or db.sqlite3) up to date, saying how many migrations
    # that took, or that there were none: one line, not Django's list of every step.
    local pending
    pending="$("$VENV/bin/python" "$ROOT/manage.py" showmigrations --plan | grep -c '^\[ \]' || true)"
    if [ "$pending" -gt 0 ]; then
        say "Applying $pending database migration$([ "$pending" -eq 1 ] || echo s)"
        "$VENV/bin/python" "$ROOT/manage.py" migrate --no-input --verbosity 0
    else
        say "The database is up to date"
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

emulator_ready() { curl -fsS "http://${1:-$AUTH_EMULATOR_HOST}/" >/dev/null 2>&1; }

port_in_use() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

emulator_project() {
    # emulator_project HOST: the project the Auth Emulator at HOST serves. Its REST API does
    # not say, but the tokens it mints do (their audience): a throwaway anonymous account is
    # made, read and deleted at once. Fails when HOST is no Auth Emulator.
    "$PYTHON" - "$1" <<'PY'
import base64, json, sys, urllib.request

base = f"http://{sys.argv[1]}/identitytoolkit.googleapis.com/v1/accounts"


def call(action, body):
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"{base}:{action}?key=omikeys-probe", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


try:
    token = call("signUp", {"returnSecureToken": True})["idToken"]
    call("delete", {"idToken": token})
    payload = token.split(".")[1]
    print(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["aud"])
except Exception:
    sys.exit(1)
PY
}

_free_ports() {
    # _free_ports N: N different loopback ports nothing listens on, one a line.
    "$PYTHON" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

_check_export() {
    # After the emulator stopped: say so if it did not save its accounts to DATA_DIR.
    local data_dir="$1" stamp="$2" log="$3"
    [ "$data_dir/firebase-export-metadata.json" -nt "$stamp" ] && return 0
    printf '\033[1;33mwarning: the Auth Emulator did not save its accounts to %s when it stopped (see %s).\n' \
        "${data_dir#"$ROOT"/}" "${log#"$ROOT"/}" >&2
    printf 'The next scripts/dev starts without them: the demo account is made again with its earlier uid;\n' >&2
    printf 'other accounts must sign up again, and get new uids (scripts/dev lists them).\033[0m\n' >&2
}

start_auth_emulator() {
    # start_auth_emulator [DATA_DIR]: make FIREBASE_AUTH_EMULATOR_HOST an Auth Emulator for
    # $FIREBASE_DEMO_PROJECT. One already answering on $AUTH_EMULATOR_HOST is used if it
    # serves that project; if it serves another (or the port is taken by something else),
    # ours starts on free ports instead, and says so. With DATA_DIR, accounts are loaded
    # from it and saved back on exit, so they outlive a restart (as db.sqlite3 does); a
    # save that fails is reported when the script ends.
    local data_dir="${1:-}" persist=() host="$AUTH_EMULATOR_HOST" config="$ROOT/firebase.json" project
    if emulator_ready "$host"; then
        project="$(emulator_project "$host" || true)"
        if [ "$project" = "$FIREBASE_DEMO_PROJECT" ]; then
            export FIREBASE_AUTH_EMULATOR_HOST="$host"
            say "Using the Auth Emulator already running on $host (project $project)"
            return 0
        fi
        say "The Auth Emulator on $host serves project ${project:-(unknown)}, not $FIREBASE_DEMO_PROJECT; starting ours on free ports"
    fi
    # firebase.json's ports: the emulator's, its hub's (4400) and its logging's (4500).
    if port_in_use "${host##*:}" || port_in_use 4400 || port_in_use 4500; then
        local ports
        mapfile -t ports < <(_free_ports 3)
        host="127.0.0.1:${ports[0]}"
        config="$RUN_DIR/firebase.json"
        printf '{"emulators": {"auth": {"host": "127.0.0.1", "port": %s}, "hub": {"host": "127.0.0.1", "port": %s}, "logging": {"host": "127.0.0.1", "port": %s}, "ui": {"enabled": false}, "singleProjectMode": true}}\n' \
            "${ports[@]}" >"$config"
        emulator_ready "$AUTH_EMULATOR_HOST" \
            || say "Port ${AUTH_EMULATOR_HOST##*:}, 4400 or 4500 is taken by another program; using $host"
    fi
    export FIREBASE_AUTH_EMULATOR_HOST="$host"
    say "Starting the Firebase Auth Emulator on $host (project $FIREBASE_DEMO_PROJECT)"
    local log="$RUN_DIR/auth-emulator.log" pid i
    if [ -n "$data_dir" ]; then
        mkdir -p "$data_dir"
        [ -n "$(ls -A "$data_dir")" ] && persist+=(--import "$data_dir")
        persist+=(--export-on-exit "$data_dir")
        touch "$RUN_DIR/auth-emulator-started"
        # Cleanup runs last-registered first: this check runs after the emulator stopped.
        on_exit "_check_export '$data_dir' '$RUN_DIR/auth-emulator-started' '$log'"
        # scripts/manage, in another terminal, finds the emulator here.
        echo "$host" >"$RUN_DIR/auth-emulator-host"
        on_exit "rm -f '$RUN_DIR/auth-emulator-host'"
    fi
    # Starting, the emulator compiles its API's schemas (about 10 s of CPU, much of it in the young
    # generation's garbage collection): larger semi-spaces cut that by about a fifth.
    (cd "$ROOT" && NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--max-semi-space-size=64" \
        exec setsid node_modules/.bin/firebase emulators:start --only auth --config "$config" \
        --project "$FIREBASE_DEMO_PROJECT" "${persist[@]}" >"$log" 2>&1) &
    pid=$!
    on_exit "_stop_group $pid"
    # About 10 s on an idle machine; allow for a busy one.
    for i in $(seq 1 240); do
        emulator_ready "$host" && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the Auth Emulator exited; log above"; }
        sleep 0.5
    done
    cat "$log" >&2
    die "the Auth Emulator did not answer within 120 s"
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
