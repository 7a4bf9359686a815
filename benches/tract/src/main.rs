//! Times ONNX models with tract (optimized, one thread), for benches/layers.sh.
//!
//! `cnnc-bench-tract [--iters N] [--warmup W] MODEL.onnx...` prints one line per model:
//! `MODEL<TAB>median ms<TAB>min ms`, or `MODEL<TAB>error: ...` when tract cannot run it.

use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::format_err;

/// Median and minimum milliseconds of `iters` runs after `warmup` untimed ones.
fn time(path: &str, warmup: usize, iters: usize) -> TractResult<(f64, f64)> {
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .into_optimized()?
        .into_runnable()?;
    let shape: Vec<usize> = model
        .model()
        .input_fact(0)?
        .shape
        .as_concrete()
        .ok_or_else(|| format_err!("the input shape is not concrete"))?
        .to_vec();
    // Values in [-1, 1): no zeros or subnormals that would flatter anything.
    let data: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.5 - 1.0)
        .collect();
    let input: TValue = Tensor::from_shape(&shape, &data)?.into_tvalue();
    for _ in 0..warmup {
        model.run(tvec!(input.clone()))?;
    }
    let mut ms: Vec<f64> = (0..iters.max(1))
        .map(|_| {
            let start = Instant::now();
            model.run(tvec!(input.clone()))?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<TractResult<_>>()?;
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[0]))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut warmup, mut iters, mut models) = (3, 20, Vec::new());
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match a.as_str() {
            "--warmup" => warmup = number("--warmup"),
            "--iters" => iters = number("--iters"),
            _ => models.push(a),
        }
    }
    for m in &models {
        match time(m, warmup, iters) {
            Ok((median, min)) => println!("{m}\t{median:.4}\t{min:.4}"),
            Err(e) => println!("{m}\terror: {}", format!("{e:#}").replace('\n', " ")),
        }
    }
}
