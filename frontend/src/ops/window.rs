//! The sliding-window attributes shared by Conv and the pools: strides, dilations and
//! padding, with `auto_pad` turned into explicit pads.

use crate::error::{ImportError, Result, bail};
use crate::import::NodeCx;
use crate::ops::{positive, sizes};

pub(crate) struct Window {
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<(usize, usize)>,
}

/// A per-axis attribute of `n` positive entries, all 1 when absent.
pub(crate) fn per_axis(cx: &NodeCx, name: &str, n: usize) -> Result<Vec<usize>> {
    match cx.attrs.ints(name)? {
        None => Ok(vec![1; n]),
        Some(v) if v.len() == n => v.iter().map(|&x| positive(x, name)).collect(),
        Some(v) => bail!("'{name}' has {} entries for {n} spatial axes", v.len()),
    }
}

/// ONNX `pads` (all begins, then all ends) as `(begin, end)` pairs.
pub(crate) fn pad_pairs(pads: &[usize]) -> Vec<(usize, usize)> {
    let n = pads.len() / 2;
    (0..n).map(|i| (pads[i], pads[n + i])).collect()
}

/// Reads `strides`, `dilations`, `pads` and `auto_pad` for a window of `kernel` over
/// the spatial dims `input`.
pub(crate) fn window(cx: &NodeCx, kernel: &[usize], input: &[usize]) -> Result<Window> {
    let n = kernel.len();
    let strides = per_axis(cx, "strides", n)?;
    let dilations = per_axis(cx, "dilations", n)?;
    let auto_pad = cx.attrs.string_or("auto_pad", "NOTSET")?;
    let explicit = cx.attrs.ints("pads")?;
    let pads = match auto_pad.as_str() {
        "NOTSET" => match explicit {
            None => vec![(0, 0); n],
            Some(p) if p.len() == 2 * n => pad_pairs(&sizes(&p, "pads")?),
            Some(p) => bail!("'pads' has {} entries for {n} spatial axes", p.len()),
        },
        "VALID" => vec![(0, 0); n],
        "SAME_UPPER" | "SAME_LOWER" => (0..n)
            .map(|i| {
                // Output ceil(in / stride); the padding that achieves it, split evenly
                // with the odd one at the end (UPPER) or the start (LOWER).
                let out = input[i].div_ceil(strides[i]);
                let needed = (kernel[i] - 1)
                    .checked_mul(dilations[i])
                    .and_then(|span| {
                        out.saturating_sub(1)
                            .checked_mul(strides[i])?
                            .checked_add(span + 1)
                    })
                    .ok_or_else(|| ImportError::invalid("padding overflows"))?;
                let total = needed.saturating_sub(input[i]);
                let small = total / 2;
                Ok(if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                })
            })
            .collect::<Result<_>>()?,
        other => bail!("unknown auto_pad '{other}'"),
    };
    Ok(Window {
        strides,
        dilations,
        pads,
    })
}
