//! Max and average pooling (windowed, 1-D to 3-D) and global pooling, on plain tensors
//! one float at a time and on blocked-channel tensors (NCHWc) one vector of a channel
//! block at a time: a blocked tensor is a plain one of `C/4` planes whose elements are
//! vectors. Windowed 2-D pools of blocked tensors and 1-D and 2-D pools of plain ones,
//! the common cases, take the register-blocked window kernels of `depthwise_blocked.rs`
//! and `depthwise_rows.rs` instead.
//!
//! Each axis has compile-time tables giving, per output index, the kernel positions
//! that fall inside the input and the count an average divides by, so the window
//! loops never test bounds per element.

use cnnc_ir::Layout;
use cnnc_ir::op::{Pool, PoolKind};
use cranelift_codegen::ir::types::{F32, F32X4, I64};
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::conv::three;
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

pub(super) struct AxisTables {
    /// Per output index: first and one-past-last valid kernel position, and the
    /// average's count along this axis.
    pub lo: Vec<i64>,
    pub hi: Vec<i64>,
    pub count: Vec<f32>,
}

pub(super) fn axis_tables(
    input: usize,
    output: usize,
    k: usize,
    s: usize,
    d: usize,
    pads: (usize, usize),
    count_pad: bool,
) -> AxisTables {
    let mut t = AxisTables {
        lo: vec![],
        hi: vec![],
        count: vec![],
    };
    for o in 0..output {
        let start = (o * s) as isize - pads.0 as isize;
        let inside: Vec<usize> = (0..k)
            .filter(|&kk| (0..input as isize).contains(&(start + (kk * d) as isize)))
            .collect();
        let counted = (0..k)
            .filter(|&kk| {
                let i = start + (kk * d) as isize;
                // Positions past the end padding (from ceil_mode) never count.
                i < (input + pads.1) as isize && (count_pad || (0..input as isize).contains(&i))
            })
            .count();
        // Valid positions are contiguous: dilation keeps them in order.
        t.lo.push(inside.first().map_or(0, |&v| v as i64));
        t.hi.push(inside.last().map_or(0, |&v| v as i64 + 1));
        t.count.push(counted as f32);
    }
    t
}

pub fn emit(cx: &mut KernelCx, p: &Pool) -> Result<(), CodegenError> {
    // Register-blocked along rows: the depthwise kernels' structure.
    match cx.inputs[0].ty.layout {
        Layout::Blocked { .. } if p.kernel.len() >= 2 => {
            return super::depthwise_blocked::pool(cx, p);
        }
        Layout::Plain if p.kernel.len() <= 2 => return super::depthwise_rows::pool(cx, p),
        _ => {}
    }
    let xs = cx.inputs[0].ty.shape.clone();
    let ys = cx.outputs[0].1.shape.clone();
    let spatial = xs.len() - 2;
    let input = three(&xs[2..], 1);
    let output = three(&ys[2..], 1);
    let kernel = three(&p.kernel, 1);
    let stride = three(&p.strides, 1);
    let dil = three(&p.dilations, 1);
    let mut pads = [(0, 0); 3];
    pads[3 - spatial..].copy_from_slice(&p.pads);
    let count_pad = matches!(
        p.kind,
        PoolKind::Avg {
            count_include_pad: true
        }
    );
    let tables: Vec<AxisTables> = (0..3)
        .map(|a| {
            axis_tables(
                input[a], output[a], kernel[a], stride[a], dil[a], pads[a], count_pad,
            )
        })
        .collect();
    let (x, y) = (cx.input(0), cx.output(0));
    let tab: Vec<(usize, usize, usize)> = tables
        .into_iter()
        .map(|t| (cx.table(t.lo), cx.table(t.hi), cx.table(t.count)))
        .collect();
    let (planes, ty, elem) = element(&cx.inputs[0].ty.layout, xs[0] * xs[1]);
    let in_plane: usize = input.iter().product();
    let out_plane: usize = output.iter().product();
    let tasks = tasks_for(
        planes,
        planes * out_plane * kernel.iter().product::<usize>(),
    );
    let max = p.kind == PoolKind::Max;
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        let t = |fx: &mut Fx, a: usize, which: usize, o: Value| {
            let k = [tab[a].0, tab[a].1, tab[a].2][which];
            let at = fx.addr(ptrs[k], o, if which == 2 { 4 } else { 8 }, 0);
            fx.load(if which == 2 { F32 } else { I64 }, at, 0)
        };
        fx.for_range(lo, hi, |fx, plane| {
            let src = fx.addr(ptrs[x], plane, elem * in_plane as i64, 0);
            let dst = fx.addr(ptrs[y], plane, elem * out_plane as i64, 0);
            fx.for_n(output[0] as u64, |fx, od| {
                let (kd0, kd1, cd) = (t(fx, 0, 0, od), t(fx, 0, 1, od), t(fx, 0, 2, od));
                fx.for_n(output[1] as u64, |fx, oh| {
                    let (kh0, kh1, ch) = (t(fx, 1, 0, oh), t(fx, 1, 1, oh), t(fx, 1, 2, oh));
                    fx.for_n(output[2] as u64, |fx, ow| {
                        let (kw0, kw1, cw) = (t(fx, 2, 0, ow), t(fx, 2, 1, ow), t(fx, 2, 2, ow));
                        let init = fx.fconst(ty, if max { f32::NEG_INFINITY } else { 0.0 });
                        let bounds = [kd0, kd1, kh0, kh1, kw0, kw1];
                        let acc = window(
                            fx,
                            &bounds,
                            [od, oh, ow],
                            &stride,
                            &dil,
                            &pads,
                            &input,
                            (src, elem),
                            init,
                            max,
                        );
                        let v = if max {
                            acc
                        } else {
                            let c = fx.b.ins().fmul(cd, ch);
                            let c = fx.b.ins().fmul(c, cw);
                            let c = if ty == F32 {
                                c
                            } else {
                                fx.b.ins().splat(ty, c)
                            };
                            fx.b.ins().fdiv(acc, c)
                        };
                        let o = fx.b.ins().imul_imm_s(od, output[1] as i64);
                        let o = fx.b.ins().iadd(o, oh);
                        let o = fx.b.ins().imul_imm_s(o, output[2] as i64);
                        let o = fx.b.ins().iadd(o, ow);
                        let at = fx.addr(dst, o, elem, 0);
                        fx.store(v, at, 0);
                    });
                });
            });
        });
        Ok(())
    })
}

/// Planes of a pooled tensor with `channel_planes` planes in the plain layout, and the
/// type and bytes of one of their elements.
fn element(layout: &Layout, channel_planes: usize) -> (usize, Type, i64) {
    match layout {
        Layout::Plain => (channel_planes, F32, 4),
        Layout::Blocked { block } => (channel_planes / *block as usize, F32X4, 16),
    }
}

/// Folds the window of output position `o` into `acc` (max or sum); `src` is the
/// input plane, of elements of `elem` bytes (the type of `acc`).
#[allow(clippy::too_many_arguments)]
fn window(
    fx: &mut Fx,
    bounds: &[Value; 6],
    o: [Value; 3],
    stride: &[usize; 3],
    dil: &[usize; 3],
    pads: &[(usize, usize); 3],
    input: &[usize; 3],
    (src, elem): (Value, i64),
    acc: Value,
    max: bool,
) -> Value {
    // Input index along axis a for kernel position k: o * s - pad + k * d.
    let base: Vec<Value> = (0..3)
        .map(|a| {
            let b = fx.b.ins().imul_imm_s(o[a], stride[a] as i64);
            fx.b.ins().iadd_imm_s(b, -(pads[a].0 as i64))
        })
        .collect();
    carry_range(fx, bounds[0], bounds[1], acc, |fx, kd, acc| {
        let id = fx.b.ins().imul_imm_s(kd, dil[0] as i64);
        let id = fx.b.ins().iadd(id, base[0]);
        carry_range(fx, bounds[2], bounds[3], acc, |fx, kh, acc| {
            let ih = fx.b.ins().imul_imm_s(kh, dil[1] as i64);
            let ih = fx.b.ins().iadd(ih, base[1]);
            let row = fx.b.ins().imul_imm_s(id, input[1] as i64);
            let row = fx.b.ins().iadd(row, ih);
            let row_at = fx.addr(src, row, elem * input[2] as i64, 0);
            carry_range(fx, bounds[4], bounds[5], acc, |fx, kw, acc| {
                let iw = fx.b.ins().imul_imm_s(kw, dil[2] as i64);
                let iw = fx.b.ins().iadd(iw, base[2]);
                let at = fx.addr(row_at, iw, elem, 0);
                let ty = fx.b.func.dfg.value_type(acc);
                let v = fx.load(ty, at, 0);
                if max {
                    fx.max_nan(acc, v)
                } else {
                    fx.b.ins().fadd(acc, v)
                }
            })
        })
    })
}

/// Folds `body` over `lo..hi` (run-time bounds) starting from `init`.
fn carry_range(
    fx: &mut Fx,
    lo: Value,
    hi: Value,
    init: Value,
    mut body: impl FnMut(&mut Fx, Value, Value) -> Value,
) -> Value {
    use cranelift_codegen::ir::condcodes::IntCC;
    let header = fx.b.create_block();
    let body_block = fx.b.create_block();
    let exit = fx.b.create_block();
    let ty = fx.b.func.dfg.value_type(init);
    fx.b.append_block_param(header, I64);
    fx.b.append_block_param(header, ty);
    fx.b.append_block_param(exit, ty);
    fx.b.ins().jump(header, &[lo.into(), init.into()]);
    fx.b.switch_to_block(header);
    let (i, acc) = (fx.b.block_params(header)[0], fx.b.block_params(header)[1]);
    let more = fx.b.ins().icmp(IntCC::SignedLessThan, i, hi);
    fx.b.ins().brif(more, body_block, &[], exit, &[acc.into()]);
    fx.b.switch_to_block(body_block);
    let next = body(fx, i, acc);
    let i1 = fx.b.ins().iadd_imm_s(i, 1);
    fx.b.ins().jump(header, &[i1.into(), next.into()]);
    fx.b.switch_to_block(exit);
    fx.b.block_params(exit)[0]
}

pub fn emit_global(cx: &mut KernelCx, kind: PoolKind) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let plane: usize = xs[2..].iter().product();
    let (x, y) = (cx.input(0), cx.output(0));
    let max = matches!(kind, PoolKind::Max);
    let (planes, ty, _) = element(&cx.inputs[0].ty.layout, xs[0] * xs[1]);
    if ty == F32X4 {
        let tasks = tasks_for(planes, planes * plane * LANES);
        return cx.launch(tasks, |fx, task, ptrs| {
            let (lo, hi) = fx.task_range(task, planes, tasks);
            fx.for_range(lo, hi, |fx, p| {
                let src = fx.addr(ptrs[x], p, 16 * plane as i64, 0);
                let v = fx.fold_vectors(src, plane, max);
                let v = if max {
                    v
                } else {
                    let n = fx.splat_const(plane as f32);
                    fx.b.ins().fdiv(v, n)
                };
                let at = fx.addr(ptrs[y], p, 16, 0);
                fx.store(v, at, 0);
            });
            Ok(())
        });
    }
    let tasks = tasks_for(planes, planes * plane);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, p| {
            let src = fx.addr(ptrs[x], p, 4 * plane as i64, 0);
            let v = fx.reduce_plane(src, plane, max);
            let v = if max {
                v
            } else {
                let n = fx.f32(plane as f32);
                fx.b.ins().fdiv(v, n)
            };
            let at = fx.addr(ptrs[y], p, 4, 0);
            fx.store(v, at, 0);
        });
        Ok(())
    })
}

/// Independent chains of [`Fx::fold_vectors`] (a power of two, halved pairwise at the
/// end): enough for the add latency at two a cycle, and registers to spare.
const FOLD_CHAINS: usize = 8;
const _: () = assert!(FOLD_CHAINS.is_power_of_two());

impl Fx<'_> {
    /// Lanewise sum (or NaN-propagating maximum) of `n` consecutive vectors at `src`,
    /// in [`FOLD_CHAINS`] chains a step and the rest one at a time. With one chain
    /// every vector waited for the add before it: EfficientNet-B0's squeeze-and-excite
    /// global pools (16 of them over 0.1 to 1.6 MB just written) took 0.27 ms, now
    /// 0.09.
    pub fn fold_vectors(&mut self, src: Value, n: usize, max: bool) -> Value {
        let init = self.splat_const(if max { f32::NEG_INFINITY } else { 0.0 });
        let fold = |fx: &mut Self, a: Value, b: Value| {
            if max {
                fx.max_nan(a, b)
            } else {
                fx.b.ins().fadd(a, b)
            }
        };
        let steps = n / FOLD_CHAINS;
        let mut v = init;
        if steps > 0 {
            let mut acc = self.for_n_carry(steps as u64, &[init; FOLD_CHAINS], |fx, i, acc| {
                let at = fx.addr(src, i, (16 * FOLD_CHAINS) as i64, 0);
                acc.iter()
                    .enumerate()
                    .map(|(k, &a)| {
                        let v = fx.load(F32X4, at, 16 * k as i32);
                        fold(fx, a, v)
                    })
                    .collect()
            });
            while acc.len() > 1 {
                let half = acc.split_off(acc.len() / 2);
                for (a, h) in acc.iter_mut().zip(half) {
                    *a = fold(self, *a, h);
                }
            }
            v = acc[0];
        }
        let rest = self
            .b
            .ins()
            .iadd_imm_s(src, (steps * FOLD_CHAINS * 16) as i64);
        for k in 0..n % FOLD_CHAINS {
            let x = self.load(F32X4, rest, 16 * k as i32);
            v = fold(self, v, x);
        }
        v
    }

    /// Sum (or NaN-propagating maximum) of `n` consecutive floats at `src`.
    pub fn reduce_plane(&mut self, src: Value, n: usize, max: bool) -> Value {
        let vecs = n / LANES;
        let acc = self.fold_vectors(src, vecs, max);
        let mut s = if max { self.hmax(acc) } else { self.hsum(acc) };
        for k in vecs * LANES..n {
            let v = self.load(F32, src, (4 * k) as i32);
            s = if max {
                self.b.ins().fmax(s, v)
            } else {
                self.b.ins().fadd(s, v)
            };
        }
        s
    }
}
