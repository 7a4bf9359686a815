//! Softmax and log-softmax along one axis: maximum, sum of exponentials, normalize.
//! Along the last axis the rows are contiguous and the passes run four lanes at a time;
//! along another axis four neighbouring positions of the inner dims go together.

use cranelift_codegen::ir::types::{F32, F32X4};
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

pub fn emit(cx: &mut KernelCx, axis: usize, log: bool) -> Result<(), CodegenError> {
    let shape = cx.inputs[0].ty.shape.clone();
    let outer: usize = shape[..axis].iter().product();
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let (x, y) = (cx.input(0), cx.output(0));
    let tasks = tasks_for(outer, outer * len * inner * 8);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, outer, tasks);
        fx.for_range(lo, hi, |fx, o| {
            let src = fx.addr(ptrs[x], o, 4 * (len * inner) as i64, 0);
            let dst = fx.addr(ptrs[y], o, 4 * (len * inner) as i64, 0);
            if inner == 1 {
                contiguous(fx, src, dst, len, log);
            } else {
                // Four inner positions at a time, then one at a time.
                fx.for_n((inner / LANES) as u64, |fx, i| {
                    let s = fx.addr(src, i, 16, 0);
                    let d = fx.addr(dst, i, 16, 0);
                    strided(fx, F32X4, s, d, len, inner, log);
                });
                for i in inner / LANES * LANES..inner {
                    let s = fx.add(src, 4 * i as i64);
                    let d = fx.add(dst, 4 * i as i64);
                    strided(fx, F32, s, d, len, inner, log);
                }
            }
        });
        Ok(())
    })
}

/// Softmax over `len` elements `inner` apart, `ty` lanes wide.
fn strided(fx: &mut Fx, ty: Type, src: Value, dst: Value, len: usize, inner: usize, log: bool) {
    let step = 4 * inner as i64;
    let init = fx.fconst(ty, f32::NEG_INFINITY);
    let max = fx.for_n_carry(len as u64, &[init], |fx, k, acc| {
        let at = fx.addr(src, k, step, 0);
        let v = fx.load(ty, at, 0);
        vec![fx.b.ins().fmax(acc[0], v)]
    })[0];
    let zero = fx.fconst(ty, 0.0);
    let sum = fx.for_n_carry(len as u64, &[zero], |fx, k, acc| {
        let at = fx.addr(src, k, step, 0);
        let v = fx.load(ty, at, 0);
        let d = fx.b.ins().fsub(v, max);
        let e = fx.exp(d);
        if !log {
            let o = fx.addr(dst, k, step, 0);
            fx.store(e, o, 0);
        }
        vec![fx.b.ins().fadd(acc[0], e)]
    })[0];
    normalize(fx, ty, src, dst, len, step, max, sum, log);
}

/// The last pass: `e / sum` (kept from the sum pass in `dst`) or `x - max - log(sum)`.
#[allow(clippy::too_many_arguments)]
fn normalize(
    fx: &mut Fx,
    ty: Type,
    src: Value,
    dst: Value,
    len: usize,
    step: i64,
    max: Value,
    sum: Value,
    log: bool,
) {
    let shift = if log {
        let l = fx.log(sum);
        fx.b.ins().fadd(max, l)
    } else {
        let one = fx.fconst(ty, 1.0);
        fx.b.ins().fdiv(one, sum)
    };
    fx.for_n(len as u64, |fx, k| {
        let o = fx.addr(dst, k, step, 0);
        let r = if log {
            let at = fx.addr(src, k, step, 0);
            let v = fx.load(ty, at, 0);
            fx.b.ins().fsub(v, shift)
        } else {
            let e = fx.load(ty, o, 0);
            fx.b.ins().fmul(e, shift)
        };
        fx.store(r, o, 0);
    });
}

/// Softmax over a contiguous row, vectorized along it.
fn contiguous(fx: &mut Fx, src: Value, dst: Value, len: usize, log: bool) {
    let vecs = len / LANES;
    let tail = vecs * LANES..len;
    let m0 = fx.splat_const(f32::NEG_INFINITY);
    let mv = fx.for_n_carry(vecs as u64, &[m0], |fx, i, acc| {
        let at = fx.addr(src, i, 16, 0);
        let v = fx.load(F32X4, at, 0);
        vec![fx.b.ins().fmax(acc[0], v)]
    })[0];
    let mut max = fx.hmax(mv);
    for j in tail.clone() {
        let v = fx.load(F32, src, (4 * j) as i32);
        max = fx.b.ins().fmax(max, v);
    }
    let maxv = fx.b.ins().splat(F32X4, max);
    let s0 = fx.splat_const(0.0);
    let sv = fx.for_n_carry(vecs as u64, &[s0], |fx, i, acc| {
        let at = fx.addr(src, i, 16, 0);
        let v = fx.load(F32X4, at, 0);
        let d = fx.b.ins().fsub(v, maxv);
        let e = fx.exp(d);
        if !log {
            let o = fx.addr(dst, i, 16, 0);
            fx.store(e, o, 0);
        }
        vec![fx.b.ins().fadd(acc[0], e)]
    })[0];
    let mut sum = fx.hsum(sv);
    for j in tail.clone() {
        let v = fx.load(F32, src, (4 * j) as i32);
        let d = fx.b.ins().fsub(v, max);
        let e = fx.exp(d);
        if !log {
            fx.store(e, dst, (4 * j) as i32);
        }
        sum = fx.b.ins().fadd(sum, e);
    }
    let sumv = fx.b.ins().splat(F32X4, sum);
    normalize(fx, F32X4, src, dst, vecs, 16, maxv, sumv, log);
    for j in tail {
        let s = fx.add(src, 4 * j as i64);
        let d = fx.add(dst, 4 * j as i64);
        normalize(fx, F32, s, d, 1, 4, max, sum, log);
    }
}
