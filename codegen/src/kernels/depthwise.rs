//! Depthwise convolution (one group per input channel, `k` output channels each):
//! dispatch to the blocked and row-vectorized kernels, and the 3-D one on plain tensors
//! here: per output plane, each kernel tap adds `w * input row` to the output row (four
//! lanes at a time at stride 1), then the epilogue runs over the finished rows.

use cnnc_ir::Layout;
use cnnc_ir::op::{Activation, Conv};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::conv::{epilogue_args, three};
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

/// Output indices `o` whose input `o * stride + k * dilation - pad` is inside `0..input`.
fn valid(
    output: usize,
    input: usize,
    stride: usize,
    k: usize,
    dilation: usize,
    pad: usize,
) -> (usize, usize) {
    let off = (k * dilation) as isize - pad as isize;
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let top = input as isize - 1 - off;
    let hi = if top < 0 { 0 } else { top / s + 1 };
    let lo = (lo as usize).min(output);
    (lo, (hi as usize).clamp(lo, output))
}

pub fn emit(cx: &mut KernelCx, c: &Conv) -> Result<(), CodegenError> {
    if let Layout::Blocked { block } = cx.outputs[0].1.layout {
        return super::depthwise_blocked::emit(cx, c, block as usize);
    }
    if c.kernel.len() <= 2 {
        return super::depthwise_rows::emit(cx, c);
    }
    let xs = cx.inputs[0].ty.shape.clone();
    let ys = cx.outputs[0].1.shape.clone();
    let (batch, cin, m) = (xs[0], xs[1], ys[1]);
    let mult = m / cin;
    let input = three(&xs[2..], 1);
    let output = three(&ys[2..], 1);
    let kernel = three(&c.kernel, 1);
    let stride = three(&c.strides, 1);
    let dil = three(&c.dilations, 1);
    let begin: Vec<usize> = c.pads.iter().map(|p| p.0).collect();
    let pad = three(&begin, 0);
    let in_plane: usize = input.iter().product();
    let out_plane: usize = output.iter().product();
    let kk: usize = kernel.iter().product();
    let (x, w, y) = (cx.input(0), cx.input(1), cx.output(0));
    let extra = epilogue_args(cx, &c.epilogue, m)?;
    let own = cx.inputs.len() - c.epilogue.extra_inputs();
    let bias = (own > 2).then(|| cx.input(2));
    let activation = c.epilogue.activation;
    let planes = batch * m;
    let tasks = tasks_for(planes, planes * out_plane * kk);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, plane| {
            // Output plane (n, oc) reads input plane (n, oc / mult).
            let n = fx.b.ins().udiv_imm_u(plane, m as i64);
            let oc = fx.b.ins().urem_imm_u(plane, m as i64);
            let ic = fx.b.ins().udiv_imm_u(oc, mult as i64);
            let img = fx.b.ins().imul_imm_s(n, cin as i64);
            let img = fx.b.ins().iadd(img, ic);
            let src = fx.addr(ptrs[x], img, 4 * in_plane as i64, 0);
            let dst = fx.addr(ptrs[y], plane, 4 * out_plane as i64, 0);
            let wk = fx.addr(ptrs[w], oc, 4 * kk as i64, 0);
            let b = match bias {
                Some(k) => {
                    let at = fx.addr(ptrs[k], oc, 4, 0);
                    fx.load(F32, at, 0)
                }
                None => fx.f32(0.0),
            };
            fx.fill_value(dst, out_plane, b);
            fx.for_n(output[0] as u64, |fx, od| {
                fx.for_n(output[1] as u64, |fx, oh| {
                    let row = fx.b.ins().imul_imm_s(od, output[1] as i64);
                    let row = fx.b.ins().iadd(row, oh);
                    let out_row = fx.addr(dst, row, 4 * output[2] as i64, 0);
                    for kd in 0..kernel[0] {
                        for kh in 0..kernel[1] {
                            let id = fx.b.ins().imul_imm_s(od, stride[0] as i64);
                            let id =
                                fx.b.ins()
                                    .iadd_imm_s(id, (kd * dil[0]) as i64 - pad[0] as i64);
                            let ih = fx.b.ins().imul_imm_s(oh, stride[1] as i64);
                            let ih =
                                fx.b.ins()
                                    .iadd_imm_s(ih, (kh * dil[1]) as i64 - pad[1] as i64);
                            let vd =
                                fx.b.ins()
                                    .icmp_imm_u(IntCC::UnsignedLessThan, id, input[0] as i64);
                            let vh =
                                fx.b.ins()
                                    .icmp_imm_u(IntCC::UnsignedLessThan, ih, input[1] as i64);
                            let inside = fx.b.ins().band(vd, vh);
                            fx.if_then(inside, |fx| {
                                let in_row = fx.b.ins().imul_imm_s(id, input[1] as i64);
                                let in_row = fx.b.ins().iadd(in_row, ih);
                                let in_row = fx.addr(src, in_row, 4 * input[2] as i64, 0);
                                for kw in 0..kernel[2] {
                                    let k = (kd * kernel[1] + kh) * kernel[2] + kw;
                                    let wv = fx.load(F32, wk, (4 * k) as i32);
                                    tap(
                                        fx,
                                        in_row,
                                        out_row,
                                        wv,
                                        output[2],
                                        input[2],
                                        stride[2],
                                        kw * dil[2],
                                        pad[2],
                                    );
                                }
                            });
                        }
                    }
                });
            });
            if !c.epilogue.is_empty() {
                let residual = extra
                    .residual
                    .map(|k| fx.addr(ptrs[k], plane, 4 * out_plane as i64, 0));
                let slope = extra.slope.map(|k| {
                    let at = fx.addr(ptrs[k], oc, 4, 0);
                    fx.load(F32, at, 0)
                });
                fx.epilogue_run(dst, out_plane, residual, activation, slope);
            }
        });
        Ok(())
    })
}

/// `out[o] += w * in[o * stride + off - pad]` over the valid outputs of one row.
#[allow(clippy::too_many_arguments)]
fn tap(
    fx: &mut Fx,
    in_row: Value,
    out_row: Value,
    w: Value,
    out_w: usize,
    in_w: usize,
    stride: usize,
    off: usize,
    pad: usize,
) {
    let (lo, hi) = valid(out_w, in_w, stride, off, 1, pad);
    let first = (lo * stride + off) as i64 - pad as i64;
    let n = hi - lo;
    let vecs = if stride == 1 { n / LANES } else { 0 };
    let wv = fx.b.ins().splat(F32X4, w);
    fx.for_n(vecs as u64, |fx, j| {
        let s = fx.addr(in_row, j, 16, 4 * first);
        let d = fx.addr(out_row, j, 16, 4 * lo as i64);
        let xv = fx.load(F32X4, s, 0);
        let o = fx.load(F32X4, d, 0);
        let r = fx.fma(xv, wv, o);
        fx.store(r, d, 0);
    });
    fx.for_n((n - vecs * LANES) as u64, |fx, j| {
        let j = fx.b.ins().iadd_imm_s(j, (vecs * LANES) as i64);
        let s = fx.addr(in_row, j, 4 * stride as i64, 4 * first);
        let d = fx.addr(out_row, j, 4, 4 * lo as i64);
        let xv = fx.load(F32, s, 0);
        let o = fx.load(F32, d, 0);
        let r = fx.fma(xv, w, o);
        fx.store(r, d, 0);
    });
}

impl Fx<'_> {
    /// `dst[i] = activation(dst[i] + residual[i])` over `n` floats; `slope` is PRelu's,
    /// one float, or a vector of per-lane slopes (a blocked run, `n` whole vectors).
    pub fn epilogue_run(
        &mut self,
        dst: Value,
        n: usize,
        residual: Option<Value>,
        activation: Option<Activation>,
        slope: Option<Value>,
    ) {
        let slope_v = slope.map(|s| {
            if self.b.func.dfg.value_type(s) == F32X4 {
                s
            } else {
                self.b.ins().splat(F32X4, s)
            }
        });
        let one = |fx: &mut Fx, ty, at: i32, step_dst: Value, step_res: Option<Value>| {
            let mut v = fx.load(ty, step_dst, at);
            if let Some(r) = step_res {
                let rv = fx.load(ty, r, at);
                v = fx.b.ins().fadd(v, rv);
            }
            if let Some(a) = activation {
                v = fx.activate(a, v, if ty == F32 { slope } else { slope_v });
            }
            fx.store(v, step_dst, at);
        };
        self.for_n((n / LANES) as u64, |fx, i| {
            let d = fx.addr(dst, i, 16, 0);
            let r = residual.map(|r| fx.addr(r, i, 16, 0));
            one(fx, F32X4, 0, d, r);
        });
        for j in n / LANES * LANES..n {
            one(self, F32, (4 * j) as i32, dst, residual);
        }
    }
}
