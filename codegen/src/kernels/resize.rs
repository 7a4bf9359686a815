//! Resize. Nearest-neighbour is a table-driven copy. Linear and cubic are separable:
//! one pass per resized axis, each output row a weighted sum of a few input rows, with
//! the taps (indices and weights) computed at compile time by the same code as the
//! reference interpreter. Passes go through scratch buffers.

use cnnc_ir::interp::resize::{is_identity, taps};
use cnnc_ir::op::{Resize, ResizeMode};
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::types::{F32, F32X4, I64};

use super::movement::{AxisMap, CopyPlan, copy_launch};
use super::nest::dense_strides;
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::LANES;

pub fn emit(cx: &mut KernelCx, r: &Resize) -> Result<(), CodegenError> {
    let in_shape = cx.inputs[0].ty.shape.clone();
    let out_shape = cx.outputs[0].1.shape.clone();
    let (x, y) = (cx.input(0), cx.output(0));
    // Nearest is a copy, unless exclude_outside may zero a sample (then the weighted
    // path below computes it, with weights 0 and 1).
    if matches!(r.mode, ResizeMode::Nearest(_)) && !r.exclude_outside {
        let strides = dense_strides(&in_shape);
        let src = (0..in_shape.len())
            .map(|a| {
                if is_identity(r.scales[a], in_shape[a], out_shape[a]) {
                    return AxisMap::Stride(strides[a]);
                }
                // The tap of weight 1 is the nearest input.
                let table = (0..out_shape[a])
                    .map(|o| {
                        let t = taps(r, o, in_shape[a], out_shape[a], r.scales[a]);
                        let (i, _) = t
                            .iter()
                            .copied()
                            .find(|&(_, w)| w == 1.0)
                            .unwrap_or(t[t.len() - 1]);
                        i as i64 * strides[a] as i64
                    })
                    .collect();
                AxisMap::Table(table)
            })
            .collect();
        let plan = CopyPlan {
            dims: out_shape.clone(),
            src,
            dst: dense_strides(&out_shape),
            src_base: 0,
            dst_base: 0,
            elem: 4,
        };
        return copy_launch(cx, x, y, plan);
    }
    let axes: Vec<usize> = (0..in_shape.len())
        .filter(|&a| !is_identity(r.scales[a], in_shape[a], out_shape[a]))
        .collect();
    if axes.is_empty() {
        return copy_launch(cx, x, y, CopyPlan::dense(out_shape.iter().product(), 4));
    }
    let mut shape = in_shape.clone();
    let mut src = x;
    for (n, &a) in axes.iter().enumerate() {
        let (in_len, out_len) = (shape[a], out_shape[a]);
        let all: Vec<Vec<(usize, f64)>> = (0..out_len)
            .map(|o| taps(r, o, in_len, out_len, r.scales[a]))
            .collect();
        let width = all.iter().map(|t| t.len()).max().unwrap_or(1);
        let mut idx = Vec::with_capacity(out_len * width);
        let mut wts = Vec::with_capacity(out_len * width);
        for t in &all {
            for k in 0..width {
                let (i, w) = t.get(k).copied().unwrap_or((0, 0.0));
                idx.push(i as i64);
                wts.push(w as f32);
            }
        }
        let outer: usize = shape[..a].iter().product();
        let inner: usize = shape[a + 1..].iter().product();
        shape[a] = out_len;
        let dst = if n + 1 == axes.len() {
            y
        } else {
            cx.scratch(4 * shape.iter().product::<usize>())
        };
        let (ti, tw) = (cx.table(idx), cx.table(wts));
        let tasks = tasks_for(outer * out_len, outer * out_len * inner * width);
        let units = outer * out_len;
        cx.launch(tasks, |fx, task, ptrs| {
            let (lo, hi) = fx.task_range(task, units, tasks);
            fx.for_range(lo, hi, |fx, u| {
                // Output row (o, j): sum over taps t of w[j][t] * input row (o, idx[j][t]).
                let o = fx.b.ins().udiv_imm_u(u, out_len as i64);
                let j = fx.b.ins().urem_imm_u(u, out_len as i64);
                let in_base = fx.addr(ptrs[src], o, 4 * (in_len * inner) as i64, 0);
                let out_row = fx.addr(ptrs[dst], u, 4 * inner as i64, 0);
                let rows: Vec<_> = (0..width)
                    .map(|t| {
                        let ia = fx.addr(ptrs[ti], j, 8 * width as i64, 8 * t as i64);
                        let i = fx.load(I64, ia, 0);
                        let wa = fx.addr(ptrs[tw], j, 4 * width as i64, 4 * t as i64);
                        let w = fx.load(F32, wa, 0);
                        (fx.addr(in_base, i, 4 * inner as i64, 0), w)
                    })
                    .collect();
                let wv: Vec<_> = rows
                    .iter()
                    .map(|&(_, w)| fx.b.ins().splat(F32X4, w))
                    .collect();
                fx.for_n((inner / LANES) as u64, |fx, i| {
                    let mut acc = fx.splat_const(0.0);
                    for (t, &(row, _)) in rows.iter().enumerate() {
                        let at = fx.addr(row, i, 16, 0);
                        let v = fx.load(F32X4, at, 0);
                        acc = fx.fma(v, wv[t], acc);
                    }
                    let d = fx.addr(out_row, i, 16, 0);
                    fx.store(acc, d, 0);
                });
                for i in inner / LANES * LANES..inner {
                    let mut acc = fx.f32(0.0);
                    for &(row, w) in &rows {
                        let v = fx.load(F32, row, (4 * i) as i32);
                        acc = fx.fma(v, w, acc);
                    }
                    fx.store(acc, out_row, (4 * i) as i32);
                }
            });
            Ok(())
        })?;
        src = dst;
    }
    Ok(())
}
