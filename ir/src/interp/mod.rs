//! The reference interpreter: a plain implementation of every op, written to be
//! obviously correct rather than fast. It is the oracle every generated kernel is
//! tested against and the engine of constant folding.
//!
//! Float math is done in f64 and rounded once to f32 (sums, products, activations),
//! except where ONNX defines the result as float32 arithmetic (elementwise add, sub,
//! mul, div), which is computed exactly so.

mod const_eval;
mod conv;
mod elementwise;
mod epilogue;
mod linalg;
mod movement;
mod norm;
mod pool;
pub mod resize;
mod winograd;

use std::collections::HashMap;

pub use const_eval::ConstEval;

use crate::{Graph, IrError, Op, Tensor, TensorType};

/// Runs the graph on `inputs` (in graph-input order) and returns its outputs.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, IrError> {
    if inputs.len() != graph.inputs().len() {
        return Err(IrError::eval(format!(
            "the graph takes {} inputs, {} given",
            graph.inputs().len(),
            inputs.len()
        )));
    }
    let order = graph.topo_order()?;
    // How many more reads each value has, so intermediates are dropped when dead.
    let mut reads: HashMap<crate::Value, usize> = HashMap::new();
    for &id in &order {
        for v in graph.inputs_of(id) {
            *reads.entry(v).or_default() += 1;
        }
    }
    for o in graph.outputs() {
        *reads.entry(o.value).or_default() += 1;
    }
    let mut values: HashMap<crate::Value, Tensor> = HashMap::new();
    for (i, (&id, t)) in graph.inputs().iter().zip(inputs).enumerate() {
        let out = &graph.node(id).outputs[0];
        if t.dtype() != out.ty.dtype || t.shape() != out.ty.shape.as_slice() {
            return Err(IrError::eval(format!(
                "input {i} '{}' expects {}, got {}",
                out.name,
                out.ty,
                t.ty()
            )));
        }
        values.insert(crate::Value::new(id, 0), t.clone());
    }
    for &id in &order {
        let node = graph.node(id);
        if matches!(node.op, Op::Input) {
            continue;
        }
        let in_values = graph.inputs_of(id);
        let outs = {
            let args: Vec<&Tensor> = in_values.iter().map(|v| &values[v]).collect();
            let types: Vec<TensorType> = node.outputs.iter().map(|o| o.ty.clone()).collect();
            eval(&node.op, &args, &types).map_err(|e| e.at(&node.name, node.op.name()))?
        };
        for v in in_values {
            let left = reads.get_mut(&v).expect("counted above");
            *left -= 1;
            if *left == 0 {
                values.remove(&v);
            }
        }
        for (port, t) in outs.into_iter().enumerate() {
            values.insert(crate::Value::new(id, port), t);
        }
    }
    Ok(graph
        .outputs()
        .iter()
        .map(|o| values[&o.value].clone())
        .collect())
}

/// Evaluates one op. `outputs` are the node's output types (the interpreter reads
/// output shapes from them rather than recomputing them).
pub fn eval(op: &Op, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, IrError> {
    if let Some(splats) = eval_splat(op, inputs, outputs)? {
        return Ok(splats);
    }
    if let Some(e) = op.epilogue().filter(|e| !e.is_empty()) {
        let own = inputs.len() - e.extra_inputs();
        let y = eval_own(op, &inputs[..own], outputs)?.remove(0);
        return Ok(vec![epilogue::apply(e, y, &inputs[own..])?]);
    }
    eval_own(op, inputs, outputs)
}

/// Evaluates an op without its epilogue.
fn eval_own(op: &Op, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, IrError> {
    let out = &outputs[0];
    let single = |t: Result<Tensor, IrError>| t.map(|t| vec![t]);
    match op {
        Op::Input => Err(IrError::invalid("inputs are not evaluated")),
        Op::Const(t) => Ok(vec![t.clone()]),
        Op::Conv(c) | Op::DepthwiseConv(c) => single(conv::conv(c, inputs, out)),
        Op::ConvTranspose(c) => single(conv::conv_transpose(c, inputs, out)),
        Op::Col2Im(c) => single(conv::col2im(c, inputs, out)),
        Op::Pool(p) => single(pool::pool(p, inputs[0], out)),
        Op::GlobalPool(kind) => single(pool::global_pool(*kind, inputs[0], out)),
        Op::Lrn(l) => single(norm::lrn(l, inputs[0])),
        Op::BatchNorm { epsilon } => single(norm::batch_norm(*epsilon, inputs)),
        Op::InstanceNorm { epsilon } => single(norm::instance_norm(*epsilon, inputs)),
        Op::Gemm(g) => single(linalg::gemm(g, inputs, out)),
        Op::MatMul { .. } => single(linalg::matmul(inputs, out)),
        Op::ScaleShift(_) => single(norm::scale_shift(inputs)),
        Op::ChannelScale => single(elementwise::binary(
            crate::op::Binary::Mul,
            inputs[0],
            inputs[1],
            out,
        )),
        Op::WinogradInput(w) => single(winograd::input(w, inputs[0], out)),
        Op::WinogradOutput(w) => single(winograd::output(w, inputs, out)),
        Op::Reorder { .. } => Ok(vec![inputs[0].clone()]),
        Op::Unary(u) => single(elementwise::unary(*u, inputs[0])),
        Op::Binary(b) => single(elementwise::binary(*b, inputs[0], inputs[1], out)),
        Op::Where => single(elementwise::where_(inputs, out)),
        Op::Cast { to } => single(elementwise::cast(inputs[0], *to)),
        Op::Softmax { axis, log } => single(norm::softmax(inputs[0], *axis, *log)),
        Op::Reduce { kind, axes, .. } => single(norm::reduce(*kind, axes, inputs[0], out)),
        Op::Reshape { shape } => single(inputs[0].reshape(shape.clone())),
        Op::Identity => Ok(vec![inputs[0].clone()]),
        Op::Transpose { perm } => single(movement::transpose(inputs[0], perm, out)),
        Op::ChannelShuffle { groups } => single(movement::channel_shuffle(inputs[0], *groups, out)),
        Op::Concat { axis } => single(movement::concat(inputs, *axis, out)),
        Op::Split { axis, .. } => movement::split(inputs[0], *axis, outputs),
        Op::Slice { axes } => single(movement::slice(inputs[0], axes, out)),
        Op::Pad { pads, mode } => single(movement::pad(inputs[0], pads, *mode, out)),
        Op::Resize(r) => single(resize::resize(r, inputs[0])),
        Op::DepthToSpace { block, mode } => {
            single(movement::depth_to_space(inputs[0], *block, *mode, out))
        }
        Op::SpaceToDepth { block, mode } => {
            single(movement::space_to_depth(inputs[0], *block, *mode, out))
        }
        Op::Tile { .. } => single(movement::tile(inputs[0], out)),
        Op::Expand { .. } => single(movement::expand(inputs[0], out)),
        Op::Gather { axis } => single(movement::gather(inputs[0], inputs[1], *axis, out)),
        Op::Shape { start, end } => single(shape_of(&inputs[0].ty(), *start, *end)),
    }
}

/// The value of a `Shape` op, which depends only on its input's type.
pub fn shape_of(ty: &TensorType, start: usize, end: usize) -> Result<Tensor, IrError> {
    let dims: Vec<i64> = ty.shape[start..end].iter().map(|&d| d as i64).collect();
    Tensor::from_vec(vec![dims.len()], dims)
}

/// Ops that map a splat (all elements equal) to a splat, evaluated on the one value so
/// that folding a huge constant like a ConstantOfShape weight allocates nothing.
fn eval_splat(
    op: &Op,
    inputs: &[&Tensor],
    outputs: &[TensorType],
) -> Result<Option<Vec<Tensor>>, IrError> {
    let movement = matches!(
        op,
        Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::ChannelShuffle { .. }
            | Op::Split { .. }
            | Op::Slice { .. }
            | Op::Tile { .. }
            | Op::Expand { .. }
            | Op::DepthToSpace { .. }
            | Op::SpaceToDepth { .. }
            | Op::Identity
    );
    let elementwise = matches!(
        op,
        Op::Unary(_) | Op::Binary(_) | Op::Cast { .. } | Op::Where
    );
    // Single elements take the ordinary path (which is also how the value is computed).
    if !(movement || elementwise) || inputs.is_empty() || outputs.iter().all(|t| t.numel() <= 1) {
        return Ok(None);
    }
    let Some(values) = inputs
        .iter()
        .map(|t| t.splat_value())
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let value = if movement {
        values[0]
    } else {
        let scalars: Vec<Tensor> = values.iter().map(|&v| Tensor::scalar(v)).collect();
        let refs: Vec<&Tensor> = scalars.iter().collect();
        let scalar_out = [TensorType::new(outputs[0].dtype, Vec::new())];
        let r = eval(op, &refs, &scalar_out)?;
        r[0].get(0).expect("a scalar has one element")
    };
    outputs
        .iter()
        .map(|t| Tensor::splat(t.shape.clone(), value))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Calls `$body` with `$T` bound to the Rust element type of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::Bool => {
                type $T = u8;
                $body
            }
        }
    };
}
pub(crate) use by_dtype;

/// Calls `f` with every multi-index of `shape` in row-major order.
pub(crate) fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < shape[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// For each element of a tensor of `out_shape`, the index of the element of a tensor of
/// `in_shape` that numpy broadcasting reads.
pub(crate) fn broadcast_map(in_shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let off = out_shape.len() - in_shape.len();
    let in_strides = crate::types::strides_of(in_shape);
    let strides: Vec<usize> = (0..out_shape.len())
        .map(|i| {
            if i < off || in_shape[i - off] == 1 {
                0
            } else {
                in_strides[i - off]
            }
        })
        .collect();
    let mut map = Vec::with_capacity(out_shape.iter().product());
    for_each_index(out_shape, |idx| {
        map.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
    });
    map
}

/// Elements of an f32 tensor (borrowed when dense).
pub(crate) fn floats(t: &Tensor) -> Result<std::borrow::Cow<'_, [f32]>, IrError> {
    t.view::<f32>()
}

/// Rounds f64 results to an f32 tensor.
pub(crate) fn from_f64(shape: Vec<usize>, data: Vec<f64>) -> Result<Tensor, IrError> {
    Tensor::from_vec(
        shape,
        data.into_iter().map(|v| v as f32).collect::<Vec<f32>>(),
    )
}
