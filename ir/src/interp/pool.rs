//! Max and average pooling (windowed and global), 1-D to 3-D.

use super::conv::{Axis, to_3d};
use super::{floats, from_f64};
use crate::op::{Pool, PoolKind};
use crate::{IrError, Tensor, TensorType};

/// Window positions of one axis for output index `o`: the input indices inside the
/// input, and how many positions the average divides by.
fn window(a: &Axis, pad_end: usize, o: usize, count_pad: bool) -> (Vec<usize>, usize) {
    let start = (o * a.stride) as isize - a.pad_begin as isize;
    let mut inside = Vec::new();
    let mut counted = 0;
    for k in 0..a.kernel {
        let i = start + (k * a.dilation) as isize;
        if i >= 0 && (i as usize) < a.input {
            inside.push(i as usize);
        }
        // ceil_mode may extend the last window beyond the end padding; those positions
        // are never counted.
        if i < (a.input + pad_end) as isize && (count_pad || (i >= 0 && (i as usize) < a.input)) {
            counted += 1;
        }
    }
    (inside, counted)
}

pub fn pool(p: &Pool, x: &Tensor, out: &TensorType) -> Result<Tensor, IrError> {
    let xv = floats(x)?;
    let xs = x.shape();
    let spatial = p.kernel.len();
    let mut pad_end: Vec<usize> = p.pads.iter().map(|p| p.1).collect();
    while pad_end.len() < 3 {
        pad_end.insert(0, 0);
    }
    let axes = to_3d(
        (0..spatial)
            .map(|i| Axis {
                input: xs[2 + i],
                output: out.shape[2 + i],
                kernel: p.kernel[i],
                stride: p.strides[i],
                dilation: p.dilations[i],
                pad_begin: p.pads[i].0,
            })
            .collect(),
    );
    let count_pad = matches!(
        p.kind,
        PoolKind::Avg {
            count_include_pad: true
        }
    );
    let windows: Vec<Vec<(Vec<usize>, usize)>> = (0..3)
        .map(|i| {
            (0..axes[i].output)
                .map(|o| window(&axes[i], pad_end[i], o, count_pad))
                .collect()
        })
        .collect();
    let in_plane = axes[0].input * axes[1].input * axes[2].input;
    let planes = xs[0] * xs[1];
    let mut y = Vec::with_capacity(out.numel());
    for pl in 0..planes {
        let plane = &xv[pl * in_plane..][..in_plane];
        for (wd, cd) in &windows[0] {
            for (wh, ch) in &windows[1] {
                for (ww, cw) in &windows[2] {
                    let at = |d: usize, h: usize, w: usize| {
                        plane[(d * axes[1].input + h) * axes[2].input + w] as f64
                    };
                    let mut max = f64::NEG_INFINITY;
                    let mut sum = 0.0;
                    for &d in wd {
                        for &h in wh {
                            for &w in ww {
                                let v = at(d, h, w);
                                max = if v.is_nan() || max.is_nan() {
                                    f64::NAN
                                } else {
                                    max.max(v)
                                };
                                sum += v;
                            }
                        }
                    }
                    y.push(match p.kind {
                        PoolKind::Max => max,
                        PoolKind::Avg { .. } => sum / (cd * ch * cw) as f64,
                    });
                }
            }
        }
    }
    from_f64(out.shape.clone(), y)
}

pub fn global_pool(kind: PoolKind, x: &Tensor, out: &TensorType) -> Result<Tensor, IrError> {
    let xv = floats(x)?;
    let plane = x.shape()[2..].iter().product::<usize>();
    let y = xv
        .chunks(plane.max(1))
        .take(x.shape()[0] * x.shape()[1])
        .map(|c| match kind {
            PoolKind::Max => c.iter().fold(f64::NEG_INFINITY, |m, &v| {
                if v.is_nan() || m.is_nan() {
                    f64::NAN
                } else {
                    m.max(v as f64)
                }
            }),
            PoolKind::Avg { .. } => c.iter().map(|&v| v as f64).sum::<f64>() / plane as f64,
        })
        .collect();
    from_f64(out.shape.clone(), y)
}
