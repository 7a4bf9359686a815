//! Transposed convolution, 1-D to 3-D, with groups, dilation and output padding, as
//! the scatter it is: each input element adds `x * w` to the outputs its kernel
//! covers. The scatter is arranged per output plane, so tasks never write the same
//! plane, and runs along rows four elements at a time when the stride is 1.

use cnnc_ir::op::ConvTranspose;
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::types::{F32, F32X4};

use super::conv::{epilogue_args, three};
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::LANES;

/// The inputs `i` of an axis whose output `i * stride + k * dilation - pad` is in
/// `0..out`.
fn valid(
    input: usize,
    out: usize,
    stride: usize,
    k: usize,
    dilation: usize,
    pad: usize,
) -> (usize, usize) {
    let off = (k * dilation) as isize - pad as isize;
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let top = out as isize - 1 - off;
    let hi = if top < 0 { 0 } else { top / s + 1 };
    let lo = (lo as usize).min(input);
    (lo, (hi as usize).clamp(lo, input))
}

pub fn emit(cx: &mut KernelCx, c: &ConvTranspose) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let ys = cx.outputs[0].1.shape.clone();
    let (batch, cin, m) = (xs[0], xs[1], ys[1]);
    let input = three(&xs[2..], 1);
    let output = three(&ys[2..], 1);
    let kernel = three(&c.kernel, 1);
    let stride = three(&c.strides, 1);
    let dil = three(&c.dilations, 1);
    let begin: Vec<usize> = c.pads.iter().map(|p| p.0).collect();
    let pad = three(&begin, 0);
    let (cg, mg) = (cin / c.groups, m / c.groups);
    let in_plane: usize = input.iter().product();
    let out_plane: usize = output.iter().product();
    let kk: usize = kernel.iter().product();
    let (x, w, y) = (cx.input(0), cx.input(1), cx.output(0));
    let extra = epilogue_args(cx, &c.epilogue, m)?;
    let own = cx.inputs.len() - c.epilogue.extra_inputs();
    let bias = (own > 2).then(|| cx.input(2));
    let activation = c.epilogue.activation;
    let planes = batch * m;
    let tasks = tasks_for(planes, planes * cg * kk * in_plane);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, plane| {
            let n = fx.b.ins().udiv_imm_u(plane, m as i64);
            let oc = fx.b.ins().urem_imm_u(plane, m as i64);
            let grp = fx.b.ins().udiv_imm_u(oc, mg as i64);
            let mo = fx.b.ins().urem_imm_u(oc, mg as i64);
            let dst = fx.addr(ptrs[y], plane, 4 * out_plane as i64, 0);
            match bias {
                Some(b) => {
                    let at = fx.addr(ptrs[b], oc, 4, 0);
                    let v = fx.load(F32, at, 0);
                    fx.fill_value(dst, out_plane, v);
                }
                None => fx.fill_f32(dst, out_plane, 0.0),
            }
            fx.for_n(cg as u64, |fx, ic| {
                let ci = fx.b.ins().imul_imm_s(grp, cg as i64);
                let ci = fx.b.ins().iadd(ci, ic);
                let img = fx.b.ins().imul_imm_s(n, cin as i64);
                let img = fx.b.ins().iadd(img, ci);
                let src = fx.addr(ptrs[x], img, 4 * in_plane as i64, 0);
                let wrow = fx.b.ins().imul_imm_s(ci, mg as i64);
                let wrow = fx.b.ins().iadd(wrow, mo);
                let wk = fx.addr(ptrs[w], wrow, 4 * kk as i64, 0);
                for kd in 0..kernel[0] {
                    for kh in 0..kernel[1] {
                        for kw in 0..kernel[2] {
                            let k = (kd * kernel[1] + kh) * kernel[2] + kw;
                            let wv = fx.load(F32, wk, (4 * k) as i32);
                            let wvec = fx.b.ins().splat(F32X4, wv);
                            let (d0, d1) =
                                valid(input[0], output[0], stride[0], kd, dil[0], pad[0]);
                            let (h0, h1) =
                                valid(input[1], output[1], stride[1], kh, dil[1], pad[1]);
                            let (w0, w1) =
                                valid(input[2], output[2], stride[2], kw, dil[2], pad[2]);
                            let off = |a: usize, kk: usize| (kk * dil[a]) as i64 - pad[a] as i64;
                            fx.for_n((d1 - d0) as u64, |fx, xd| {
                                let xd = fx.b.ins().iadd_imm_s(xd, d0 as i64);
                                let od = fx.b.ins().imul_imm_s(xd, stride[0] as i64);
                                let od = fx.b.ins().iadd_imm_s(od, off(0, kd));
                                fx.for_n((h1 - h0) as u64, |fx, xh| {
                                    let xh = fx.b.ins().iadd_imm_s(xh, h0 as i64);
                                    let oh = fx.b.ins().imul_imm_s(xh, stride[1] as i64);
                                    let oh = fx.b.ins().iadd_imm_s(oh, off(1, kh));
                                    let in_row = fx.b.ins().imul_imm_s(xd, input[1] as i64);
                                    let in_row = fx.b.ins().iadd(in_row, xh);
                                    let in_row = fx.addr(src, in_row, 4 * input[2] as i64, 0);
                                    let out_row = fx.b.ins().imul_imm_s(od, output[1] as i64);
                                    let out_row = fx.b.ins().iadd(out_row, oh);
                                    let out_row = fx.addr(dst, out_row, 4 * output[2] as i64, 0);
                                    // x[w0 + j] lands on out[(w0 + j) * s + off].
                                    let first = (w0 * stride[2]) as i64 + off(2, kw);
                                    let n = w1 - w0;
                                    let vecs = if stride[2] == 1 { n / LANES } else { 0 };
                                    fx.for_n(vecs as u64, |fx, j| {
                                        let s = fx.addr(in_row, j, 16, 4 * w0 as i64);
                                        let d = fx.addr(out_row, j, 16, 4 * first);
                                        let xv = fx.load(F32X4, s, 0);
                                        let o = fx.load(F32X4, d, 0);
                                        let r = fx.fma(xv, wvec, o);
                                        fx.store(r, d, 0);
                                    });
                                    fx.for_n((n - vecs * LANES) as u64, |fx, j| {
                                        let j = fx.b.ins().iadd_imm_s(j, (vecs * LANES) as i64);
                                        let s = fx.addr(in_row, j, 4, 4 * w0 as i64);
                                        let d =
                                            fx.addr(out_row, j, 4 * stride[2] as i64, 4 * first);
                                        let xv = fx.load(F32, s, 0);
                                        let o = fx.load(F32, d, 0);
                                        let r = fx.fma(xv, wv, o);
                                        fx.store(r, d, 0);
                                    });
                                });
                            });
                        }
                    }
                }
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
