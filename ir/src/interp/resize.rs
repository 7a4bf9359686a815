//! Resize (nearest, linear, cubic), one axis at a time as ONNX defines it: every output
//! position reads a few input taps along the axis with fixed weights. Coordinates and
//! weights are computed in f64 the way the ONNX reference does, including its
//! tie-breaking, so the results agree to the last bit that f32 keeps.

use super::{floats, from_f64};
use crate::op::{CoordMode, NearestMode, Resize, ResizeMode};
use crate::{IrError, Tensor};

pub fn resize(r: &Resize, x: &Tensor) -> Result<Tensor, IrError> {
    let mut data: Vec<f64> = floats(x)?.iter().map(|&v| v as f64).collect();
    let mut shape = x.shape().to_vec();
    for axis in 0..shape.len() {
        let (scale, out_len) = (r.scales[axis], r.sizes[axis]);
        if is_identity(scale, shape[axis], out_len) {
            continue;
        }
        let taps: Vec<Vec<(usize, f64)>> = (0..out_len)
            .map(|o| taps(r, o, shape[axis], out_len, scale))
            .collect();
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let in_len = shape[axis];
        let mut next = Vec::with_capacity(outer * out_len * inner);
        for o in 0..outer {
            for t in &taps {
                for i in 0..inner {
                    next.push(
                        t.iter()
                            .map(|&(k, w)| w * data[(o * in_len + k) * inner + i])
                            .sum(),
                    );
                }
            }
        }
        data = next;
        shape[axis] = out_len;
    }
    from_f64(shape, data)
}

/// An axis kept at scale 1 is left untouched (whatever the coordinate mode).
pub fn is_identity(scale: f64, in_len: usize, out_len: usize) -> bool {
    (scale - 1.0).abs() <= 1e-9 && out_len == in_len
}

/// Source coordinate of output index `o`.
pub fn source_coord(coord: CoordMode, o: usize, in_len: usize, out_len: usize, scale: f64) -> f64 {
    let y = o as f64;
    // The reference uses the unrounded output length here.
    let out_f = scale * in_len as f64;
    match coord {
        CoordMode::HalfPixel => (y + 0.5) / scale - 0.5,
        CoordMode::HalfPixelSymmetric => {
            let adjustment = out_len as f64 / out_f;
            let center = in_len as f64 / 2.0;
            center * (1.0 - adjustment) + (y + 0.5) / scale - 0.5
        }
        CoordMode::PytorchHalfPixel if out_f == 1.0 => -0.5,
        CoordMode::PytorchHalfPixel => (y + 0.5) / scale - 0.5,
        CoordMode::AlignCorners if out_f == 1.0 => 0.0,
        CoordMode::AlignCorners => y * (in_len as f64 - 1.0) / (out_f - 1.0),
        CoordMode::Asymmetric => y / scale,
        CoordMode::TfHalfPixelForNn => (y + 0.5) / scale,
    }
}

fn cubic_coeffs(r: f64, a: f64) -> [f64; 4] {
    [
        ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
        ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
        ((a + 2.0) * (1.0 - r) - (a + 3.0)) * (1.0 - r) * (1.0 - r) + 1.0,
        ((a * ((1.0 - r) + 1.0) - 5.0 * a) * ((1.0 - r) + 1.0) + 8.0 * a) * ((1.0 - r) + 1.0)
            - 4.0 * a,
    ]
}

/// Input indices and weights that produce output index `o` of an axis resized from
/// `in_len` to `out_len` (shared with code generation so both agree on every tap).
pub fn taps(r: &Resize, o: usize, in_len: usize, out_len: usize, scale: f64) -> Vec<(usize, f64)> {
    let x = source_coord(r.coord, o, in_len, out_len, scale);
    // The window prefers the pixel left of x: an integer x gets ratio 1, not 0.
    let ratio = if x == x.floor() { 1.0 } else { x - x.floor() };
    let mut coeffs: Vec<f64> = match r.mode {
        ResizeMode::Nearest(_) if ratio == 1.0 => vec![0.0, 1.0],
        ResizeMode::Nearest(m) => {
            let right = match m {
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
            vec![(!right) as u8 as f64, right as u8 as f64]
        }
        ResizeMode::Linear => vec![1.0 - ratio, ratio],
        ResizeMode::Cubic { a } => cubic_coeffs(ratio, a as f64).to_vec(),
    };
    let n = coeffs.len() as i64;
    // The n taps nearest to x, ties to the smaller index.
    let pad = (n + 1) / 2;
    let xp = x + pad as f64;
    let p = xp.floor() as i64;
    let frac = xp - p as f64;
    let offset = if n % 2 == 0 {
        if frac == 0.0 { -(n / 2) } else { -(n / 2) + 1 }
    } else if frac <= 0.5 {
        -((n - 1) / 2)
    } else {
        -((n - 1) / 2) + 1
    };
    let start = p + offset - pad;
    let idx: Vec<i64> = (0..n).map(|k| start + k).collect();
    if r.exclude_outside {
        for (c, &i) in coeffs.iter_mut().zip(&idx) {
            if i < 0 || i >= in_len as i64 {
                *c = 0.0;
            }
        }
        let sum: f64 = coeffs.iter().sum();
        let sum = if sum == 0.0 { 1.0 } else { sum };
        coeffs.iter_mut().for_each(|c| *c /= sum);
    }
    idx.iter()
        .zip(coeffs)
        .map(|(&i, c)| (i.clamp(0, in_len as i64 - 1) as usize, c))
        .collect()
}
