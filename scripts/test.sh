#!/usr/bin/env bash
#
# Runs every test of the workspace: formatting, clippy and `cargo test`, with
# a PostgreSQL server for the PostgreSQL-backed tests. Needs only the Rust
# toolchain; PostgreSQL is found or started as described in lib/postgres.sh
# (installed with apt-get when missing and running as root), and Chromium with
# chromedriver for the browser tests is installed the same way (lib/chromium.sh).
#
# Usage:
#   scripts/test.sh                         # everything (what CI runs)
#   scripts/test.sh -- order                # extra arguments go to `cargo test`
#   scripts/test.sh -- order -- --nocapture
#
# Environment knobs, for local use only (CI sets none of them):
#   PAYLEDGER_TEST_SKIP_LINT=1        skip `cargo fmt --check` and clippy for fast iterations.
#   PAYLEDGER_TEST_SKIP_BENCH=1       skip the benchmark's smoke run (a release build).
#   PAYLEDGER_TEST_FORCE_THROWAWAY=1  ignore DATABASE_URL and any server on
#                                     127.0.0.1:5432; always start a throwaway cluster.
#   PAYLEDGER_TEST_DRY_RUN=1          stop after choosing PostgreSQL and querying its
#                                     version with psql (when installed); runs no cargo.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo pipefail$/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
}

cargo_test_args=()
if [[ $# -gt 0 ]]; then
    case $1 in
        --)
            shift
            cargo_test_args=("$@")
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "test.sh: error: unexpected argument '$1'; put arguments for cargo test after --" >&2
            usage >&2
            exit 2
            ;;
    esac
fi

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
cd -- "$script_dir/.."

# shellcheck source-path=SCRIPTDIR source=lib/postgres.sh
. "$script_dir/lib/postgres.sh"
# shellcheck source-path=SCRIPTDIR source=lib/chromium.sh
. "$script_dir/lib/chromium.sh"

pg_select

if [[ ${PAYLEDGER_TEST_DRY_RUN:-} == 1 ]]; then
    psql_bin=$(command -v psql || true)
    if [[ -z $psql_bin && -n $PG_BIN_DIR && -x $PG_BIN_DIR/psql ]]; then
        psql_bin=$PG_BIN_DIR/psql
    fi
    if [[ -n $psql_bin ]]; then
        "$psql_bin" "$DATABASE_URL" -X -A -t -v ON_ERROR_STOP=1 -c 'select version()'
    else
        echo "test.sh: psql not installed; not querying the server"
    fi
    echo "test.sh: dry run finished in ${SECONDS}s"
    exit 0
fi

chromium_ensure

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: error: cargo not found; install the Rust toolchain (rustup)" >&2
    exit 1
fi

run() {
    echo "test.sh: running $*"
    local status=0
    "$@" || status=$?
    if [[ $status -ne 0 ]]; then
        echo "test.sh: FAILED (exit $status) after ${SECONDS}s: $*" >&2
        exit "$status"
    fi
}

if [[ ${PAYLEDGER_TEST_SKIP_LINT:-} == 1 ]]; then
    echo "test.sh: PAYLEDGER_TEST_SKIP_LINT=1: skipping cargo fmt and cargo clippy"
else
    run cargo fmt --all -- --check
    run cargo clippy --locked --workspace --all-targets -- -D warnings
fi
run cargo test --locked --workspace "${cargo_test_args[@]}"

# The benchmark's smoke run on both stores: it must work end to end against the real release
# server; its figures are printed, not judged (timing is the full run's business).
if [[ ${PAYLEDGER_TEST_SKIP_BENCH:-} == 1 ]]; then
    echo "test.sh: PAYLEDGER_TEST_SKIP_BENCH=1: skipping the benchmark smoke run"
else
    run cargo run --release --locked -p bench -- --quick --store both
    # The benchmark built the server in release with the README's own profile and features,
    # so `cargo run --release` right after this script must find nothing left to build: a
    # newcomer never waits for a second release build. Checked, so a change that splits the
    # two builds fails here.
    echo "test.sh: checking that \`cargo run --release\` has nothing left to build"
    rebuilt=$(cargo build --release --locked --message-format=json | grep -c '"fresh":false' || true)
    if [[ $rebuilt -ne 0 ]]; then
        echo "test.sh: FAILED after ${SECONDS}s: \`cargo build --release\` rebuilt $rebuilt targets after the benchmark's release build" >&2
        exit 1
    fi
fi

echo "test.sh: all tests passed in ${SECONDS}s"
