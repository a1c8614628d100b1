#!/usr/bin/env bash
# The one test command: installs dependencies, then format check, clippy, and every test.
#
#   bash scripts/test.sh
#
# Environment:
#   TEST_THREADS   --test-threads for the test binaries (default: number of CPUs). Tests
#                  that touch the kernel serialise themselves where they must; lower this
#                  if they interfere (e.g. TEST_THREADS=1).
#   SKIP_DEPS=1    do not run scripts/install-deps.sh
#   CARGO_TEST_ARGS extra arguments for `cargo test` (e.g. "--release")
# Integration tests that need root skip themselves when not run as root; run as root
# (CI does) to exercise them. Exits non-zero if any step fails.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${SKIP_DEPS:-0}" != 1 ]]; then
    bash scripts/install-deps.sh
fi
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

TEST_THREADS="${TEST_THREADS:-$(nproc)}"
# A CRIU that works on this kernel (Debian 12's does not on kernels >= 6.13); with one,
# the checkpoint tests must run rather than skip.
# The guest kernel for the micro-VM tests (Debian's, unpacked into berth's cache).
if [[ $(id -u) -eq 0 ]] && bash scripts/fetch-kernel.sh >/dev/null; then
    export BERTH_REQUIRE_VM=1
else
    echo "test.sh: no guest kernel: the VM tests will skip" >&2
fi
if [[ $(id -u) -eq 0 ]] && criu_bin=$(bash scripts/install-criu.sh); then
    export PATH="$(dirname "$criu_bin"):$PATH"
    export BERTH_REQUIRE_CRIU=1
else
    echo "test.sh: no working criu: checkpoint tests will skip" >&2
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: not root: tests that need root will be skipped" >&2
fi

failed=()
step() {
    echo
    echo "==> $*"
    if ! "$@"; then
        failed+=("$*")
    fi
}

# Every step runs even if an earlier one failed, so one CI log shows all problems.
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
# shellcheck disable=SC2086 # CARGO_TEST_ARGS is a list of words
step cargo test --workspace --no-fail-fast ${CARGO_TEST_ARGS:-} -- --test-threads="$TEST_THREADS"

echo
if ((${#failed[@]})); then
    printf 'test.sh: FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "test.sh: all checks passed"
