# shellcheck shell=bash
#
# PostgreSQL selection for scripts/test.sh. Sourced, not executed.
#
# pg_select picks the PostgreSQL server the tests run against, in this order:
#   a. DATABASE_URL, when it is a postgres:// or postgresql:// URL;
#   b. a server already answering on 127.0.0.1:5432 (user postgres, trust auth);
#   c. a throwaway cluster created in a temporary directory, started on a free
#      port and stopped/removed when the calling script exits. If the server
#      binaries are missing and we are root, the postgresql package is
#      installed with apt-get first.
# Setting PAYLEDGER_TEST_FORCE_THROWAWAY=1 skips a and b and always uses c.
#
# On return DATABASE_URL and PAYLEDGER_TEST_POSTGRES_URL are exported, and
# exactly one "test.sh: using ..." line has been printed. On failure the
# script dies: PostgreSQL tests are never skipped.

PG_DEFAULT_PORT=5432
PG_FIRST_THROWAWAY_PORT=55432

# State of the throwaway cluster, read by pg_cleanup_throwaway.
PG_TMP_DIR=""
PG_BIN_DIR=""
PG_RUN_AS=""

pg_die() {
    echo "test.sh: error: $*" >&2
    exit 1
}

# pg_redact URL: the URL with any password replaced by ***.
pg_redact() {
    printf '%s\n' "$1" | sed -E 's#^([a-z]+://[^:/@]+):[^@/]*@#\1:***@#'
}

# pg_port_open PORT: succeeds if something accepts TCP connections on
# 127.0.0.1:PORT.
pg_port_open() {
    local port=$1
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/${port}" 2>/dev/null
    else
        (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null
    fi
}

# pg_server_answers PORT: succeeds if a PostgreSQL server accepts connections
# on 127.0.0.1:PORT (a plain TCP probe when pg_isready is not installed).
pg_server_answers() {
    local port=$1
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p "$port" -t 3
    else
        pg_port_open "$port"
    fi
}

# pg_find_bin_dir: sets PG_BIN_DIR to a directory holding initdb and pg_ctl,
# preferring the highest Debian-packaged version.
pg_find_bin_dir() {
    local candidate initdb_path
    PG_BIN_DIR=""
    candidate=$(
        shopt -s nullglob
        for initdb_path in /usr/lib/postgresql/*/bin/initdb; do
            if [[ -x $initdb_path && -x ${initdb_path%/initdb}/pg_ctl ]]; then
                printf '%s\n' "${initdb_path%/initdb}"
            fi
        done | sort -V | tail -n 1
    )
    if [[ -n $candidate ]]; then
        PG_BIN_DIR=$candidate
        return 0
    fi
    if initdb_path=$(command -v initdb) && command -v pg_ctl >/dev/null 2>&1; then
        # Resolve a symlinked initdb so pg_ctl from the same installation is used.
        initdb_path=$(readlink -f "$initdb_path")
        if [[ -x ${initdb_path%/initdb}/pg_ctl ]]; then
            PG_BIN_DIR=${initdb_path%/initdb}
        else
            PG_BIN_DIR=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
            [[ -x $PG_BIN_DIR/initdb ]] || PG_BIN_DIR=$(dirname "$initdb_path")
        fi
        return 0
    fi
    return 1
}

# pg_as_owner CMD...: runs CMD as the owner of the throwaway cluster (the
# current user, unless we are root: initdb and postgres refuse to run as root).
pg_as_owner() {
    if [[ -z $PG_RUN_AS ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$PG_RUN_AS" -- "$@"
    else
        su "$PG_RUN_AS" -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

# pg_choose_owner: when running as root, picks (or creates) an unprivileged
# user to own the throwaway cluster.
pg_choose_owner() {
    PG_RUN_AS=""
    [[ $(id -u) -eq 0 ]] || return 0
    if id -u postgres >/dev/null 2>&1; then
        PG_RUN_AS=postgres
    else
        PG_RUN_AS=payledger-test
        if ! id -u "$PG_RUN_AS" >/dev/null 2>&1; then
            useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_RUN_AS" ||
                pg_die "could not create the system user $PG_RUN_AS to own the throwaway PostgreSQL cluster"
        fi
    fi
    command -v runuser >/dev/null 2>&1 || command -v su >/dev/null 2>&1 ||
        pg_die "running as root but neither runuser nor su is available to start PostgreSQL as $PG_RUN_AS"
}

# pg_free_port FROM: prints the first port from FROM upward that nothing
# listens on.
pg_free_port() {
    local port
    for ((port = $1; port < PG_FIRST_THROWAWAY_PORT + 200; port++)); do
        if ! pg_port_open "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    return 1
}

# pg_cleanup_throwaway: stops the throwaway cluster and removes its directory.
# Installed as an EXIT trap; safe to call more than once.
pg_cleanup_throwaway() {
    [[ -n $PG_TMP_DIR ]] || return 0
    # postmaster.pid exists while a server runs on the data directory (also
    # when pg_ctl gave up waiting for one it launched).
    if [[ -f $PG_TMP_DIR/data/postmaster.pid ]]; then
        (cd "$PG_TMP_DIR" && pg_as_owner "$PG_BIN_DIR/pg_ctl" -D "$PG_TMP_DIR/data" -m immediate -w stop) >/dev/null 2>&1 ||
            echo "test.sh: warning: could not stop the throwaway PostgreSQL in $PG_TMP_DIR" >&2
    fi
    rm -rf -- "$PG_TMP_DIR"
    PG_TMP_DIR=""
}

# pg_show_log TITLE FILE: prints the end of FILE to stderr (diagnostics).
pg_show_log() {
    if [[ -s $2 ]]; then
        echo "test.sh: --- $1 ($2) ---" >&2
        tail -n 40 -- "$2" >&2
        echo "test.sh: --- end of $1 ---" >&2
    fi
}

# pg_start_throwaway: creates and starts the throwaway cluster, setting
# PG_URL and PG_DESCRIPTION.
pg_start_throwaway() {
    if ! pg_find_bin_dir; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "test.sh: PostgreSQL server binaries not found; installing the postgresql package with apt-get" >&2
            apt-get update ||
                pg_die "apt-get update failed; cannot install PostgreSQL"
            DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql ||
                pg_die "apt-get install postgresql failed"
        fi
        pg_find_bin_dir ||
            pg_die "no PostgreSQL found: set DATABASE_URL=postgres://..., run a server on 127.0.0.1:5432, or install the PostgreSQL server (initdb/pg_ctl; e.g. apt-get install postgresql) - the PostgreSQL tests are never skipped"
    fi

    pg_choose_owner

    local base=${TMPDIR:-/tmp}
    # The cluster owner must be able to reach the directory; /tmp always allows that.
    [[ -n $PG_RUN_AS ]] && base=/tmp
    PG_TMP_DIR=$(mktemp -d "$base/payledger-pg.XXXXXX") ||
        pg_die "could not create a temporary directory for PostgreSQL"
    trap pg_cleanup_throwaway EXIT
    # Make interrupts run the EXIT trap too.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [[ -n $PG_RUN_AS ]]; then
        chown "$PG_RUN_AS" "$PG_TMP_DIR" ||
            pg_die "could not hand $PG_TMP_DIR to $PG_RUN_AS"
    fi

    # Run from the temporary directory: the cluster owner may not be allowed to
    # read the current one, and the PostgreSQL tools need a usable cwd.
    if ! (cd "$PG_TMP_DIR" && pg_as_owner "$PG_BIN_DIR/initdb" -D "$PG_TMP_DIR/data" \
        -A trust -U postgres -E UTF8 --locale=C --no-sync >"$PG_TMP_DIR/initdb.out" 2>&1); then
        pg_show_log "initdb output" "$PG_TMP_DIR/initdb.out"
        pg_die "initdb failed (binaries from $PG_BIN_DIR${PG_RUN_AS:+, run as $PG_RUN_AS})"
    fi

    # Another run may grab the same free port between the probe and the
    # server's bind; then move on to the next port.
    local port=$PG_FIRST_THROWAWAY_PORT attempt
    for attempt in 1 2 3 4 5; do
        port=$(pg_free_port "$port") ||
            pg_die "no free TCP port found from $PG_FIRST_THROWAWAY_PORT upward"
        rm -f -- "$PG_TMP_DIR/postgres.log"
        if (cd "$PG_TMP_DIR" && pg_as_owner "$PG_BIN_DIR/pg_ctl" -D "$PG_TMP_DIR/data" \
            -o "-p $port -k '$PG_TMP_DIR' -c listen_addresses=127.0.0.1 -c fsync=off" \
            -w -t 60 -l "$PG_TMP_DIR/postgres.log" start >"$PG_TMP_DIR/pg_ctl.out" 2>&1); then
            break
        fi
        if [[ $attempt -lt 5 ]] && grep -q 'could not bind' "$PG_TMP_DIR/postgres.log" &&
            [[ ! -f $PG_TMP_DIR/data/postmaster.pid ]]; then
            port=$((port + 1))
            continue
        fi
        pg_show_log "pg_ctl output" "$PG_TMP_DIR/pg_ctl.out"
        pg_show_log "server log" "$PG_TMP_DIR/postgres.log"
        pg_die "the throwaway PostgreSQL did not start on 127.0.0.1:$port"
    done

    local version
    version=$("$PG_BIN_DIR/pg_ctl" --version 2>/dev/null | sed -E 's/^pg_ctl \(PostgreSQL\) //') || version=""
    PG_URL="postgres://postgres@127.0.0.1:${port}/postgres"
    PG_DESCRIPTION="throwaway PostgreSQL ${version:-(unknown version)} started from $PG_BIN_DIR in $PG_TMP_DIR${PG_RUN_AS:+ as user $PG_RUN_AS}, removed on exit"
}

pg_select() {
    local note=""
    PG_URL=""
    PG_DESCRIPTION=""

    if [[ ${PAYLEDGER_TEST_FORCE_THROWAWAY:-} == 1 ]]; then
        note=" (PAYLEDGER_TEST_FORCE_THROWAWAY=1)"
    else
        case ${DATABASE_URL:-} in
            postgres://* | postgresql://*)
                PG_URL=$DATABASE_URL
                PG_DESCRIPTION="PostgreSQL from DATABASE_URL"
                ;;
            "") ;;
            *) note=" (DATABASE_URL is not a PostgreSQL URL; ignored)" ;;
        esac
        if [[ -z $PG_URL ]] && pg_server_answers "$PG_DEFAULT_PORT"; then
            PG_URL="postgres://postgres@127.0.0.1:${PG_DEFAULT_PORT}/postgres"
            PG_DESCRIPTION="local PostgreSQL already running on 127.0.0.1:${PG_DEFAULT_PORT}"
        fi
    fi
    [[ -n $PG_URL ]] || pg_start_throwaway

    export DATABASE_URL=$PG_URL
    export PAYLEDGER_TEST_POSTGRES_URL=$PG_URL
    echo "test.sh: using ${PG_DESCRIPTION}: $(pg_redact "$PG_URL")${note}"
}
