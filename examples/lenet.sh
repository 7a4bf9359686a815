#!/usr/bin/env bash
# Builds cnnc, compiles the bundled LeNet-5 to an object file, links it into the C
# program examples/classify.c and runs it on the bundled image.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
out=target/example
mkdir -p "$out"
./target/release/cnnc examples/lenet/model.onnx -o "$out/lenet.o" --name lenet
"${CC:-cc}" -O2 -I"$out" examples/classify.c "$out/lenet.o" -o "$out/classify"
"$out/classify" examples/lenet/image.f32
