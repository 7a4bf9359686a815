//! Transposed convolution, 1-D to 3-D, with groups, dilation and output padding, as
//! the scatter it is: each input element adds `x * w` to the outputs its kernel
//! covers. The scatter is arranged per output plane, so tasks never write the same
//! plane, and runs along rows four elements at a time when the stride is 1.
//!
//! With constant weights the `conv_transpose_gemm` pass makes the multiply-adds a
//! pointwise convolution and leaves the scatter of its columns to [`col2im`], the same
//! loops adding each column plane as it is; on blocked tensors a plane is a block of
//! channels and every element one vector, so the scatter is vectorized at any stride.

use cnnc_ir::Layout;
use cnnc_ir::op::ConvTranspose;
use cranelift_codegen::ir::types::{F32, F32X4};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::conv::{epilogue_args, three};
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

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

/// A transposed convolution's axes, padded to three (d, h, w).
struct Axes {
    input: [usize; 3],
    output: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    dil: [usize; 3],
    pad: [usize; 3],
}

impl Axes {
    fn of(c: &ConvTranspose, xs: &[usize], ys: &[usize]) -> Self {
        let begin: Vec<usize> = c.pads.iter().map(|p| p.0).collect();
        Axes {
            input: three(&xs[2..], 1),
            output: three(&ys[2..], 1),
            kernel: three(&c.kernel, 1),
            stride: three(&c.strides, 1),
            dil: three(&c.dilations, 1),
            pad: three(&begin, 0),
        }
    }

    fn in_plane(&self) -> usize {
        self.input.iter().product()
    }

    fn out_plane(&self) -> usize {
        self.output.iter().product()
    }

    fn taps(&self) -> usize {
        self.kernel.iter().product()
    }
}

/// How a plane's elements are stored: one float each, or (blocked) one vector of a
/// block's channels.
#[derive(Clone, Copy, PartialEq)]
enum Elements {
    Floats,
    Vectors,
}

impl Elements {
    fn lanes(self) -> usize {
        match self {
            Elements::Floats => 1,
            Elements::Vectors => LANES,
        }
    }
}

impl Fx<'_> {
    /// Adds the input plane at `src`, times `weight` (a scalar) when there is one, to
    /// the output plane at `dst` at the positions kernel tap `k` moves it to. Planes of
    /// floats go four at a time along rows at stride 1; planes of vectors a vector at
    /// a time at any stride.
    #[allow(clippy::too_many_arguments)]
    fn scatter_tap(
        &mut self,
        a: &Axes,
        elements: Elements,
        src: Value,
        dst: Value,
        k: [usize; 3],
        weight: Option<Value>,
    ) {
        let elem = 4 * elements.lanes() as i64;
        let wvec = weight.map(|w| self.b.ins().splat(F32X4, w));
        let [(d0, d1), (h0, h1), (w0, w1)] = std::array::from_fn(|i| {
            valid(
                a.input[i],
                a.output[i],
                a.stride[i],
                k[i],
                a.dil[i],
                a.pad[i],
            )
        });
        let off = |i: usize| (k[i] * a.dil[i]) as i64 - a.pad[i] as i64;
        self.for_n((d1 - d0) as u64, |fx, xd| {
            let xd = fx.b.ins().iadd_imm_s(xd, d0 as i64);
            let od = fx.b.ins().imul_imm_s(xd, a.stride[0] as i64);
            let od = fx.b.ins().iadd_imm_s(od, off(0));
            fx.for_n((h1 - h0) as u64, |fx, xh| {
                let xh = fx.b.ins().iadd_imm_s(xh, h0 as i64);
                let oh = fx.b.ins().imul_imm_s(xh, a.stride[1] as i64);
                let oh = fx.b.ins().iadd_imm_s(oh, off(1));
                let in_row = fx.b.ins().imul_imm_s(xd, a.input[1] as i64);
                let in_row = fx.b.ins().iadd(in_row, xh);
                let in_row = fx.addr(src, in_row, elem * a.input[2] as i64, 0);
                let out_row = fx.b.ins().imul_imm_s(od, a.output[1] as i64);
                let out_row = fx.b.ins().iadd(out_row, oh);
                let out_row = fx.addr(dst, out_row, elem * a.output[2] as i64, 0);
                // x[w0 + j] lands on out[(w0 + j) * s + off].
                let first = (w0 * a.stride[2]) as i64 + off(2);
                let n = w1 - w0;
                if elements == Elements::Vectors {
                    fx.for_n(n as u64, |fx, j| {
                        let s = fx.addr(in_row, j, 16, 16 * w0 as i64);
                        let d = fx.addr(out_row, j, 16 * a.stride[2] as i64, 16 * first);
                        let xv = fx.load(F32X4, s, 0);
                        let o = fx.load(F32X4, d, 0);
                        let r = fx.b.ins().fadd(o, xv);
                        fx.store(r, d, 0);
                    });
                    return;
                }
                let vecs = if a.stride[2] == 1 { n / LANES } else { 0 };
                fx.for_n(vecs as u64, |fx, j| {
                    let s = fx.addr(in_row, j, 16, 4 * w0 as i64);
                    let d = fx.addr(out_row, j, 16, 4 * first);
                    let xv = fx.load(F32X4, s, 0);
                    let o = fx.load(F32X4, d, 0);
                    let r = match wvec {
                        Some(wv) => fx.fma(xv, wv, o),
                        None => fx.b.ins().fadd(o, xv),
                    };
                    fx.store(r, d, 0);
                });
                fx.for_n((n - vecs * LANES) as u64, |fx, j| {
                    let j = fx.b.ins().iadd_imm_s(j, (vecs * LANES) as i64);
                    let s = fx.addr(in_row, j, 4, 4 * w0 as i64);
                    let d = fx.addr(out_row, j, 4 * a.stride[2] as i64, 4 * first);
                    let xv = fx.load(F32, s, 0);
                    let o = fx.load(F32, d, 0);
                    let r = match weight {
                        Some(wv) => fx.fma(xv, wv, o),
                        None => fx.b.ins().fadd(o, xv),
                    };
                    fx.store(r, d, 0);
                });
            });
        });
    }
}

/// A transposed convolution's output planes (`n * m` of them, or `n * m / LANES`
/// blocks of `elements`; from the input at `own`: data then an optional bias), each
/// filled with its bias, scattered into by `body(fx, ptrs, plane, channel, dst)` (the
/// channel or block of the image), then given the epilogue.
fn per_plane(
    cx: &mut KernelCx,
    c: &ConvTranspose,
    (a, elements): (&Axes, Elements),
    own: usize,
    work: usize,
    body: impl Fn(&mut Fx, &[Value], Value, Value, Value),
) -> Result<(), CodegenError> {
    let (batch, m) = (cx.outputs[0].1.shape[0], cx.outputs[0].1.shape[1]);
    let lanes = elements.lanes();
    let (ty, elem) = if lanes == 1 { (F32, 4) } else { (F32X4, 16) };
    let out_plane = a.out_plane();
    let y = cx.output(0);
    let extra = epilogue_args(cx, &c.epilogue, m)?;
    let bias = (cx.inputs.len() - c.epilogue.extra_inputs() > own).then(|| cx.input(own));
    let activation = c.epilogue.activation;
    let channels = m / lanes;
    let planes = batch * channels;
    let plane_bytes = elem * out_plane as i64;
    let tasks = tasks_for(planes, work);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, plane| {
            let oc = fx.b.ins().urem_imm_u(plane, channels as i64);
            let dst = fx.addr(ptrs[y], plane, plane_bytes, 0);
            let per_channel = |fx: &mut Fx, p: Option<usize>| {
                p.map(|p| {
                    let at = fx.addr(ptrs[p], oc, elem, 0);
                    fx.load(ty, at, 0)
                })
            };
            match (elements, per_channel(fx, bias)) {
                (Elements::Floats, Some(b)) => fx.fill_value(dst, out_plane, b),
                (_, None) => fx.fill_f32(dst, out_plane * lanes, 0.0),
                (Elements::Vectors, Some(b)) => fx.for_n(out_plane as u64, |fx, i| {
                    let d = fx.addr(dst, i, 16, 0);
                    fx.store(b, d, 0);
                }),
            }
            body(fx, ptrs, plane, oc, dst);
            if !c.epilogue.is_empty() {
                let residual = extra
                    .residual
                    .map(|k| fx.addr(ptrs[k], plane, plane_bytes, 0));
                let slope = per_channel(fx, extra.slope);
                fx.epilogue_run(dst, out_plane * lanes, residual, activation, slope);
            }
        });
        Ok(())
    })
}

/// Every kernel tap `[kd, kh, kw]` with its row-major index.
fn taps(a: &Axes) -> impl Iterator<Item = (usize, [usize; 3])> + '_ {
    let [kd, kh, kw] = a.kernel;
    (0..kd * kh * kw).map(move |k| (k, [k / (kh * kw), k / kw % kh, k % kw]))
}

pub fn emit(cx: &mut KernelCx, c: &ConvTranspose) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let ys = cx.outputs[0].1.shape.clone();
    let (cin, m) = (xs[1], ys[1]);
    let a = Axes::of(c, &xs, &ys);
    let (cg, mg) = (cin / c.groups, m / c.groups);
    let (in_plane, kk) = (a.in_plane(), a.taps());
    let (x, w) = (cx.input(0), cx.input(1));
    let work = xs[0] * m * cg * kk * in_plane;
    per_plane(
        cx,
        c,
        (&a, Elements::Floats),
        2,
        work,
        |fx, ptrs, plane, oc, dst| {
            let n = fx.b.ins().udiv_imm_u(plane, m as i64);
            let grp = fx.b.ins().udiv_imm_u(oc, mg as i64);
            let mo = fx.b.ins().urem_imm_u(oc, mg as i64);
            fx.for_n(cg as u64, |fx, ic| {
                let ci = fx.b.ins().imul_imm_s(grp, cg as i64);
                let ci = fx.b.ins().iadd(ci, ic);
                let img = fx.b.ins().imul_imm_s(n, cin as i64);
                let img = fx.b.ins().iadd(img, ci);
                let src = fx.addr(ptrs[x], img, 4 * in_plane as i64, 0);
                let wrow = fx.b.ins().imul_imm_s(ci, mg as i64);
                let wrow = fx.b.ins().iadd(wrow, mo);
                let wk = fx.addr(ptrs[w], wrow, 4 * kk as i64, 0);
                for (k, tap) in taps(&a) {
                    let wv = fx.load(F32, wk, (4 * k) as i32);
                    fx.scatter_tap(&a, Elements::Floats, src, dst, tap, Some(wv));
                }
            });
        },
    )
}

/// `Op::Col2Im`: output plane `(n, g, m)` adds up the column planes `(n, (g * K + k) *
/// M/groups + m)`; blocked, a block of `LANES` output channels (whole blocks per
/// group) adds up the column blocks of the same channels of each tap.
pub fn col2im(cx: &mut KernelCx, c: &ConvTranspose) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let ys = cx.outputs[0].1.shape.clone();
    let a = Axes::of(c, &xs, &ys);
    let (in_plane, kk, m) = (a.in_plane(), a.taps(), ys[1]);
    let elements = match cx.inputs[0].ty.layout {
        Layout::Plain => Elements::Floats,
        Layout::Blocked { block }
            if block as usize == LANES && (m / c.groups).is_multiple_of(LANES) =>
        {
            Elements::Vectors
        }
        Layout::Blocked { block } => {
            return Err(CodegenError::Unsupported(format!(
                "col2im on blocks of {block} with {} output channels in {} groups",
                m, c.groups
            )));
        }
    };
    let lanes = elements.lanes();
    // Planes (channels, or blocks of them) per group, per image, and bytes per plane.
    let (mg, image) = (m / c.groups / lanes, m * kk / lanes);
    let bytes = (4 * lanes * in_plane) as i64;
    let cols = cx.input(0);
    let work = xs[0] * xs[1] * in_plane;
    per_plane(
        cx,
        c,
        (&a, elements),
        1,
        work,
        |fx, ptrs, plane, ch, dst| {
            let n = fx.b.ins().udiv_imm_u(plane, (m / lanes) as i64);
            let grp = fx.b.ins().udiv_imm_u(ch, mg as i64);
            let mo = fx.b.ins().urem_imm_u(ch, mg as i64);
            // Column plane (n, (grp * K + k) * mg + mo) for k = 0.
            let first = fx.b.ins().imul_imm_s(grp, (kk * mg) as i64);
            let first = fx.b.ins().iadd(first, mo);
            let img = fx.b.ins().imul_imm_s(n, image as i64);
            let first = fx.b.ins().iadd(first, img);
            let src0 = fx.addr(ptrs[cols], first, bytes, 0);
            for (k, tap) in taps(&a) {
                let src = fx.add(src0, k as i64 * mg as i64 * bytes);
                fx.scatter_tap(&a, elements, src, dst, tap, None);
            }
        },
    )
}
