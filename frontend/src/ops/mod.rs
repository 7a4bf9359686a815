//! Translators from ONNX operators to IR ops, one file per family.
//!
//! Each translator reads the node's attributes and static inputs for the opset in use,
//! normalizes them (negative axes, auto_pad, attribute-vs-input forms across versions)
//! and emits IR nodes. It returns one value per ONNX output it can produce.

mod constant;
mod conv;
mod elementwise;
mod linalg;
mod movement;
mod norm;
mod pool;
mod resize;
mod shape;
mod window;

use cnnc_ir::Value;

use crate::error::{ImportError, Result, bail, unsupported};
use crate::import::NodeCx;

pub(crate) fn translate(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let op = cx.op_type().to_string();
    match op.as_str() {
        "Conv" => conv::conv(cx),
        "ConvTranspose" => conv::conv_transpose(cx),
        "MaxPool" | "AveragePool" => pool::pool(cx),
        "GlobalAveragePool" | "GlobalMaxPool" => pool::global_pool(cx),
        "LRN" => norm::lrn(cx),
        "BatchNormalization" => norm::batch_norm(cx),
        "InstanceNormalization" => norm::instance_norm(cx),
        "Softmax" | "LogSoftmax" => norm::softmax(cx),
        "ReduceMean" | "ReduceSum" => norm::reduce(cx),
        "Gemm" => linalg::gemm(cx),
        "MatMul" => linalg::matmul(cx),
        "Relu" | "LeakyRelu" | "Elu" | "Selu" | "Sigmoid" | "HardSigmoid" | "HardSwish"
        | "Tanh" | "Softplus" | "Softsign" | "Mish" | "Gelu" | "Erf" | "Exp" | "Sqrt" | "Abs"
        | "Neg" => elementwise::unary(cx),
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Equal" | "Less" | "Greater" => {
            elementwise::binary(cx)
        }
        "Sum" | "Max" | "Min" => elementwise::variadic(cx),
        "PRelu" => elementwise::prelu(cx),
        "Clip" => elementwise::clip(cx),
        "Where" => elementwise::where_(cx),
        "Cast" => elementwise::cast(cx),
        "Dropout" => elementwise::dropout(cx),
        "Identity" => elementwise::identity(cx),
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => shape::reshape(cx),
        "Shape" => shape::shape(cx),
        "Transpose" => movement::transpose(cx),
        "Concat" => movement::concat(cx),
        "Split" => movement::split(cx),
        "Slice" => movement::slice(cx),
        "Pad" => movement::pad(cx),
        "Tile" => movement::tile(cx),
        "Expand" => movement::expand(cx),
        "Gather" => movement::gather(cx),
        "DepthToSpace" | "SpaceToDepth" => movement::depth_space(cx),
        "Resize" | "Upsample" => resize::resize(cx),
        "Constant" => constant::constant(cx),
        "ConstantOfShape" => constant::constant_of_shape(cx),
        "Range" => constant::range(cx),
        _ => unsupported!("operator {op}"),
    }
}

/// A possibly negative axis of a tensor of `rank` axes, as an index.
pub(crate) fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        bail!("axis {a} is out of range for rank {rank}");
    }
    Ok(if a < 0 { a + r } else { a } as usize)
}

/// Non-negative integers from a model, as sizes.
pub(crate) fn sizes(v: &[i64], what: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&x| {
            usize::try_from(x).map_err(|_| {
                ImportError::invalid(format!("{what} must not be negative, got {v:?}"))
            })
        })
        .collect()
}

/// A positive integer from a model.
pub(crate) fn positive(v: i64, what: &str) -> Result<usize> {
    match usize::try_from(v) {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{what} must be positive, got {v}"),
    }
}
