#!/usr/bin/env bash
# cnnc, tract and onnxruntime side by side on the single layers of benches/kernels.rs;
# prints a Markdown table.
#
#   bash benches/layers.sh [layers.py options]       e.g. --iters 50
#   bash benches/layers.sh --help                    all options
#
# Environment:
#   CNNC_BIN            a cnnc binary (default: `cargo build --release` and use it)
#   TRACT_BIN           the benches/tract binary (default: build it, a few minutes the
#                       first time; `TRACT_BIN=none` leaves tract out)
#   CNNC_BENCH_CACHE    cache folder (default ~/.cache/cnnc-bench): the venv and layers/
#   CNNC_BENCH_VENV     the Python venv (default $CNNC_BENCH_CACHE/venv; created when missing)
#   CNNC_BENCH_PYTHON   the interpreter that creates the venv (default python3.11, else python3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

for a in "$@"; do
    case "$a" in
        -h|--help)
            sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
            echo
            exec "${CNNC_BENCH_PYTHON:-python3}" "$here/layers.py" --help
            ;;
    esac
done

script=layers.sh
# shellcheck source=benches/setup.sh
source "$here/setup.sh"
ensure_venv
find_cnnc

# tract is its own crate outside the workspace, with its own target folder.
tract_args=()
if [ "${TRACT_BIN:-}" != none ]; then
    if [ -z "${TRACT_BIN:-}" ]; then
        (cd "$here/tract" && cargo build --release)
        TRACT_BIN="${CARGO_TARGET_DIR:-$here/tract/target}/release/cnnc-bench-tract"
    fi
    tract_args=(--tract "$TRACT_BIN")
fi

exec "$venv/bin/python" "$here/layers.py" --dir "$cache/layers" --cnnc "$bin" \
    "${tract_args[@]}" "$@"
