//! Reshape, Flatten, Squeeze, Unsqueeze (all static reshapes in the IR) and Shape.

use cnnc_ir::{Op, Value, checked_numel};

use crate::error::{Result, bail};
use crate::import::NodeCx;
use crate::ops::axis;

pub fn reshape(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let input = cx.ty(x).shape.clone();
    let shape = match cx.op_type() {
        "Reshape" => reshape_target(cx, &input)?,
        "Flatten" => {
            let a = cx.attrs.int_or("axis", 1)?;
            // Flatten's axis may equal the rank.
            let a = if a == input.len() as i64 {
                input.len()
            } else {
                axis(a, input.len())?
            };
            vec![input[..a].iter().product(), input[a..].iter().product()]
        }
        "Squeeze" => {
            let axes = if cx.opset() >= 13 {
                cx.static_ints(1, "axes")?
            } else {
                cx.attrs.ints("axes")?
            };
            match axes {
                None => input.iter().copied().filter(|&d| d != 1).collect(),
                Some(axes) => {
                    let axes = axes
                        .iter()
                        .map(|&a| axis(a, input.len()))
                        .collect::<Result<Vec<_>>>()?;
                    if let Some(&a) = axes.iter().find(|&&a| input[a] != 1) {
                        bail!("cannot squeeze axis {a} of size {}", input[a]);
                    }
                    input
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                }
            }
        }
        "Unsqueeze" => {
            let axes = if cx.opset() >= 13 {
                cx.static_ints(1, "axes")?
            } else {
                cx.attrs.ints("axes")?
            };
            let Some(axes) = axes else {
                bail!("axes are required");
            };
            let rank = input.len() + axes.len();
            let mut axes = axes
                .iter()
                .map(|&a| axis(a, rank))
                .collect::<Result<Vec<_>>>()?;
            axes.sort();
            if axes.windows(2).any(|w| w[0] == w[1]) {
                bail!("axes repeat an axis");
            }
            let mut rest = input.iter();
            (0..rank)
                .map(|i| {
                    if axes.contains(&i) {
                        1
                    } else {
                        *rest.next().expect("counted")
                    }
                })
                .collect()
        }
        other => unreachable!("dispatched {other}"),
    };
    Ok(vec![cx.add(Op::Reshape { shape }, &[x])?])
}

/// Resolves Reshape's target: 0 copies the input dim (unless `allowzero`), -1 is
/// inferred from the element count.
fn reshape_target(cx: &mut NodeCx, input: &[usize]) -> Result<Vec<usize>> {
    let Some(target) = cx.static_ints(1, "shape")? else {
        bail!("the shape input is required");
    };
    let allow_zero = cx.attrs.bool_or("allowzero", false)?;
    let mut shape = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        shape.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            -1 => bail!("shape {target:?} has more than one -1"),
            0 if !allow_zero => match input.get(i) {
                Some(&d) => d,
                None => bail!("shape {target:?} copies axis {i}, which the input {input:?} lacks"),
            },
            d if d >= 0 => d as usize,
            d => bail!("shape {target:?} has invalid dimension {d}"),
        });
    }
    let total: usize = input.iter().product();
    if let Some(i) = infer {
        let known = checked_numel(&shape).unwrap_or(0);
        if known == 0 || !total.is_multiple_of(known) {
            bail!("cannot reshape {input:?} to {target:?}");
        }
        shape[i] = total / known;
    }
    Ok(shape)
}

pub fn shape(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank() as i64;
    // start/end clamp to [0, rank] after adding rank to negatives.
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clamp(cx.attrs.int_or("start", 0)?);
    let end = clamp(cx.attrs.int_or("end", rank)?).max(start);
    Ok(vec![cx.add(Op::Shape { start, end }, &[x])?])
}
