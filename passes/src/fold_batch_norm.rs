//! BatchNormalization folded away. After a convolution (plain, depthwise or transposed)
//! or a Gemm whose weights are constants and whose only reader it is, the normalization
//! becomes part of the weights and bias: `w' = w k`, `b' = (b - mean) k + beta` with
//! `k = gamma / sqrt(var + eps)` per output channel, computed in f64. Any other batch
//! normalization with constant statistics becomes one `ScaleShift`.
//!
//! The same folding takes a multiplication or addition by a per-channel constant (how
//! some converters spell a batch normalization: `Mul` by `[C,1,1]`, then `Add`); with
//! no producer to fold into, it becomes a `ScaleShift` (a `Mul` and the `Add` after it
//! one), which has a per-channel kernel in either layout.

use cnnc_ir::op::{Epilogue, Gemm};
use cnnc_ir::{Graph, IrError, NodeId, Op, Tensor, Value};

use crate::util::{constant, per_channel, replace_node, sole_user};
use crate::{Pass, TargetInfo};

pub struct FoldBatchNorm;

/// Per-channel scale `k` and shift `beta - mean k` of a batch normalization.
fn affine(graph: &Graph, inputs: &[Value], epsilon: f32) -> Option<(Vec<f64>, Vec<f64>)> {
    let p: Option<Vec<Vec<f32>>> = (1..5)
        .map(|i| {
            constant(graph, inputs[i])
                .and_then(|t| t.view::<f32>().ok())
                .map(|v| v.into_owned())
        })
        .collect();
    let p = p?;
    let (gamma, beta, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
    let k: Vec<f64> = (0..gamma.len())
        .map(|c| gamma[c] as f64 / (var[c] as f64 + epsilon as f64).sqrt())
        .collect();
    let shift = (0..k.len())
        .map(|c| beta[c] as f64 - mean[c] as f64 * k[c])
        .collect();
    Some((k, shift))
}

fn floats(v: Vec<f64>, shape: Vec<usize>) -> Result<Tensor, IrError> {
    Tensor::from_vec(shape, v.into_iter().map(|x| x as f32).collect::<Vec<f32>>())
}

/// `x k` rounded once: the product of an f32 and an f64 scale, exact before rounding.
fn scaled(x: f32, k: f64) -> f32 {
    (x as f64 * k) as f32
}

/// Folds into the producer when it qualifies; returns whether it did.
fn fold_into(
    graph: &mut Graph,
    producer: NodeId,
    k: &[f64],
    shift: &[f64],
) -> Result<bool, IrError> {
    let inputs = graph.inputs_of(producer);
    let op = graph.node(producer).op.clone();
    if op.epilogue().is_some_and(|e| !e.is_empty()) {
        return Ok(false);
    }
    let Some(w) = constant(graph, inputs[1]).and_then(|t| t.view::<f32>().ok()) else {
        return Ok(false);
    };
    let w_shape = graph.value_type(inputs[1]).shape.clone();
    let bias = match inputs.get(2) {
        Some(&b) => match constant(graph, b).and_then(|t| t.view::<f32>().ok()) {
            Some(v) => Some(v),
            None => return Ok(false),
        },
        None => None,
    };
    let b_at = |m: usize| bias.as_ref().map_or(0.0, |b| b[m] as f64);
    let name = graph.node(producer).name.clone();
    // The new weights and bias are computed from borrowed constants (ResNet-50's are
    // 100 MB), so the only copy made is the folded result.
    let (new_w, new_b, new_op) = match &op {
        Op::Conv(_) | Op::DepthwiseConv(_) => {
            // Weight [M, C/g, k...]: output channel m is the outer index.
            let per = w.len() / k.len();
            let nw: Vec<f32> = w
                .chunks_exact(per)
                .zip(k)
                .flat_map(|(row, &km)| row.iter().map(move |&x| scaled(x, km)))
                .collect();
            let nb = (0..k.len())
                .map(|m| (b_at(m) * k[m] + shift[m]) as f32)
                .collect();
            (nw, Tensor::from_vec(vec![k.len()], nb)?, op.clone())
        }
        Op::ConvTranspose(c) => {
            // Weight [C, M/g, k...]: output channel m = g * (M/g) + mo.
            let mg = w_shape[1];
            let per: usize = w_shape[2..].iter().product();
            let cg = w_shape[0] / c.groups;
            let nw: Vec<f32> = w
                .chunks_exact(per)
                .enumerate()
                .flat_map(|(row, kernel)| {
                    let (ci, mo) = (row / mg, row % mg);
                    let km = k[(ci / cg) * mg + mo];
                    kernel.iter().map(move |&x| scaled(x, km))
                })
                .collect();
            let nb = (0..k.len())
                .map(|m| (b_at(m) * k[m] + shift[m]) as f32)
                .collect();
            (nw, Tensor::from_vec(vec![k.len()], nb)?, op.clone())
        }
        Op::Gemm(g) => {
            // Output [M, N] with channels N: scale op(B)'s columns, then C' = beta C k + shift.
            let n = k.len();
            let nw: Vec<f32> = if g.trans_b {
                w.chunks_exact(w_shape[1])
                    .zip(k)
                    .flat_map(|(row, &kj)| row.iter().map(move |&x| scaled(x, kj)))
                    .collect()
            } else {
                w.chunks_exact(n)
                    .flat_map(|row| row.iter().zip(k).map(|(&x, &kj)| scaled(x, kj)))
                    .collect()
            };
            // C broadcast to [M, N] (kept as [N] when it has no rows of its own).
            let (c_rows, c_cols) = match inputs.get(2).map(|&c| graph.value_type(c).shape.clone()) {
                Some(s) if s.len() == 2 => (s[0], s[1]),
                Some(s) if s.len() == 1 => (1, s[0]),
                _ => (1, 1),
            };
            let c_at =
                |r: usize, j: usize| b_at((r % c_rows) * c_cols + if c_cols == 1 { 0 } else { j });
            let c_full: Vec<f32> = (0..c_rows * n)
                .map(|at| {
                    let (r, j) = (at / n, at % n);
                    (g.beta as f64 * c_at(r, j) * k[j] + shift[j]) as f32
                })
                .collect();
            let shape = if c_rows > 1 { vec![c_rows, n] } else { vec![n] };
            let op = Op::Gemm(Gemm {
                beta: 1.0,
                ..g.clone()
            });
            (nw, Tensor::from_vec(shape, c_full)?, op)
        }
        _ => return Ok(false),
    };
    let wv = graph.add_const(
        format!("{name}/folded_weight"),
        Tensor::from_vec(w_shape, new_w)?,
    );
    let bv = graph.add_const(format!("{name}/folded_bias"), new_b);
    graph.rewrite(producer, new_op, &[inputs[0], wv, bv])?;
    Ok(true)
}

/// `y * s` or `y + b` with `s`, `b` per-channel constants: `(k, shift)` and `y`.
fn channel_affine(graph: &Graph, id: NodeId) -> Option<(Vec<f64>, Vec<f64>, Value)> {
    let Op::Binary(op) = graph.node(id).op else {
        return None;
    };
    let inputs = graph.inputs_of(id);
    let out = graph.value_type(Value::new(id, 0)).shape.clone();
    for (y, c) in [(inputs[0], inputs[1]), (inputs[1], inputs[0])] {
        if graph.value_type(y).shape != out {
            continue;
        }
        let Some(v) = per_channel(graph, c, &out) else {
            continue;
        };
        return match op {
            cnnc_ir::op::Binary::Mul => Some((v.clone(), vec![0.0; v.len()], y)),
            cnnc_ir::op::Binary::Add => Some((vec![1.0; v.len()], v, y)),
            _ => None,
        };
    }
    None
}

/// Whether the constant operand of node `id` has more than one value (a channel axis,
/// not a scalar).
fn per_channel_constant(graph: &Graph, id: NodeId) -> bool {
    graph
        .inputs_of(id)
        .iter()
        .any(|&v| constant(graph, v).is_some_and(|t| t.numel() > 1))
}

/// Constants `[C]` for a `ScaleShift` replacing node `id`.
fn channel_params(
    graph: &mut Graph,
    id: NodeId,
    k: Vec<f64>,
    shift: Vec<f64>,
) -> Result<(Value, Value), IrError> {
    let name = graph.node(id).name.clone();
    let c = k.len();
    let s = graph.add_const(format!("{name}/scale"), floats(k, vec![c])?);
    let b = graph.add_const(format!("{name}/shift"), floats(shift, vec![c])?);
    Ok((s, b))
}

/// When `y` is a `ScaleShift` of `x` with constant parameters that only node `id`
/// reads: `x` and the composed affine map (`y * k + shift` of `x * s + b`).
fn after_scale_shift(
    graph: &Graph,
    id: NodeId,
    y: Value,
    k: &[f64],
    shift: &[f64],
) -> Option<(Value, Vec<f64>, Vec<f64>)> {
    if !matches!(graph.node(y.node).op, Op::ScaleShift(e) if e.is_empty())
        || sole_user(graph, y) != Some(id)
    {
        return None;
    }
    let inputs = graph.inputs_of(y.node);
    let param = |v: Value| constant(graph, v).map(|t| t.to_f64s());
    let (s, b) = (param(inputs[1])?, param(inputs[2])?);
    (s.len() == k.len() && b.len() == k.len()).then(|| {
        let k2 = (0..k.len()).map(|c| s[c] * k[c]).collect();
        let b2 = (0..k.len()).map(|c| b[c] * k[c] + shift[c]).collect();
        (inputs[0], k2, b2)
    })
}

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        "fold_batch_norm"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            if !graph.contains(id) {
                continue;
            }
            if let Some((k, shift, y)) = channel_affine(graph, id) {
                let producer = graph.node(y.node).op.clone();
                let folds = y.port == 0
                    && sole_user(graph, y) == Some(id)
                    && matches!(
                        producer,
                        Op::Conv(_) | Op::DepthwiseConv(_) | Op::ConvTranspose(_) | Op::Gemm(_)
                    );
                if folds && fold_into(graph, y.node, &k, &shift)? {
                    replace_node(graph, id, y);
                } else if let Some((x, k, shift)) = after_scale_shift(graph, id, y, &k, &shift) {
                    // `Mul` then `Add`: one scale-shift.
                    let (s, b) = channel_params(graph, id, k, shift)?;
                    graph.rewrite(id, Op::ScaleShift(Epilogue::default()), &[x, s, b])?;
                } else if per_channel_constant(graph, id) {
                    let (s, b) = channel_params(graph, id, k, shift)?;
                    graph.rewrite(id, Op::ScaleShift(Epilogue::default()), &[y, s, b])?;
                } else {
                    // A scalar stays a plain elementwise op.
                    continue;
                }
                changes += 1;
                continue;
            }
            let Op::BatchNorm { epsilon } = graph.node(id).op else {
                continue;
            };
            let inputs = graph.inputs_of(id);
            let Some((k, shift)) = affine(graph, &inputs, epsilon) else {
                continue;
            };
            let x = inputs[0];
            let folds = sole_user(graph, x) == Some(id)
                && matches!(
                    graph.node(x.node).op,
                    Op::Conv(_) | Op::DepthwiseConv(_) | Op::ConvTranspose(_) | Op::Gemm(_)
                )
                && x.port == 0;
            if folds && fold_into(graph, x.node, &k, &shift)? {
                replace_node(graph, id, x);
            } else {
                let (s, b) = channel_params(graph, id, k, shift)?;
                graph.rewrite(id, Op::ScaleShift(Epilogue::default()), &[x, s, b])?;
            }
            changes += 1;
        }
        graph.remove_dead();
        Ok(changes)
    }
}
