#!/usr/bin/env bash
# Where the time goes in one model: cnnc's per-layer profile beside onnxruntime's own profile,
# matched layer by layer and summed per category; prints Markdown.
#
#   bash benches/profile.sh MODEL [profile.py options]   e.g. resnet50 --threads 1 --iters 15
#   bash benches/profile.sh --help                       all options
#
# MODEL is an .onnx file or a name of `compare.sh --list` (randomized copies are made as there).
# Environment: the variables of compare.sh (CNNC_BIN, CNNC_BENCH_CACHE, CNNC_BENCH_VENV,
# CNNC_BENCH_PYTHON, CNNC_BENCH_PACKAGES, CNNC_BENCH_SHARED), with the same defaults; without
# CNNC_BIN the script runs `cargo build --release`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

for a in "$@"; do
    case "$a" in
        -h|--help)
            sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
            echo
            exec "${CNNC_BENCH_PYTHON:-python3}" "$here/profile.py" --help
            ;;
    esac
done

script=profile.sh
# shellcheck source=benches/setup.sh
source "$here/setup.sh"
shared=${CNNC_BENCH_SHARED:-$repo/../shared}
ensure_venv
find_cnnc

exec "$venv/bin/python" "$here/profile.py" --cnnc "$bin" --cache "$cache" --shared "$shared" "$@"
