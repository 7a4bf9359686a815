//! Gemm and MatMul.

use super::{broadcast_map, floats, from_f64};
use crate::op::Gemm;
use crate::{IrError, Tensor, TensorType};

/// `c[i][j] = sum_k a(i, k) * b(k, j)` in f64 for an `m x n` result.
fn product(
    m: usize,
    n: usize,
    k: usize,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a(i, p) * b(p, j)).sum();
        }
    }
    c
}

pub fn gemm(g: &Gemm, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let (a, b) = (floats(inputs[0])?, floats(inputs[1])?);
    let (sa, sb) = (inputs[0].shape(), inputs[1].shape());
    let (m, n) = (out.shape[0], out.shape[1]);
    let k = if g.trans_a { sa[0] } else { sa[1] };
    let at = |i: usize, p: usize| {
        (if g.trans_a {
            a[p * sa[1] + i]
        } else {
            a[i * sa[1] + p]
        }) as f64
    };
    let bt = |p: usize, j: usize| {
        (if g.trans_b {
            b[j * sb[1] + p]
        } else {
            b[p * sb[1] + j]
        }) as f64
    };
    let mut y = product(m, n, k, at, bt);
    y.iter_mut().for_each(|v| *v *= g.alpha as f64);
    if let Some(c) = inputs.get(2) {
        let cv = floats(c)?;
        for (v, i) in y.iter_mut().zip(broadcast_map(c.shape(), &out.shape)) {
            *v += g.beta as f64 * cv[i] as f64;
        }
    }
    from_f64(out.shape.clone(), y)
}

/// numpy matmul of inputs 0 and 1, plus input 2 (broadcast) when given.
pub fn matmul(inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let (a, b) = (inputs[0], inputs[1]);
    let (av, bv) = (floats(a)?, floats(b)?);
    // Promote 1-D operands as numpy does, then broadcast the batch axes.
    let sa: Vec<usize> = if a.shape().len() == 1 {
        vec![1, a.shape()[0]]
    } else {
        a.shape().to_vec()
    };
    let sb: Vec<usize> = if b.shape().len() == 1 {
        vec![b.shape()[0], 1]
    } else {
        b.shape().to_vec()
    };
    let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
    let batch = crate::infer::broadcast_shapes(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
    let ia = broadcast_map(&sa[..sa.len() - 2], &batch);
    let ib = broadcast_map(&sb[..sb.len() - 2], &batch);
    let mut y = Vec::with_capacity(out.numel());
    for (&ba, &bb) in ia.iter().zip(&ib) {
        let (pa, pb) = (&av[ba * m * k..][..m * k], &bv[bb * k * n..][..k * n]);
        y.extend(product(
            m,
            n,
            k,
            |i, p| pa[i * k + p] as f64,
            |p, j| pb[p * n + j] as f64,
        ));
    }
    if let Some(bias) = inputs.get(2) {
        let bv = floats(bias)?;
        for (v, i) in y.iter_mut().zip(broadcast_map(bias.shape(), &out.shape)) {
            *v += bv[i] as f64;
        }
    }
    from_f64(out.shape.clone(), y)
}
