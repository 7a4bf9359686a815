//! Data movement: every op here copies elements without arithmetic, so each is written
//! as "output element at index `idx` comes from input element `src(idx)`".

use super::{by_dtype, for_each_index};
use crate::op::{DepthToSpaceMode, PadMode, SliceAxis};
use crate::types::strides_of;
use crate::{Element, IrError, Tensor, TensorType};

/// Builds a tensor of `out` type whose element at each multi-index is `x[src(idx)]`
/// (a linear index into `x`), or `fill` where `src` returns `None`.
fn remap(
    x: &Tensor,
    out: &TensorType,
    fill: f32,
    mut src: impl FnMut(&[usize]) -> Option<usize>,
) -> Result<Tensor, IrError> {
    by_dtype!(x.dtype(), T => {
        let xv = x.view::<T>()?;
        let fill = T::from_f64(fill as f64);
        let mut y: Vec<T> = Vec::with_capacity(out.numel());
        for_each_index(&out.shape, |idx| y.push(src(idx).map_or(fill, |i| xv[i])));
        Tensor::from_vec(out.shape.clone(), y)
    })
}

fn linear(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

pub fn transpose(x: &Tensor, perm: &[usize], out: &TensorType) -> Result<Tensor, IrError> {
    let strides = strides_of(x.shape());
    remap(x, out, 0.0, |idx| {
        Some(idx.iter().zip(perm).map(|(&i, &p)| i * strides[p]).sum())
    })
}

/// Output channel `j * groups + i` is input channel `i * (C / groups) + j`.
pub fn channel_shuffle(x: &Tensor, groups: usize, out: &TensorType) -> Result<Tensor, IrError> {
    let strides = strides_of(x.shape());
    let per_group = x.shape()[1] / groups;
    let mut from = vec![0; x.shape().len()];
    remap(x, out, 0.0, |idx| {
        from.copy_from_slice(idx);
        from[1] = idx[1] % groups * per_group + idx[1] / groups;
        Some(linear(&from, &strides))
    })
}

pub fn concat(inputs: &[&Tensor], axis: usize, out: &TensorType) -> Result<Tensor, IrError> {
    // Treat each input as [outer, len * inner] blocks and interleave the blocks.
    let outer: usize = out.shape[..axis].iter().product();
    let inner: usize = out.shape[axis + 1..].iter().product();
    by_dtype!(out.dtype, T => {
        let views = inputs.iter().map(|t| t.view::<T>()).collect::<Result<Vec<_>, _>>()?;
        let mut y: Vec<T> = Vec::with_capacity(out.numel());
        for o in 0..outer {
            for (t, v) in inputs.iter().zip(&views) {
                let block = t.shape()[axis] * inner;
                y.extend_from_slice(&v[o * block..][..block]);
            }
        }
        Tensor::from_vec(out.shape.clone(), y)
    })
}

pub fn split(x: &Tensor, axis: usize, outs: &[TensorType]) -> Result<Vec<Tensor>, IrError> {
    let mut start = 0;
    outs.iter()
        .map(|out| {
            let axes: Vec<SliceAxis> = x
                .shape()
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if i == axis {
                        SliceAxis {
                            start,
                            step: 1,
                            len: out.shape[i],
                        }
                    } else {
                        SliceAxis {
                            start: 0,
                            step: 1,
                            len: d,
                        }
                    }
                })
                .collect();
            start += out.shape[axis];
            slice(x, &axes, out)
        })
        .collect()
}

pub fn slice(x: &Tensor, axes: &[SliceAxis], out: &TensorType) -> Result<Tensor, IrError> {
    let strides = strides_of(x.shape());
    remap(x, out, 0.0, |idx| {
        Some(
            idx.iter()
                .zip(axes)
                .zip(&strides)
                .map(|((&i, a), s)| (a.start as isize + i as isize * a.step) as usize * s)
                .sum(),
        )
    })
}

/// Index into an axis of length `len` for padded position `i` (may be outside).
fn pad_source(i: isize, len: usize, mode: PadMode) -> Option<usize> {
    let n = len as isize;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PadMode::Constant(_) => None,
        PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
        PadMode::Reflect if n == 1 => Some(0),
        // Mirror without repeating the edge, period 2(n-1), as numpy's "reflect".
        PadMode::Reflect => {
            let period = 2 * (n - 1);
            let r = i.rem_euclid(period);
            Some((if r < n { r } else { period - r }) as usize)
        }
    }
}

pub fn pad(
    x: &Tensor,
    pads: &[(isize, isize)],
    mode: PadMode,
    out: &TensorType,
) -> Result<Tensor, IrError> {
    let strides = strides_of(x.shape());
    let fill = match mode {
        PadMode::Constant(v) => v,
        _ => 0.0,
    };
    remap(x, out, fill, |idx| {
        let mut at = 0;
        for (axis, &i) in idx.iter().enumerate() {
            let src = i as isize - pads[axis].0;
            at += pad_source(src, x.shape()[axis], mode)? * strides[axis];
        }
        Some(at)
    })
}

/// DepthToSpace and SpaceToDepth are the two directions of the same index map between
/// `[N, C*b*b, H, W]` and `[N, C, H*b, W*b]`; `deep` is the shape of the deep side.
fn depth_map(
    deep: &[usize],
    block: usize,
    mode: DepthToSpaceMode,
    n: usize,
    c: usize,
    y: usize,
    x: usize,
) -> usize {
    let (cd, h, w) = (deep[1], deep[2], deep[3]);
    let c_shallow = cd / (block * block);
    let (by, bx) = (y % block, x % block);
    let ch = match mode {
        DepthToSpaceMode::Dcr => (by * block + bx) * c_shallow + c,
        DepthToSpaceMode::Crd => (c * block + by) * block + bx,
    };
    ((n * cd + ch) * h + y / block) * w + x / block
}

pub fn depth_to_space(
    x: &Tensor,
    block: usize,
    mode: DepthToSpaceMode,
    out: &TensorType,
) -> Result<Tensor, IrError> {
    let deep = x.shape().to_vec();
    remap(x, out, 0.0, |i| {
        Some(depth_map(&deep, block, mode, i[0], i[1], i[2], i[3]))
    })
}

pub fn space_to_depth(
    x: &Tensor,
    block: usize,
    mode: DepthToSpaceMode,
    out: &TensorType,
) -> Result<Tensor, IrError> {
    let deep = out.shape.clone();
    let shallow = x.shape().to_vec();
    let strides = strides_of(&shallow);
    // Invert depth_map: for each deep index find the shallow element it holds.
    let mut from = vec![0usize; out.numel()];
    for_each_index(&shallow, |i| {
        from[depth_map(&deep, block, mode, i[0], i[1], i[2], i[3])] = linear(i, &strides);
    });
    let mut k = 0;
    remap(x, out, 0.0, |_| {
        k += 1;
        Some(from[k - 1])
    })
}

pub fn tile(x: &Tensor, out: &TensorType) -> Result<Tensor, IrError> {
    let strides = strides_of(x.shape());
    let shape = x.shape().to_vec();
    remap(x, out, 0.0, |idx| {
        Some(
            idx.iter()
                .zip(&shape)
                .zip(&strides)
                .map(|((&i, &d), s)| (i % d) * s)
                .sum(),
        )
    })
}

pub fn expand(x: &Tensor, out: &TensorType) -> Result<Tensor, IrError> {
    let map = super::broadcast_map(x.shape(), &out.shape);
    let mut k = 0;
    remap(x, out, 0.0, |_| {
        k += 1;
        Some(map[k - 1])
    })
}

pub fn gather(
    x: &Tensor,
    indices: &Tensor,
    axis: usize,
    out: &TensorType,
) -> Result<Tensor, IrError> {
    let dim = x.shape()[axis];
    let idx: Vec<usize> = indices
        .to_i64s()?
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            usize::try_from(j).ok().filter(|&j| j < dim).ok_or_else(|| {
                IrError::eval(format!("gather index {i} out of range for axis of {dim}"))
            })
        })
        .collect::<Result<_, _>>()?;
    let strides = strides_of(x.shape());
    let irank = indices.shape().len();
    let istrides = strides_of(indices.shape());
    remap(x, out, 0.0, |o| {
        // o = [data dims before axis] ++ [index dims] ++ [data dims after axis]
        let k = linear(&o[axis..axis + irank], &istrides);
        let before = linear(&o[..axis], &strides[..axis]);
        let after = linear(&o[axis + irank..], &strides[axis + 1..]);
        Some(before + idx[k] * strides[axis] + after)
    })
}
