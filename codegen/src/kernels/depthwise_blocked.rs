//! Window ops on blocked-channel tensors (NC[D]HWc, one vector of channels per block,
//! one output channel per input channel), 2-D and 3-D: depthwise convolution, max and
//! average pooling, vectorized over the channel block, register-blocked along the
//! output row. A 3-D op's output rows are its planes' rows, depth-major, and a tile
//! runs the kernel rows of each valid kernel plane.
//!
//! A tile is `wt` output pixels of one row and one channel block: per kernel tap one
//! weight vector (packed at compile time as `[block][kd][kh][kw][4]`) multiplies the `wt`
//! input vectors into `wt` accumulators, or the input vectors are folded into running
//! maxima, or summed (an average then scales by the reciprocal of its count, per row
//! from a table times per segment a constant). As in the direct convolution, a row's valid
//! kernel rows are computed once per row and the columns split at compile time into
//! segments sharing their valid kernel columns, so padding costs no branch per pixel.

use cnnc_ir::op::{Activation, Conv, Pool, PoolKind};
use cnnc_ir::window::Segment;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::activation::costly_span;
use super::conv::{Geometry, epilogue_args, three};
use super::direct_conv::segments;
use super::pool::axis_tables;
use super::{KernelCx, row_blocks, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

/// Output pixels per tile: eight accumulators hide the FMA latency, and with the
/// weight and its copy leave room in the sixteen vector registers.
const PIXELS: usize = 8;

/// The weights `[C, 1, kd, kh, kw]` (`kd` absent in 2-D) as `[C/4][kd][kh][kw][4]`.
fn pack(w: &[f32], channels: usize, taps: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(channels * taps);
    for block in 0..channels / LANES {
        for t in 0..taps {
            for lane in 0..LANES {
                out.push(w[(block * LANES + lane) * taps + t]);
            }
        }
    }
    out
}

/// What a window computes.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Window {
    /// Weighted sum plus bias and epilogue (depthwise convolution).
    Depthwise { activation: Option<Activation> },
    /// Maximum (NaN-propagating) of the valid taps.
    Max,
    /// Sum of the taps times the reciprocal of their count.
    Avg,
}

/// The run-time bases of one output row of a window op, of one channel block here and
/// of one plane in `depthwise_rows.rs`.
pub(super) struct Row {
    /// Input at the row of the first valid kernel row, column 0 of kernel column 0
    /// (left of the row by the padding).
    pub x: Value,
    /// Weights at the first valid kernel row (a pool's: unused, the input).
    pub w: Value,
    pub y: Value,
    pub residual: Option<Value>,
    /// The bias and PRelu slope: a pointer to the block's vector here, the plane's
    /// value in `depthwise_rows.rs`.
    pub bias: Option<Value>,
    pub slope: Option<Value>,
    /// An average's reciprocal count of the row's valid kernel rows (and planes, in
    /// 3-D; a scalar).
    pub row_scale: Option<Value>,
    pub kh_lo: Value,
    pub kh_hi: Value,
    /// A 3-D op's valid kernel planes (`x` and `w` are at the first one's).
    pub kd: Option<(Value, Value)>,
}

/// How a tile walks the kernel rows of its output row.
#[derive(Clone, Copy, PartialEq)]
enum KernelRows {
    /// The row's valid ones (`Row::kh_lo..Row::kh_hi`, padding cuts the others), in a
    /// loop.
    Valid,
    /// All of them (the row reaches no padding), unrolled: each kernel row's loads are
    /// instructions of their own. Looping, one load instruction walks the input rows
    /// in turn, each a stream of its own: the hardware prefetcher, which follows the
    /// stride of each instruction's addresses, then falls behind, and a max pool 2x2/2
    /// of 64 channels at 224x224 reading from L3 ran twice as long (0.58-0.64 ms
    /// against 0.30-0.34). Pools only: unrolled, a depthwise convolution's FMAs
    /// came out of Cranelift in one dependent chain per accumulator, its weights loaded
    /// again for each (MobileNet-v2's depthwise layers 0.70 -> 0.90 ms).
    All,
}

impl Fx<'_> {
    /// The taps of kernel columns `kw` of one kernel row into the accumulators `acc`:
    /// the input row at `px + x_off` bytes, the row's weights at `pw + w_off`.
    #[allow(clippy::too_many_arguments)]
    fn window_row(
        &mut self,
        g: &Geometry,
        window: Window,
        kw: (usize, usize),
        (px, x_off): (Value, i64),
        (pw, w_off): (Value, i64),
        acc: &mut [Value],
    ) {
        for k in kw.0..kw.1 {
            let wv = matches!(window, Window::Depthwise { .. })
                .then(|| self.load_fixed(F32X4, pw, (w_off + 16 * k as i64) as i32));
            for (p, a) in acc.iter_mut().enumerate() {
                let col = p * g.stride[2] + k * g.dilation[2];
                let xv = self.load_fixed(F32X4, px, (x_off + 16 * col as i64) as i32);
                *a = match (wv, window) {
                    (Some(wv), _) => self.fma(xv, wv, *a),
                    (None, Window::Max) => self.max_nan(*a, xv),
                    (None, _) => self.b.ins().fadd(*a, xv),
                };
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn depthwise_tile(
        &mut self,
        g: &Geometry,
        r: &Row,
        ow0: Value,
        wt: usize,
        (kw, kernel_rows): ((usize, usize), KernelRows),
        window: Window,
        col_count: f32,
    ) {
        let x = self.addr(r.x, ow0, (16 * g.stride[2]) as i64, 0);
        let y = self.addr(r.y, ow0, 16, 0);
        let init: Vec<Value> = (0..wt)
            .map(|_| match (window, r.bias) {
                (Window::Max, _) => self.splat_const(f32::NEG_INFINITY),
                (Window::Depthwise { .. }, Some(b)) => self.load(F32X4, b, 0),
                _ => self.splat_const(0.0),
            })
            .collect();
        let x_step = (g.dilation[1] * g.input[2] * 16) as i64;
        let w_step = (g.kernel[2] * 16) as i64;
        let x_plane_step = (g.dilation[0] * g.input[1] * g.input[2] * 16) as i64;
        let w_plane_step = (g.kernel[1] * g.kernel[2] * 16) as i64;
        // The pointers after the accumulators (see `Fx::for_range_carry`).
        let mut carried = init;
        carried.extend([x, r.w]);
        let rows = |fx: &mut Fx, c: &[Value]| match kernel_rows {
            KernelRows::All => {
                let (px, pw) = (c[wt], c[wt + 1]);
                let mut acc = c[..wt].to_vec();
                for kh in 0..g.kernel[1] as i64 {
                    let (xo, wo) = (kh * x_step, kh * w_step);
                    fx.window_row(g, window, kw, (px, xo), (pw, wo), &mut acc);
                }
                acc.extend([px, pw]);
                acc
            }
            KernelRows::Valid => fx.for_range_carry(r.kh_lo, r.kh_hi, c, |fx, _, c| {
                let (px, pw) = (c[wt], c[wt + 1]);
                let mut acc = c[..wt].to_vec();
                fx.window_row(g, window, kw, (px, 0), (pw, 0), &mut acc);
                acc.push(fx.b.ins().iadd_imm_s(px, x_step));
                acc.push(fx.b.ins().iadd_imm_s(pw, w_step));
                acc
            }),
        };
        let out = match r.kd {
            None => rows(self, &carried),
            Some((kd_lo, kd_hi)) => self.for_range_carry(kd_lo, kd_hi, &carried, |fx, _, c| {
                let mut next = rows(fx, c);
                next[wt] = fx.b.ins().iadd_imm_s(c[wt], x_plane_step);
                next[wt + 1] = fx.b.ins().iadd_imm_s(c[wt + 1], w_plane_step);
                next
            }),
        };
        let residual = r.residual.map(|res| self.addr(res, ow0, 16, 0));
        let slope = r.slope.map(|s| self.load(F32X4, s, 0));
        let scale = r.row_scale.map(|s| {
            let c = self.f32(1.0 / col_count);
            let s = self.b.ins().fmul(s, c);
            self.b.ins().splat(F32X4, s)
        });
        for (p, &a) in out[..wt].iter().enumerate() {
            let mut v = a;
            if let Some(scale) = scale {
                v = self.b.ins().fmul(v, scale);
            }
            if let Some(res) = residual {
                let rv = self.load(F32X4, res, (16 * p) as i32);
                v = self.b.ins().fadd(v, rv);
            }
            if let Window::Depthwise {
                activation: Some(act),
            } = window
            {
                v = self.activate(act, v, slope);
            }
            self.store(v, y, (16 * p) as i32);
        }
    }
}

pub fn emit(cx: &mut KernelCx, c: &Conv, block: usize) -> Result<(), CodegenError> {
    let g = Geometry::of(c, &cx.inputs[0].ty.shape, &cx.outputs[0].1.shape);
    let spatial = c.kernel.len();
    if block != LANES
        || !(2..=3).contains(&spatial)
        || g.cin != g.cout
        || !g.cout.is_multiple_of(LANES)
    {
        return Err(CodegenError::Unsupported(format!(
            "a blocked depthwise convolution needs 2-D or 3-D, blocks of {LANES}, one output channel per input channel in whole blocks ({} to {} channels, block {block})",
            g.cin, g.cout
        )));
    }
    let Some(weights) = cx.inputs[1].constant else {
        return Err(CodegenError::Unsupported(
            "a blocked depthwise convolution needs constant weights".into(),
        ));
    };
    let taps: usize = g.kernel.iter().product();
    let packed = pack(&weights.view::<f32>()?, g.cout, taps);
    let (x, out) = (cx.input(0), cx.output(0));
    let w = cx.table(packed);
    let extra = epilogue_args(cx, &c.epilogue, g.cout)?;
    let own = cx.inputs.len() - c.epilogue.extra_inputs();
    let bias = (own > 2).then(|| cx.input(2));
    let window = Window::Depthwise {
        activation: c.epilogue.activation,
    };
    emit_window(
        cx,
        &g,
        window,
        (x, out, Some(w)),
        (bias, extra.residual, extra.slope),
        None,
    )
}

/// 2-D or 3-D max or average pooling of a blocked tensor.
pub fn pool(cx: &mut KernelCx, p: &Pool) -> Result<(), CodegenError> {
    let (g, window, avg) = pool_window(cx, p);
    let (x, out) = (cx.input(0), cx.output(0));
    emit_window(cx, &g, window, (x, out, None), (None, None, None), avg)
}

/// A 1-D to 3-D pool as a window op: its geometry (one group per channel), and for an
/// average its divisors, the reciprocal counts of the output rows (depth-major, the
/// product of the plane's and the row's counts) as a table.
pub(super) fn pool_window(cx: &mut KernelCx, p: &Pool) -> (Geometry, Window, Option<Avg>) {
    let (xs, ys) = (&cx.inputs[0].ty.shape, &cx.outputs[0].1.shape);
    let begin: Vec<usize> = p.pads.iter().map(|p| p.0).collect();
    let g = Geometry {
        batch: xs[0],
        cin: xs[1],
        cout: xs[1],
        groups: xs[1],
        input: three(&xs[2..], 1),
        output: three(&ys[2..], 1),
        kernel: three(&p.kernel, 1),
        stride: three(&p.strides, 1),
        dilation: three(&p.dilations, 1),
        pad: three(&begin, 0),
    };
    let PoolKind::Avg { count_include_pad } = p.kind else {
        return (g, Window::Max, None);
    };
    // The count an output divides by is the product of its row's and column's.
    let mut pads = [(0, 0); 3];
    pads[3 - p.pads.len()..].copy_from_slice(&p.pads);
    let axis = |a: usize| {
        axis_tables(
            g.input[a],
            g.output[a],
            g.kernel[a],
            g.stride[a],
            g.dilation[a],
            pads[a],
            count_include_pad,
        )
        .count
    };
    let (planes, rows) = (axis(0), axis(1));
    let rows: Vec<f32> = planes
        .iter()
        .flat_map(|d| rows.iter().map(move |h| 1.0 / (d * h)))
        .collect();
    let cols = axis(2);
    let rows = cx.table(rows);
    (g, Window::Avg, Some(Avg { rows, cols }))
}

/// An average pool's divisors: a table of the rows' reciprocal counts (an argument
/// slot) and the columns' counts.
pub(super) struct Avg {
    pub rows: usize,
    pub cols: Vec<f32>,
}

/// `segs` split further where `key` (per output column) changes.
pub(super) fn split_by(segs: Vec<Segment>, key: &[f32]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for seg in segs {
        for ow in seg.start..seg.start + seg.len {
            match out.last_mut() {
                Some(s)
                    if s.taps == seg.taps && s.start + s.len == ow && key[s.start] == key[ow] =>
                {
                    s.len += 1
                }
                _ => out.push(Segment {
                    start: ow,
                    len: 1,
                    taps: seg.taps,
                }),
            }
        }
    }
    out
}

/// The launch of a window op: argument slots of the input, output and packed weights,
/// then of the bias, residual and PRelu slope; an average pool's divisors.
fn emit_window(
    cx: &mut KernelCx,
    g: &Geometry,
    window: Window,
    (x, out, w): (usize, usize, Option<usize>),
    (bias, residual, slope): (Option<usize>, Option<usize>, Option<usize>),
    avg: Option<Avg>,
) -> Result<(), CodegenError> {
    let g = *g;
    let taps: usize = g.kernel.iter().product();

    let [id_n, ih_n, iw_n] = g.input;
    let [od_n, oh_n, ow_n] = g.output;
    let out_rows = od_n * oh_n;
    let blocks = g.batch * g.cout / LANES;
    let x_plane = (ih_n * iw_n * 16) as i64;
    let x_block = id_n as i64 * x_plane;
    let y_block = (out_rows * ow_n * 16) as i64;
    let macs = g.batch * g.cout * out_rows * ow_n * taps;
    // A loop over kernel planes where there are several or the depth padding is
    // reached (a 1-deep window padded in depth); else the one plane is an offset (2-D).
    let planes = g.kernel[0] > 1 || !g.all_taps(0);
    // Units: blocks of rows of one channel block, enough for every task.
    let (rows, row_blocks) = row_blocks(blocks, out_rows, macs);
    let units = blocks * row_blocks;
    let tasks = tasks_for(units, macs);
    let segs = match &avg {
        Some(a) => split_by(segments(&g), &a.cols),
        None => segments(&g),
    };
    let channel_blocks = g.cout / LANES;
    // A costly activation runs on each finished row, by its span function.
    let span = match window {
        Window::Depthwise { activation } => costly_span(cx, activation)?,
        _ => None,
    };
    let window = match window {
        Window::Depthwise { .. } if span.is_some() => Window::Depthwise { activation: None },
        w => w,
    };
    // Whether the output rows that reach no padding take unrolled kernel rows: all
    // of them (`Some(true)`), those found so at run time (`Some(false)`), or none.
    let interior = g.interior(1);
    let last_row = (g.kernel[1] - 1) * g.dilation[1] * iw_n * 16;
    let pool = matches!(window, Window::Max | Window::Avg);
    let unrolled_rows = (pool && !interior.is_empty() && last_row < i32::MAX as usize / 2)
        .then_some(interior.len() == oh_n);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, units, tasks);
        fx.for_range(lo, hi, |fx, u| {
            let rb = fx.b.ins().urem_imm_u(u, row_blocks as i64);
            let nb = fx.b.ins().udiv_imm_u(u, row_blocks as i64);
            // The channel block within its image, for the per-channel tables.
            let cb = fx.b.ins().urem_imm_u(nb, channel_blocks as i64);
            let x_b = fx.addr(ptrs[x], nb, x_block, -(16 * g.pad[2] as i64));
            let y_b = fx.addr(ptrs[out], nb, y_block, 0);
            let r_b = residual.map(|k| fx.addr(ptrs[k], nb, y_block, 0));
            // Max pooling has no weights; its (unused) weight pointer is the input's.
            let w_b = fx.addr(ptrs[w.unwrap_or(x)], cb, (taps * 16) as i64, 0);
            let bias_b = bias.map(|k| fx.addr(ptrs[k], cb, 16, 0));
            let slope_b = slope.map(|k| fx.addr(ptrs[k], cb, 16, 0));
            let r0 = fx.b.ins().imul_imm_s(rb, rows as i64);
            let r1 = fx.b.ins().iadd_imm_s(r0, rows as i64);
            let last = fx.iconst(out_rows as i64);
            let r1 = fx.b.ins().smin(r1, last);
            fx.for_range(r0, r1, |fx, row| {
                let (od, oh) = if od_n == 1 {
                    (fx.iconst(0), row)
                } else {
                    (
                        fx.b.ins().udiv_imm_u(row, oh_n as i64),
                        fx.b.ins().urem_imm_u(row, oh_n as i64),
                    )
                };
                let (kh_lo, kh_hi, ih) = fx.valid_taps(&g, 1, oh);
                let (kd_lo, kd_hi, id) = fx.valid_taps(&g, 0, od);
                let row_y = (ow_n * 16) as i64;
                let x_d = fx.addr(x_b, id, x_plane, 0);
                let w_d = fx.addr(w_b, kd_lo, (g.kernel[1] * g.kernel[2] * 16) as i64, 0);
                let r = Row {
                    x: fx.addr(x_d, ih, (iw_n * 16) as i64, 0),
                    w: fx.addr(w_d, kh_lo, (g.kernel[2] * 16) as i64, 0),
                    y: fx.addr(y_b, row, row_y, 0),
                    residual: r_b.map(|rb| fx.addr(rb, row, row_y, 0)),
                    bias: bias_b,
                    slope: slope_b,
                    row_scale: avg.as_ref().map(|a| {
                        let at = fx.addr(ptrs[a.rows], row, 4, 0);
                        fx.load(F32, at, 0)
                    }),
                    kh_lo,
                    kh_hi,
                    kd: planes.then_some((kd_lo, kd_hi)),
                };
                let tiles = |fx: &mut Fx, kernel_rows: KernelRows| {
                    for seg in &segs {
                        let cols = avg.as_ref().map_or(1.0, |a| a.cols[seg.start]);
                        let (n_full, rem) = (seg.len / PIXELS, seg.len % PIXELS);
                        let taps = (seg.taps, kernel_rows);
                        if n_full > 0 {
                            fx.for_n(n_full as u64, |fx, t| {
                                let ow0 = fx.b.ins().imul_imm_s(t, PIXELS as i64);
                                let ow0 = fx.b.ins().iadd_imm_s(ow0, seg.start as i64);
                                fx.depthwise_tile(&g, &r, ow0, PIXELS, taps, window, cols);
                            });
                        }
                        if rem > 0 {
                            let ow0 = fx.iconst((seg.start + n_full * PIXELS) as i64);
                            fx.depthwise_tile(&g, &r, ow0, rem, taps, window, cols);
                        }
                    }
                };
                match unrolled_rows {
                    Some(true) => tiles(fx, KernelRows::All),
                    Some(false) => {
                        let valid = fx.b.ins().isub(kh_hi, kh_lo);
                        let all =
                            fx.b.ins()
                                .icmp_imm_s(IntCC::Equal, valid, g.kernel[1] as i64);
                        fx.if_else(
                            all,
                            |fx| tiles(fx, KernelRows::All),
                            |fx| tiles(fx, KernelRows::Valid),
                        );
                    }
                    None => tiles(fx, KernelRows::Valid),
                }
                if let Some(span) = span {
                    let count = fx.iconst(ow_n as i64);
                    fx.call_span(span, r.y, r.y, count);
                }
            });
        });
        Ok(())
    })
}
