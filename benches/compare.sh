#!/usr/bin/env bash
# Side-by-side benchmark of cnnc against onnxruntime; writes BENCHMARKS.md at the repo root.
#
#   bash benches/compare.sh [compare.py options]      e.g. --models resnet50,vgg19 --threads 1
#   bash benches/compare.sh --help                    all options
#
# Environment:
#   CNNC_BIN            a cnnc binary to benchmark (default: `cargo build --release` and use it)
#   CNNC_BENCH_CACHE    cache folder (default ~/.cache/cnnc-bench): the venv and the randomized
#                       models (5-550 MB each) live here; must be outside the repository
#   CNNC_BENCH_VENV     the Python venv (default $CNNC_BENCH_CACHE/venv; created when missing)
#   CNNC_BENCH_PYTHON   the interpreter that creates the venv (default python3.11, else python3)
#   CNNC_BENCH_PACKAGES what pip installs into a new venv (default "numpy onnx onnxruntime")
#   CNNC_BENCH_SHARED   the shared data folder (default ../shared beside the repository)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

# The command line as typed, for the report header.
command_line="bash $0"
[ -n "${CNNC_BIN:-}" ] && command_line="CNNC_BIN=$CNNC_BIN $command_line"
for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./,=:+@%-]+$ ]]; then command_line+=" $a"; else command_line+=" $(printf '%q' "$a")"; fi
done

for a in "$@"; do
    case "$a" in
        -h|--help)
            sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
            echo
            exec "${CNNC_BENCH_PYTHON:-python3}" "$here/compare.py" --help
            ;;
    esac
done

script=compare.sh
# shellcheck source=benches/setup.sh
source "$here/setup.sh"
shared=${CNNC_BENCH_SHARED:-$repo/../shared}
cache=$(cd "$cache" && pwd -P)
case "$cache/" in
    "$(cd "$repo" && pwd -P)/"*)
        echo "compare.sh: the cache $cache is inside the repository; set CNNC_BENCH_CACHE elsewhere" >&2
        exit 2 ;;
esac
if [ ! -d "$shared" ]; then
    echo "compare.sh: no shared data at $shared (clone beside ../shared or set CNNC_BENCH_SHARED)" >&2
    exit 2
fi
shared=$(cd "$shared" && pwd)

ensure_venv
find_cnnc

export CNNC_BENCH_COMMAND="$command_line"
exec "$venv/bin/python" "$here/compare.py" --cnnc "$bin" --cache "$cache" --shared "$shared" "$@"
