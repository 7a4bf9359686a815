//! Transpose, Concat, Split, Slice, Pad, Tile, Expand, Gather, DepthToSpace and
//! SpaceToDepth.

use cnnc_ir::op::{DepthToSpaceMode, PadMode, SliceAxis};
use cnnc_ir::{Op, Value};

use crate::error::{Result, bail, unsupported};
use crate::import::NodeCx;
use crate::ops::{axis, positive, sizes};

pub fn transpose(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let perm = match cx.attrs.ints("perm")? {
        None => (0..rank).rev().collect(),
        Some(p) => sizes(&p, "perm")?,
    };
    Ok(vec![cx.add(Op::Transpose { perm }, &[x])?])
}

pub fn concat(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let inputs = cx.inputs();
    let Some(&first) = inputs.first() else {
        bail!("needs at least one input");
    };
    let Some(a) = cx.attrs.int("axis")? else {
        bail!("axis is required");
    };
    let a = axis(a, cx.ty(first).rank())?;
    Ok(vec![cx.add(Op::Concat { axis: a }, &inputs)?])
}

pub fn split(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape.clone();
    let a = axis(cx.attrs.int_or("axis", 0)?, shape.len())?;
    let dim = shape[a];
    let given = if cx.opset() >= 13 {
        cx.static_ints(1, "split")?
    } else {
        cx.attrs.ints("split")?
    };
    let num_outputs = if cx.opset() >= 18 {
        cx.attrs.int("num_outputs")?
    } else {
        None
    };
    let sizes = match (given, num_outputs) {
        (Some(s), None) => sizes(&s, "split")?,
        (Some(_), Some(_)) => bail!("both split and num_outputs are given"),
        (None, Some(n)) => {
            // Equal chunks, rounded up; the last one takes the rest.
            let n = positive(n, "num_outputs")?;
            let chunk = dim.div_ceil(n);
            (0..n)
                .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                .collect()
        }
        (None, None) => {
            let n = cx.num_outputs();
            if n == 0 || !dim.is_multiple_of(n) {
                bail!("cannot split axis {a} of size {dim} into {n} equal parts");
            }
            vec![dim / n; n]
        }
    };
    if sizes.len() != cx.num_outputs() {
        bail!(
            "split into {} parts but the node has {} outputs",
            sizes.len(),
            cx.num_outputs()
        );
    }
    let n = sizes.len();
    cx.add_multi(Op::Split { axis: a, sizes }, &[x], n)
}

/// One axis of an ONNX slice: negative bounds count from the end, then clamp to the
/// axis; the elements are start, start + step, ... up to (not including) end.
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> SliceAxis {
    let empty = SliceAxis {
        start: 0,
        step: step as isize,
        len: 0,
    };
    if dim == 0 {
        return empty;
    }
    let d = dim as i128;
    let wrap = |v: i64| if v < 0 { v as i128 + d } else { v as i128 };
    let (s, e) = if step > 0 {
        (wrap(start).clamp(0, d), wrap(end).clamp(0, d))
    } else {
        (wrap(start).clamp(0, d - 1), wrap(end).clamp(-1, d - 1))
    };
    let span = if step > 0 { e - s } else { s - e };
    if span <= 0 {
        return empty;
    }
    let stride = (step as i128).abs();
    SliceAxis {
        start: s as usize,
        step: step as isize,
        len: ((span + stride - 1) / stride) as usize,
    }
}

pub fn slice(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape.clone();
    let (starts, ends, axes, steps) = if cx.opset() < 10 {
        (
            cx.attrs.ints("starts")?,
            cx.attrs.ints("ends")?,
            cx.attrs.ints("axes")?,
            None,
        )
    } else {
        (
            cx.static_ints(1, "starts")?,
            cx.static_ints(2, "ends")?,
            cx.static_ints(3, "axes")?,
            cx.static_ints(4, "steps")?,
        )
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        bail!("starts and ends are required");
    };
    let n = starts.len();
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        bail!("starts, ends, axes and steps have different lengths");
    }
    let mut out: Vec<SliceAxis> = shape
        .iter()
        .map(|&d| SliceAxis {
            start: 0,
            step: 1,
            len: d,
        })
        .collect();
    let mut seen = vec![false; shape.len()];
    for i in 0..n {
        let a = axis(axes[i], shape.len())?;
        if std::mem::replace(&mut seen[a], true) {
            bail!("axis {a} is sliced twice");
        }
        if steps[i] == 0 {
            bail!("slice step must not be 0");
        }
        out[a] = slice_axis(shape[a], starts[i], ends[i], steps[i]);
    }
    Ok(vec![cx.add(Op::Slice { axes: out }, &[x])?])
}

pub fn pad(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let mode = cx.attrs.string_or("mode", "constant")?;
    let (pads, value, axes) = if cx.opset() < 11 {
        (
            cx.attrs.ints("pads")?,
            cx.attrs.float_or("value", 0.0)?,
            None,
        )
    } else {
        let pads = cx.static_ints(1, "pads")?;
        let value = cx.static_scalar(2, "constant value")?.unwrap_or(0.0);
        let axes = if cx.opset() >= 18 {
            cx.static_ints(3, "axes")?
        } else {
            None
        };
        (pads, value, axes)
    };
    let Some(pads) = pads else {
        bail!("pads are required");
    };
    let axes = match axes {
        None => (0..rank).collect(),
        Some(a) => a
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<Vec<_>>>()?,
    };
    if pads.len() != 2 * axes.len() {
        bail!("{} pads for {} axes", pads.len(), axes.len());
    }
    let mut pairs = vec![(0isize, 0isize); rank];
    let k = axes.len();
    for (i, &a) in axes.iter().enumerate() {
        let conv = |v: i64| {
            isize::try_from(v)
                .map_err(|_| crate::error::ImportError::invalid(format!("pad {v} is too large")))
        };
        pairs[a] = (conv(pads[i])?, conv(pads[k + i])?);
    }
    let mode = match mode.as_str() {
        "constant" => PadMode::Constant(value),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => unsupported!("pad mode '{other}'"),
    };
    Ok(vec![cx.add(Op::Pad { pads: pairs, mode }, &[x])?])
}

pub fn tile(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let Some(r) = cx.static_ints(1, "repeats")? else {
        bail!("repeats are required");
    };
    let repeats = sizes(&r, "repeats")?;
    Ok(vec![cx.add(Op::Tile { repeats }, &[x])?])
}

pub fn expand(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let Some(s) = cx.static_ints(1, "shape")? else {
        bail!("shape is required");
    };
    let shape = sizes(&s, "shape")?;
    Ok(vec![cx.add(Op::Expand { shape }, &[x])?])
}

pub fn gather(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let (x, idx) = (cx.input(0)?, cx.input(1)?);
    let a = axis(cx.attrs.int_or("axis", 0)?, cx.ty(x).rank())?;
    Ok(vec![cx.add(Op::Gather { axis: a }, &[x, idx])?])
}

pub fn depth_space(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let Some(b) = cx.attrs.int("blocksize")? else {
        bail!("blocksize is required");
    };
    let block = positive(b, "blocksize")?;
    let mode = match cx.attrs.string_or("mode", "DCR")?.as_str() {
        "DCR" => DepthToSpaceMode::Dcr,
        "CRD" => DepthToSpaceMode::Crd,
        other => bail!("unknown mode '{other}'"),
    };
    let op = if cx.op_type() == "DepthToSpace" {
        Op::DepthToSpace { block, mode }
    } else {
        Op::SpaceToDepth { block, mode }
    };
    Ok(vec![cx.add(op, &[x])?])
}
