//! BatchNormalization, InstanceNormalization, LRN, Softmax/LogSoftmax, ReduceMean/Sum.

use cnnc_ir::op::{Lrn, ReduceKind};
use cnnc_ir::{Op, Value};

use crate::error::{Result, bail, unsupported};
use crate::import::NodeCx;
use crate::ops::{axis, positive};

pub fn batch_norm(cx: &mut NodeCx) -> Result<Vec<Value>> {
    if (1..cx.num_outputs()).any(|i| cx.output_used(i)) {
        unsupported!("BatchNormalization in training mode (running statistics outputs)");
    }
    if cx.attrs.bool_or("training_mode", false)? {
        unsupported!("BatchNormalization in training mode");
    }
    if cx.opset() < 9 && cx.attrs.int_or("spatial", 1)? != 1 {
        unsupported!("BatchNormalization with spatial=0");
    }
    // Inference uses the given statistics whatever these say.
    cx.attrs.ignore(&["momentum", "is_test"]);
    let epsilon = cx.attrs.float_or("epsilon", 1e-5)?;
    let inputs = (0..5).map(|i| cx.input(i)).collect::<Result<Vec<_>>>()?;
    Ok(vec![cx.add(Op::BatchNorm { epsilon }, &inputs)?])
}

pub fn instance_norm(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let epsilon = cx.attrs.float_or("epsilon", 1e-5)?;
    let inputs = (0..3).map(|i| cx.input(i)).collect::<Result<Vec<_>>>()?;
    Ok(vec![cx.add(Op::InstanceNorm { epsilon }, &inputs)?])
}

pub fn lrn(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let Some(size) = cx.attrs.int("size")? else {
        bail!("size is required");
    };
    let lrn = Lrn {
        size: positive(size, "size")?,
        alpha: cx.attrs.float_or("alpha", 1e-4)?,
        beta: cx.attrs.float_or("beta", 0.75)?,
        bias: cx.attrs.float_or("bias", 1.0)?,
    };
    let x = cx.input(0)?;
    Ok(vec![cx.add(Op::Lrn(lrn), &[x])?])
}

pub fn softmax(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let shape = cx.ty(x).shape.clone();
    let log = cx.op_type() == "LogSoftmax";
    let rank = shape.len();
    if cx.opset() >= 13 {
        let a = axis(cx.attrs.int_or("axis", -1)?, rank)?;
        return Ok(vec![cx.add(Op::Softmax { axis: a, log }, &[x])?]);
    }
    // Before opset 13 the input is viewed as 2-D, [dims before axis] x [dims from axis],
    // and normalized over the second dimension.
    let a = axis(cx.attrs.int_or("axis", 1)?, rank)?;
    if a + 1 == rank {
        return Ok(vec![cx.add(Op::Softmax { axis: a, log }, &[x])?]);
    }
    let flat = vec![shape[..a].iter().product(), shape[a..].iter().product()];
    let x2 = cx.add(Op::Reshape { shape: flat }, &[x])?;
    let y2 = cx.add(Op::Softmax { axis: 1, log }, &[x2])?;
    Ok(vec![cx.add(Op::Reshape { shape }, &[y2])?])
}

pub fn reduce(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).rank();
    let kind = if cx.op_type() == "ReduceSum" {
        ReduceKind::Sum
    } else {
        ReduceKind::Mean
    };
    let axes_are_input = match kind {
        ReduceKind::Sum => cx.opset() >= 13,
        ReduceKind::Mean => cx.opset() >= 18,
    };
    let axes = if axes_are_input {
        cx.static_ints(1, "axes")?
    } else {
        cx.attrs.ints("axes")?
    };
    let keep_dims = cx.attrs.bool_or("keepdims", true)?;
    let noop_if_empty = axes_are_input && cx.attrs.bool_or("noop_with_empty_axes", false)?;
    let axes = match axes {
        Some(a) if !a.is_empty() => a,
        _ if noop_if_empty => return Ok(vec![cx.add(Op::Identity, &[x])?]),
        _ => (0..rank as i64).collect(),
    };
    let mut norm = axes
        .iter()
        .map(|&a| axis(a, rank))
        .collect::<Result<Vec<_>>>()?;
    norm.sort();
    if norm.windows(2).any(|w| w[0] == w[1]) {
        bail!("axes {axes:?} repeat an axis");
    }
    Ok(vec![cx.add(
        Op::Reduce {
            kind,
            axes: norm,
            keep_dims,
        },
        &[x],
    )?])
}
