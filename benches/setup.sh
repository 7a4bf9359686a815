# Sourced by the bench scripts (compare.sh, layers.sh, profile.sh): the cache, the
# Python venv and the cnnc binary they share. Needs `repo` and `script` (the caller's
# name, for messages); sets `cache` and `venv`.

cache=${CNNC_BENCH_CACHE:-$HOME/.cache/cnnc-bench}
venv=${CNNC_BENCH_VENV:-$cache/venv}
mkdir -p "$cache"

# Creates the venv with numpy, onnx and onnxruntime when it is missing.
ensure_venv() {
    if "$venv/bin/python" -c 'import numpy, onnx, onnxruntime' 2>/dev/null; then
        return
    fi
    local py=${CNNC_BENCH_PYTHON:-}
    if [ -z "$py" ]; then
        if command -v python3.11 >/dev/null; then py=python3.11; else py=python3; fi
    fi
    echo "$script: creating the venv $venv with $py" >&2
    "$py" -m venv "$venv"
    # shellcheck disable=SC2086 # a list of packages
    "$venv/bin/python" -m pip install --disable-pip-version-check -q ${CNNC_BENCH_PACKAGES:-numpy onnx onnxruntime}
}

# Sets `bin`: $CNNC_BIN, else the repository's release build (built first).
find_cnnc() {
    if [ -n "${CNNC_BIN:-}" ]; then
        bin=$CNNC_BIN
    else
        (cd "$repo" && cargo build --release)
        local target=${CARGO_TARGET_DIR:-target}
        case "$target" in /*) ;; *) target="$repo/$target" ;; esac
        bin="$target/release/cnnc"
    fi
    if [ ! -x "$bin" ]; then
        echo "$script: no cnnc binary at $bin" >&2
        exit 2
    fi
}
