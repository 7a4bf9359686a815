//! Depthwise convolution on plain tensors, 1-D and 2-D, vectorized along the output row.
//!
//! A tile is up to [`VECTORS`] vectors of four consecutive output columns of one plane
//! (or, for the columns left over, single columns): per kernel tap the tap's weight is
//! broadcast and multiplied into every vector of input columns. At stride 2 a vector of
//! input columns is picked out of two overlapping loads with one `shufps`; larger
//! strides go a column at a time. As in the blocked kernels, a row's valid kernel rows
//! are computed once per row and the columns split at compile time into segments that
//! share their valid kernel columns, so padding costs no branch per pixel.

use cnnc_ir::op::{Activation, Conv};
use cranelift_codegen::ir::types::{F32, F32X4, I8X16};
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::conv::{Geometry, epilogue_args};
use super::direct_conv::segments;
use super::{KernelCx, row_blocks, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES, bitcast_flags};

/// Vectors (of four columns) per tile: eight accumulators hide the FMA latency and
/// leave registers for the broadcast weight and the input vectors.
const VECTORS: usize = 8;

/// Run-time bases of one output row of one plane.
struct Row {
    /// Input at the row of the first valid kernel row, column 0 of kernel column 0
    /// (left of the row by the padding).
    x: Value,
    /// The plane's weights at the first valid kernel row.
    w: Value,
    y: Value,
    residual: Option<Value>,
    bias: Value,
    slope: Option<Value>,
    kh_lo: Value,
    kh_hi: Value,
}

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
    /// output column `ow0` on, over the valid kernel rows and the columns `kw`, then
    /// residual, activation and store.
    #[allow(clippy::too_many_arguments)]
    fn row_tile(
        &mut self,
        g: &Geometry,
        r: &Row,
        ow0: Value,
        ty: Type,
        n: usize,
        kw: (usize, usize),
        activation: Option<Activation>,
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
        let bias = splat(self, r.bias);
        let x_step = (4 * g.dilation[1] * g.input[2]) as i64;
        let w_step = (4 * g.kernel[2]) as i64;
        let mut carried = vec![x, r.w];
        carried.extend(std::iter::repeat_n(bias, n));
        let out = self.for_range_carry(r.kh_lo, r.kh_hi, &carried, |fx, _, c| {
            let (px, pw) = (c[0], c[1]);
            let mut acc = c[2..].to_vec();
            for k in kw.0..kw.1 {
                let wk = fx.load_fixed(F32, pw, (4 * k) as i32);
                let wk = splat(fx, wk);
                for (p, a) in acc.iter_mut().enumerate() {
                    let xv = fx.input_columns(px, p * lanes * s + k * d, ty, s);
                    *a = fx.fma(xv, wk, *a);
                }
            }
            let mut next = vec![
                fx.b.ins().iadd_imm_s(px, x_step),
                fx.b.ins().iadd_imm_s(pw, w_step),
            ];
            next.extend(acc);
            next
        });
        let residual = r.residual.map(|res| self.addr(res, ow0, 4, 0));
        let slope = r.slope.map(|sl| splat(self, sl));
        for (p, &a) in out[2..].iter().enumerate() {
            let at = (4 * p * lanes) as i32;
            let mut v = a;
            if let Some(res) = residual {
                let rv = self.load(ty, res, at);
                v = self.b.ins().fadd(v, rv);
            }
            if let Some(act) = activation {
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
        kw: (usize, usize),
        activation: Option<Activation>,
    ) {
        let lanes = if ty == F32 { 1 } else { LANES };
        let (full, rem) = (count / per_tile, count % per_tile);
        if full > 0 {
            self.for_n(full as u64, |fx, t| {
                let ow0 = fx.b.ins().imul_imm_s(t, (per_tile * lanes) as i64);
                let ow0 = fx.b.ins().iadd_imm_s(ow0, start as i64);
                fx.row_tile(g, r, ow0, ty, per_tile, kw, activation);
            });
        }
        if rem > 0 {
            let ow0 = self.iconst((start + full * per_tile * lanes) as i64);
            self.row_tile(g, r, ow0, ty, rem, kw, activation);
        }
    }
}

/// A 1-D or 2-D depthwise convolution of plain tensors (`m` output channels, a whole
/// multiple of the input channels).
pub fn emit(cx: &mut KernelCx, c: &Conv) -> Result<(), CodegenError> {
    let g = Geometry::of(c, &cx.inputs[0].ty.shape, &cx.outputs[0].1.shape);
    let (cin, m) = (g.cin, g.cout);
    let mult = m / cin;
    let [_, ih_n, iw_n] = g.input;
    let [_, oh_n, ow_n] = g.output;
    let taps = g.kernel[1] * g.kernel[2];
    let (x, w, out) = (cx.input(0), cx.input(1), cx.output(0));
    let extra = epilogue_args(cx, &c.epilogue, m)?;
    let own = cx.inputs.len() - c.epilogue.extra_inputs();
    let bias = (own > 2).then(|| cx.input(2));
    let activation = c.epilogue.activation;
    let planes = g.batch * m;
    let macs = planes * oh_n * ow_n * taps;
    let (rows, row_blocks) = row_blocks(planes, oh_n, macs);
    let units = planes * row_blocks;
    let tasks = tasks_for(units, macs);
    let segs = segments(&g);
    let vectors = g.stride[2] <= 2;
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
            let x_p = fx.addr(ptrs[x], img, x_plane, -(4 * g.pad[2] as i64));
            let y_p = fx.addr(ptrs[out], plane, y_plane, 0);
            let r_p = extra.residual.map(|k| fx.addr(ptrs[k], plane, y_plane, 0));
            let w_p = fx.addr(ptrs[w], oc, (4 * taps) as i64, 0);
            let bias = match bias {
                Some(k) => {
                    let at = fx.addr(ptrs[k], oc, 4, 0);
                    fx.load(F32, at, 0)
                }
                None => fx.f32(0.0),
            };
            let slope = extra.slope.map(|k| {
                let at = fx.addr(ptrs[k], oc, 4, 0);
                fx.load(F32, at, 0)
            });
            let r0 = fx.b.ins().imul_imm_s(rb, rows as i64);
            let r1 = fx.b.ins().iadd_imm_s(r0, rows as i64);
            let last = fx.iconst(oh_n as i64);
            let r1 = fx.b.ins().smin(r1, last);
            fx.for_range(r0, r1, |fx, oh| {
                let (kh_lo, kh_hi, ih) = fx.valid_rows(&g, oh);
                let row_y = (4 * ow_n) as i64;
                let r = Row {
                    x: fx.addr(x_p, ih, (4 * iw_n) as i64, 0),
                    w: fx.addr(w_p, kh_lo, (4 * g.kernel[2]) as i64, 0),
                    y: fx.addr(y_p, oh, row_y, 0),
                    residual: r_p.map(|p| fx.addr(p, oh, row_y, 0)),
                    bias,
                    slope,
                    kh_lo,
                    kh_hi,
                };
                for seg in &segs {
                    let vecs = if vectors { seg.len / LANES } else { 0 };
                    fx.row_tiles(&g, &r, seg.start, F32X4, vecs, VECTORS, seg.kw, activation);
                    let start = seg.start + vecs * LANES;
                    let cols = seg.len - vecs * LANES;
                    fx.row_tiles(&g, &r, start, F32, cols, VECTORS, seg.kw, activation);
                }
            });
        });
        Ok(())
    })
}
