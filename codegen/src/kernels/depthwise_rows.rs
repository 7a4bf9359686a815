//! Window ops on plain tensors, 1-D and 2-D, vectorized along the output row: depthwise
//! convolution, max and average pooling.
//!
//! A tile is up to [`VECTORS`] vectors of four consecutive output columns of one plane
//! (or, for the columns left over, single columns): per kernel tap the tap's weight is
//! broadcast and multiplied into every vector of input columns (or the input columns
//! are folded into running maxima or sums; an average then scales by the reciprocal
//! count, per row from a table times per segment a constant). At stride 2 a vector of
//! input columns is picked out of two overlapping loads with one `shufps`; larger
//! strides go a column at a time. As in the blocked kernels, a row's valid kernel rows
//! are computed once per row and the columns split at compile time into segments that
//! share their valid kernel columns, so padding costs no branch per pixel.

use cnnc_ir::op::{Conv, Pool};
use cranelift_codegen::ir::types::{F32, F32X4, I8X16};
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::activation::costly_span;
use super::conv::{Geometry, epilogue_args};
use super::depthwise_blocked::{Avg, Row, Window, pool_window, split_by};
use super::direct_conv::segments;
use super::{KernelCx, row_blocks, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES, bitcast_flags};

/// Vectors (of four columns) per tile: eight accumulators hide the FMA latency and
/// leave registers for the broadcast weight and the input vectors.
const VECTORS: usize = 8;

impl Fx<'_> {
    /// The input columns `col`, `col + stride`, ... (floats from `px`) that one
    /// accumulator of type `ty` reads.
    fn input_columns(&mut self, px: Value, col: usize, ty: Type, stride: usize) -> Value {
        let at = (4 * col) as i32;
        if ty == F32 || stride == 1 {
            return self.load_fixed(ty, px, at);
        }
        // Columns 0, 2 of the first load and 4, 6 (its lanes 1, 3) of the second.
        let a = self.load_fixed(I8X16, px, at);
        let b = self.load_fixed(I8X16, px, at + 12);
        let v = self.shuffle32(a, b, [0, 2, 5, 7]);
        self.b.ins().bitcast(F32X4, bitcast_flags(), v)
    }

    /// `n` accumulators of type `ty` (vectors of four columns, or single columns) from
    /// output column `ow0` on, over the valid kernel rows and the columns `kw` (an
    /// average's `col_count` of them), then the epilogue and the store.
    #[allow(clippy::too_many_arguments)]
    fn row_tile(
        &mut self,
        g: &Geometry,
        r: &Row,
        ow0: Value,
        ty: Type,
        n: usize,
        (kw, col_count): ((usize, usize), f32),
        window: Window,
    ) {
        let lanes = if ty == F32 { 1 } else { LANES };
        let (s, d) = (g.stride[2], g.dilation[2]);
        let splat = |fx: &mut Fx, v: Value| {
            if ty == F32 {
                v
            } else {
                fx.b.ins().splat(F32X4, v)
            }
        };
        let x = self.addr(r.x, ow0, (4 * s) as i64, 0);
        let y = self.addr(r.y, ow0, 4, 0);
        let init = match (window, r.bias) {
            (Window::Max, _) => self.fconst(ty, f32::NEG_INFINITY),
            (Window::Depthwise { .. }, Some(b)) => splat(self, b),
            _ => self.fconst(ty, 0.0),
        };
        let x_step = (4 * g.dilation[1] * g.input[2]) as i64;
        let w_step = (4 * g.kernel[2]) as i64;
        // The pointers after the accumulators (see `Fx::for_range_carry`).
        let mut carried = vec![init; n];
        carried.extend([x, r.w]);
        let out = self.for_range_carry(r.kh_lo, r.kh_hi, &carried, |fx, _, c| {
            let (px, pw) = (c[n], c[n + 1]);
            let mut acc = c[..n].to_vec();
            for k in kw.0..kw.1 {
                let wk = matches!(window, Window::Depthwise { .. }).then(|| {
                    let wk = fx.load_fixed(F32, pw, (4 * k) as i32);
                    splat(fx, wk)
                });
                for (p, a) in acc.iter_mut().enumerate() {
                    let xv = fx.input_columns(px, p * lanes * s + k * d, ty, s);
                    *a = match (wk, window) {
                        (Some(wk), _) => fx.fma(xv, wk, *a),
                        (None, Window::Max) => fx.max_nan(*a, xv),
                        (None, _) => fx.b.ins().fadd(*a, xv),
                    };
                }
            }
            acc.push(fx.b.ins().iadd_imm_s(px, x_step));
            acc.push(fx.b.ins().iadd_imm_s(pw, w_step));
            acc
        });
        let residual = r.residual.map(|res| self.addr(res, ow0, 4, 0));
        let slope = r.slope.map(|sl| splat(self, sl));
        let scale = r.row_scale.map(|sc| {
            let c = self.f32(1.0 / col_count);
            let sc = self.b.ins().fmul(sc, c);
            splat(self, sc)
        });
        for (p, &a) in out[..n].iter().enumerate() {
            let at = (4 * p * lanes) as i32;
            let mut v = a;
            if let Some(sc) = scale {
                v = self.b.ins().fmul(v, sc);
            }
            if let Some(res) = residual {
                let rv = self.load(ty, res, at);
                v = self.b.ins().fadd(v, rv);
            }
            if let Window::Depthwise {
                activation: Some(act),
            } = window
            {
                v = self.activate(act, v, slope);
            }
            self.store(v, y, at);
        }
    }

    /// Tiles of `n` accumulators of `ty` over `count` of them from column `start`:
    /// a loop of full tiles of `per_tile`, then one narrower tile.
    #[allow(clippy::too_many_arguments)]
    fn row_tiles(
        &mut self,
        g: &Geometry,
        r: &Row,
        start: usize,
        ty: Type,
        count: usize,
        per_tile: usize,
        cols: ((usize, usize), f32),
        window: Window,
    ) {
        let lanes = if ty == F32 { 1 } else { LANES };
        let (full, rem) = (count / per_tile, count % per_tile);
        if full > 0 {
            self.for_n(full as u64, |fx, t| {
                let ow0 = fx.b.ins().imul_imm_s(t, (per_tile * lanes) as i64);
                let ow0 = fx.b.ins().iadd_imm_s(ow0, start as i64);
                fx.row_tile(g, r, ow0, ty, per_tile, cols, window);
            });
        }
        if rem > 0 {
            let ow0 = self.iconst((start + full * per_tile * lanes) as i64);
            self.row_tile(g, r, ow0, ty, rem, cols, window);
        }
    }
}

/// A 1-D or 2-D depthwise convolution of plain tensors (`m` output channels, a whole
/// multiple of the input channels).
pub fn emit(cx: &mut KernelCx, c: &Conv) -> Result<(), CodegenError> {
    let g = Geometry::of(c, &cx.inputs[0].ty.shape, &cx.outputs[0].1.shape);
    let (x, w, out) = (cx.input(0), cx.input(1), cx.output(0));
    let extra = epilogue_args(cx, &c.epilogue, g.cout)?;
    let own = cx.inputs.len() - c.epilogue.extra_inputs();
    let bias = (own > 2).then(|| cx.input(2));
    let window = Window::Depthwise {
        activation: c.epilogue.activation,
    };
    let args = Args {
        x,
        w: Some(w),
        out,
        bias,
        residual: extra.residual,
        slope: extra.slope,
    };
    emit_rows(cx, &g, window, args, None)
}

/// 1-D or 2-D max or average pooling of a plain tensor.
pub fn pool(cx: &mut KernelCx, p: &Pool) -> Result<(), CodegenError> {
    let (g, window, avg) = pool_window(cx, p);
    let args = Args {
        x: cx.input(0),
        w: None,
        out: cx.output(0),
        bias: None,
        residual: None,
        slope: None,
    };
    emit_rows(cx, &g, window, args, avg)
}

/// Argument slots of a window op: input, weights, output, bias, residual, PRelu slope.
struct Args {
    x: usize,
    w: Option<usize>,
    out: usize,
    bias: Option<usize>,
    residual: Option<usize>,
    slope: Option<usize>,
}

fn emit_rows(
    cx: &mut KernelCx,
    g: &Geometry,
    window: Window,
    a: Args,
    avg: Option<Avg>,
) -> Result<(), CodegenError> {
    let g = *g;
    let (cin, m) = (g.cin, g.cout);
    let mult = m / cin;
    let [_, ih_n, iw_n] = g.input;
    let [_, oh_n, ow_n] = g.output;
    let taps = g.kernel[1] * g.kernel[2];
    let planes = g.batch * m;
    let macs = planes * oh_n * ow_n * taps;
    let (rows, row_blocks) = row_blocks(planes, oh_n, macs);
    let units = planes * row_blocks;
    let tasks = tasks_for(units, macs);
    let segs = match &avg {
        Some(avg) => split_by(segments(&g), &avg.cols),
        None => segments(&g),
    };
    let vectors = g.stride[2] <= 2;
    // A costly activation runs on each finished row: its vectors by the span function,
    // four side by side, the last columns one by one.
    let (window, costly) = match window {
        Window::Depthwise {
            activation: Some(act),
        } => match costly_span(cx, Some(act))? {
            Some(span) => (Window::Depthwise { activation: None }, Some((act, span))),
            None => (window, None),
        },
        w => (w, None),
    };
    let (x_plane, y_plane) = ((4 * ih_n * iw_n) as i64, (4 * oh_n * ow_n) as i64);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, units, tasks);
        fx.for_range(lo, hi, |fx, u| {
            let rb = fx.b.ins().urem_imm_u(u, row_blocks as i64);
            let plane = fx.b.ins().udiv_imm_u(u, row_blocks as i64);
            // Output plane (n, oc) reads input plane (n, oc / mult).
            let n = fx.b.ins().udiv_imm_u(plane, m as i64);
            let oc = fx.b.ins().urem_imm_u(plane, m as i64);
            let ic = fx.b.ins().udiv_imm_u(oc, mult as i64);
            let img = fx.b.ins().imul_imm_s(n, cin as i64);
            let img = fx.b.ins().iadd(img, ic);
            let x_p = fx.addr(ptrs[a.x], img, x_plane, -(4 * g.pad[2] as i64));
            let y_p = fx.addr(ptrs[a.out], plane, y_plane, 0);
            let r_p = a.residual.map(|k| fx.addr(ptrs[k], plane, y_plane, 0));
            // A pool has no weights; its (unused) weight pointer is the input's.
            let w_p = fx.addr(ptrs[a.w.unwrap_or(a.x)], oc, (4 * taps) as i64, 0);
            let per_channel = |fx: &mut Fx, k: usize| {
                let at = fx.addr(ptrs[k], oc, 4, 0);
                fx.load(F32, at, 0)
            };
            let bias = a.bias.map(|k| per_channel(fx, k));
            let slope = a.slope.map(|k| per_channel(fx, k));
            let r0 = fx.b.ins().imul_imm_s(rb, rows as i64);
            let r1 = fx.b.ins().iadd_imm_s(r0, rows as i64);
            let last = fx.iconst(oh_n as i64);
            let r1 = fx.b.ins().smin(r1, last);
            fx.for_range(r0, r1, |fx, oh| {
                let (kh_lo, kh_hi, ih) = fx.valid_taps(&g, 1, oh);
                let row_y = (4 * ow_n) as i64;
                let r = Row {
                    x: fx.addr(x_p, ih, (4 * iw_n) as i64, 0),
                    w: fx.addr(w_p, kh_lo, (4 * g.kernel[2]) as i64, 0),
                    y: fx.addr(y_p, oh, row_y, 0),
                    residual: r_p.map(|p| fx.addr(p, oh, row_y, 0)),
                    bias,
                    slope,
                    row_scale: avg.as_ref().map(|avg| {
                        let at = fx.addr(ptrs[avg.rows], oh, 4, 0);
                        fx.load(F32, at, 0)
                    }),
                    kh_lo,
                    kh_hi,
                    kd: None,
                };
                for seg in &segs {
                    let count = avg.as_ref().map_or(1.0, |avg| avg.cols[seg.start]);
                    let cols = (seg.taps, count);
                    let vecs = if vectors { seg.len / LANES } else { 0 };
                    fx.row_tiles(&g, &r, seg.start, F32X4, vecs, VECTORS, cols, window);
                    let start = seg.start + vecs * LANES;
                    let rest = seg.len - vecs * LANES;
                    fx.row_tiles(&g, &r, start, F32, rest, VECTORS, cols, window);
                }
                if let Some((act, span)) = costly {
                    let count = fx.iconst((ow_n / LANES) as i64);
                    fx.call_span(span, r.y, r.y, count);
                    for j in ow_n / LANES * LANES..ow_n {
                        let v = fx.load(F32, r.y, (4 * j) as i32);
                        let v = fx.activate(act, v, None);
                        fx.store(v, r.y, (4 * j) as i32);
                    }
                }
            });
        });
        Ok(())
    })
}
