//! Direct 2-D and 3-D convolution on blocked-channel tensors (NC[D]HWc with one vector
//! of channels per block, see `Layout::Blocked`), any stride, dilation, padding and
//! grouping whose per-group channels fill whole blocks.
//!
//! The register tile is `wt` output pixels of one row by `ov` vectors of output
//! channels (`wt * ov` accumulators, 12 by default: 3 pixels x 4 vectors). Per input
//! channel each pixel's input value is broadcast once and multiplied into the `ov`
//! weight vectors, which are FMA memory operands read from weights packed at compile
//! time in the order the tile walks them: `[group][vector group][input block][kd][kh]
//! [kw][lane][vector][4]`. Padding never costs a branch per element: a row's valid
//! kernel rows (and planes, in 3-D) are computed once per row, and the columns are
//! split at compile time into segments that share their valid kernel columns (left
//! border, interior, right border), each walked by full tiles and one narrower tail
//! tile. A 3-D convolution's output rows are its planes' rows, depth-major; each tile
//! sums over the valid kernel planes around the 2-D kernel's loops.

use cnnc_ir::op::{Conv, Tile};
use cnnc_ir::window::{self, Axis, Segment};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::F32X4;
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_module::FuncId;

use super::activation::costly_span;
use super::conv::{Geometry, epilogue_args};
use super::microkernel::{TileShape, Walk};
use super::{KernelCx, f32_constant, on_every_core, row_blocks, tasks_for, wanted_tasks};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

/// Accumulators of the default register tile: with the two unrolled broadcasts and
/// the copy Cranelift makes of one for each FMA, 15 of the 16 vector registers.
const ACCUMULATORS: usize = 12;

/// The default register tile for `vectors` output channel vectors per group: up to
/// four vectors, as many pixels as keep [`ACCUMULATORS`] accumulators; cache blocks of
/// output channels with 512 KiB of weights.
pub fn default_tile(vectors: usize, weights_per_channel: usize) -> Tile {
    let ov = vectors.clamp(1, 4);
    Tile {
        rows: ACCUMULATORS / ov,
        cols: ov * LANES,
        k_block: 1,
        col_block: ((512 << 10) / weights_per_channel.max(1)).max(1),
        unroll: 2,
    }
}

/// The columns of an output row split where their valid kernel columns change.
pub(super) fn segments(g: &Geometry) -> Vec<Segment> {
    window::segments(Axis {
        input: g.input[2],
        output: g.output[2],
        kernel: g.kernel[2],
        stride: g.stride[2],
        dilation: g.dilation[2],
        pad: g.pad[2],
    })
}

/// Floats of the packed weights (see [`pack`]).
fn packed_len(g: &Geometry) -> usize {
    let taps: usize = g.kernel.iter().product();
    g.cout * (g.cin / g.groups).div_ceil(LANES) * taps * LANES
}

/// The weights `[M, C/groups, kh, kw]` into `out` in the order the tiles read them,
/// zero for the padding lanes of the last input block. Each vector group's weights are
/// a run of `out` of their own, and large tables share the runs among the cores.
fn pack(w: &[f32], g: &Geometry, ov: usize, out: &mut [f32]) {
    let (cg, mg) = (g.cin / g.groups, g.cout / g.groups);
    let cb = cg.div_ceil(LANES);
    let taps: usize = g.kernel.iter().product();
    // One output channel's weights per row.
    let rows: Vec<&[f32]> = w.chunks_exact(cg * taps).collect();
    let mut runs = Vec::new();
    let mut rest = out;
    for vectors in rows
        .chunks_exact(mg)
        .flat_map(|group| group.chunks(ov * LANES))
    {
        let (run, tail) = rest.split_at_mut(vectors.len() * cb * taps * LANES);
        runs.push((vectors, run));
        rest = tail;
    }
    assert!(rest.is_empty(), "the packed weights fill the table");
    on_every_core(&mut runs, packed_len(g), |(vectors, run)| {
        pack_vector_group(vectors, (cg, cb, taps), run);
    });
}

/// One vector group's rows into `run`, input block by input block, tap by tap, lane by
/// lane; its rows stay in cache while they are interleaved.
fn pack_vector_group(vectors: &[&[f32]], (cg, cb, taps): (usize, usize, usize), run: &mut [f32]) {
    let mut out = run.iter_mut();
    for ib in 0..cb {
        for tap in 0..taps {
            for ci in ib * LANES..(ib + 1) * LANES {
                // `vectors` first: the zip stops before taking a slot.
                for (row, o) in vectors.iter().zip(out.by_ref()) {
                    *o = if ci < cg { row[ci * taps + tap] } else { 0.0 };
                }
            }
        }
    }
    assert_eq!(out.len(), 0, "a vector group fills its run");
}

/// Run-time values one tile needs.
struct TileAt {
    /// Input at the first input block, the row of the first valid kernel row and the
    /// column of pixel 0 with kernel column 0 (possibly left of the row).
    x: Value,
    /// Weights of this vector group at the first input block and valid kernel row.
    w: Value,
    /// Output (and residual) at pixel 0 of the first vector.
    y: Value,
    residual: Option<Value>,
    /// Bias and PRelu slope at the first channel of the vector group.
    bias: Option<Value>,
    slope: Option<Value>,
    kh_lo: Value,
    kh_hi: Value,
    /// The valid kernel planes of a 3-D convolution, when they take a loop: more than
    /// one plane, or the depth padding reached.
    kd: Option<(Value, Value)>,
}

/// Byte strides and sizes fixed for the whole convolution.
struct Shape {
    g: Geometry,
    /// Input blocks per group.
    cb: usize,
    /// Valid lanes of the last input block: fewer than [`LANES`] when the channels do
    /// not fill it (the padding lanes, zero, are skipped).
    last_lanes: usize,
    /// Bytes between input blocks, input planes (3-D), input rows, output vectors
    /// (channel blocks).
    x_block: i64,
    x_plane: i64,
    x_row: i64,
    y_block: i64,
    activation: Option<cnnc_ir::op::Activation>,
    /// The costly activation's span function, run on each finished output row (see
    /// [`Fx::direct_epilogue`]).
    span: Option<FuncId>,
    /// Every output row reads every kernel row (no vertical padding is reached): the
    /// kernel-row loop has a constant count (none at all for one row, as in 1x1).
    all_rows: bool,
    /// The same for the kernel planes of a 3-D convolution.
    all_planes: bool,
    /// Input channels per step of the tile loop (the tile's `unroll`).
    unroll: usize,
}

impl Fx<'_> {
    /// The kernel taps `k_lo..k_hi` along axis `a` (0 depth, 1 height) that output
    /// index `o` reads inside the input (`0 <= o * stride + k * dilation - pad <
    /// input`), and the input index of `k_lo`.
    pub(super) fn valid_taps(&mut self, g: &Geometry, a: usize, o: Value) -> (Value, Value, Value) {
        let (stride, dil, pad) = (g.stride[a] as i64, g.dilation[a] as i64, g.pad[a] as i64);
        // The input index of tap 0, possibly before the input.
        let at0 = self.b.ins().imul_imm_s(o, stride);
        let at0 = self.b.ins().iadd_imm_s(at0, -pad);
        let zero = self.iconst(0);
        let before = self.b.ins().ineg(at0);
        let before = self.b.ins().smax(before, zero);
        let len = self.iconst(g.input[a] as i64);
        let room = self.b.ins().isub(len, at0);
        let room = self.b.ins().smax(room, zero);
        let (lo, hi) = if dil == 1 {
            (before, room)
        } else {
            let lo = self.b.ins().iadd_imm_s(before, dil - 1);
            let hi = self.b.ins().iadd_imm_s(room, dil - 1);
            (
                self.b.ins().udiv_imm_u(lo, dil),
                self.b.ins().udiv_imm_u(hi, dil),
            )
        };
        let taps = self.iconst(g.kernel[a] as i64);
        let hi = self.b.ins().smin(hi, taps);
        let hi = self.b.ins().smax(hi, lo);
        let first = self.b.ins().imul_imm_s(lo, dil);
        let first = self.b.ins().iadd(first, at0);
        (lo, hi, first)
    }

    /// The multiply-adds of one kernel row (valid columns `kw`) into the accumulators,
    /// from the input row at `px` and the row's weights at `pw`: a loop of one input
    /// channel per iteration, so that Cranelift's elaboration (which orders pure
    /// instructions depth-first from the loop's results) keeps one broadcast live at a
    /// time. Each pixel reads the weights through its own copy of the pointer: equal
    /// loads would be merged into one with several uses, which could not be folded into
    /// the FMAs as memory operands and would take a register each.
    #[allow(clippy::too_many_arguments)]
    fn kernel_row(
        &mut self,
        s: &Shape,
        px: Value,
        pw: Value,
        acc: &[Value],
        shape: TileShape,
        kw: (usize, usize),
        lanes: usize,
    ) -> Vec<Value> {
        let g = &s.g;
        let taps = kw.1 - kw.0;
        if taps == 0 {
            return acc.to_vec();
        }
        let w_tap = (LANES * shape.vectors * 16) as i64;
        let px = self.add(px, (16 * kw.0 * g.dilation[2]) as i64);
        let pw = self.add(pw, kw.0 as i64 * w_tap);
        let x_tap = (16 * g.dilation[2]) as i64;
        let unroll = shape.unroll;
        // With dilation 1 and whole blocks the taps' channels are consecutive in
        // memory: one loop. A block of fewer valid lanes (the input's last, as in a
        // 3-channel stem) steps a tap at a time over its valid lanes only.
        let (outer, steps, walk) = if lanes < LANES {
            let walk = Walk {
                lanes,
                x_bytes: x_tap,
                w_bytes: w_tap,
            };
            (1, taps, walk)
        } else if g.dilation[2] == 1 {
            (1, taps * LANES / unroll, Walk::unrolled(shape))
        } else {
            (taps, LANES / unroll, Walk::unrolled(shape))
        };
        // Accumulators first, pointers last, in every loop here: see `tile_loop`.
        let n = acc.len();
        let mut carried = acc.to_vec();
        carried.extend([px, pw]);
        let x_pixel = (16 * g.stride[2]) as i64;
        let mut out = self.for_n_carry(outer as u64, &carried, |fx, _, c| {
            let (px, pw) = (c[n], c[n + 1]);
            let ws = vec![pw; shape.pixels];
            let mut next = fx.tile_loop(shape, steps as u64, walk, px, x_pixel, &ws, &c[..n]);
            next.push(fx.b.ins().iadd_imm_s(px, x_tap));
            next.push(fx.b.ins().iadd_imm_s(pw, w_tap));
            next
        });
        out.truncate(n);
        out
    }

    /// One register tile: `wt` pixels by `ov` vectors over every input channel and the
    /// valid kernel rows, then bias, residual and activation, stored.
    fn direct_tile(&mut self, s: &Shape, at: &TileAt, wt: usize, ov: usize, kw: (usize, usize)) {
        let g = &s.g;
        let shape = TileShape::of(wt, ov, s.unroll);
        // The bias starts the first partial sum, zero the others.
        let init: Vec<Value> = (0..shape.accumulators())
            .map(|t| match at.bias {
                Some(b) if t < wt * ov => self.load(F32X4, b, (16 * (t % ov)) as i32),
                _ => self.splat_const(0.0),
            })
            .collect();
        // Weights bytes per kernel row, per kernel plane and per input block.
        let w_row = (g.kernel[2] * LANES * ov * LANES * 4) as i64;
        let w_plane = w_row * g.kernel[1] as i64;
        let w_block = w_plane * g.kernel[0] as i64;
        let x_step = g.dilation[1] as i64 * s.x_row;
        let x_plane_step = g.dilation[0] as i64 * s.x_plane;
        // Carried: the accumulators, then the input and weight pointers.
        let n = shape.accumulators();
        // The valid kernel rows (of the valid kernel planes) of one input block of
        // `lanes` valid lanes.
        let block = |fx: &mut Fx, c: &[Value], lanes: usize| {
            let row = |fx: &mut Fx, _: Value, k: &[Value]| {
                let (px, pw) = (k[n], k[n + 1]);
                let mut next = fx.kernel_row(s, px, pw, &k[..n], shape, kw, lanes);
                next.push(fx.b.ins().iadd_imm_s(px, x_step));
                next.push(fx.b.ins().iadd_imm_s(pw, w_row));
                next
            };
            let rows = |fx: &mut Fx, k: &[Value]| {
                if s.all_rows {
                    fx.for_n_carry(g.kernel[1] as u64, k, row)
                } else {
                    fx.for_range_carry(at.kh_lo, at.kh_hi, k, row)
                }
            };
            let plane = |fx: &mut Fx, _: Value, k: &[Value]| {
                let mut next = rows(fx, k);
                next[n] = fx.b.ins().iadd_imm_s(k[n], x_plane_step);
                next[n + 1] = fx.b.ins().iadd_imm_s(k[n + 1], w_plane);
                next
            };
            let mut inner = match at.kd {
                None => rows(fx, c),
                Some(_) if s.all_planes => fx.for_n_carry(g.kernel[0] as u64, c, plane),
                Some((lo, hi)) => fx.for_range_carry(lo, hi, c, plane),
            };
            inner[n] = fx.b.ins().iadd_imm_s(c[n], s.x_block);
            inner[n + 1] = fx.b.ins().iadd_imm_s(c[n + 1], w_block);
            inner
        };
        let mut carried = init;
        carried.extend([at.x, at.w]);
        let whole = s.cb - usize::from(s.last_lanes < LANES);
        let mut out = self.for_n_carry(whole as u64, &carried, |fx, _, c| block(fx, c, LANES));
        if s.last_lanes < LANES {
            out = block(self, &out, s.last_lanes);
        }
        // The partial sums added up pairwise.
        let mut acc = out[..n].to_vec();
        while acc.len() > wt * ov {
            let half = acc.split_off(acc.len() / 2);
            for (a, h) in acc.iter_mut().zip(half) {
                *a = self.b.ins().fadd(*a, h);
            }
        }
        self.direct_epilogue(s, at, &acc, wt, ov);
    }

    /// Residual, activation and store of a finished tile. An activation that is not
    /// cheap (see `is_cheap_activation`) waits for the row: its span function runs
    /// on each finished output row, so that its constants never live beside the
    /// accumulators (applied to them in place, the allocator spilled accumulators in
    /// the reduction loop: 1x1 SiLU convolutions from 16, 24 and 40 input channels at
    /// 112, 56 and 28 pixels square ran 1.80, 0.80 and 0.53 ms against 1.55, 0.66 and
    /// 0.38 after the stores), and its chains interleave (see `activation.rs`).
    fn direct_epilogue(&mut self, s: &Shape, at: &TileAt, acc: &[Value], wt: usize, ov: usize) {
        let in_place = s.activation.filter(|_| s.span.is_none());
        for p in 0..wt {
            for v in 0..ov {
                let off = (p * 16) as i64 + v as i64 * s.y_block;
                let mut y = acc[p * ov + v];
                if let Some(r) = at.residual {
                    let r = self.load(F32X4, r, off as i32);
                    y = self.b.ins().fadd(y, r);
                }
                if let Some(a) = in_place {
                    let slope = at.slope.map(|sl| self.load(F32X4, sl, (16 * v) as i32));
                    y = self.activate(a, y, slope);
                }
                self.store(y, at.y, off as i32);
            }
        }
    }
}

/// Largest plane a pointwise convolution reads as one row (see [`flattened`]).
const FLAT_PIXELS: usize = 256;

/// A pointwise convolution (1x1, stride 1, and so no padding when the output is the
/// input's size) on a small plane, as one row of all its pixels: they are consecutive
/// in the blocked layout, and each row streams the weights of a cache block from L2
/// through the registers once, so a 7x7 plane read as one row of 49 pixels moves 7
/// times fewer weight bytes per multiply-add.
fn flattened(mut g: Geometry) -> Geometry {
    let pointwise = g.kernel == [1; 3] && g.stride == [1; 3] && g.input == g.output;
    let pixels: usize = g.output.iter().product();
    if pointwise && pixels <= FLAT_PIXELS {
        g.input = [1, 1, pixels];
        g.output = [1, 1, pixels];
    }
    g
}

pub fn emit(cx: &mut KernelCx, c: &Conv, block: usize) -> Result<(), CodegenError> {
    let g = flattened(Geometry::of(
        c,
        &cx.inputs[0].ty.shape,
        &cx.outputs[0].1.shape,
    ));
    let (cg, mg) = (g.cin / g.groups, g.cout / g.groups);
    let whole_groups = g.groups == 1 || cg.is_multiple_of(LANES);
    let spatial = c.kernel.len();
    if block != LANES || !(2..=3).contains(&spatial) || !mg.is_multiple_of(LANES) || !whole_groups {
        return Err(CodegenError::Unsupported(format!(
            "a blocked convolution needs 2-D or 3-D, blocks of {LANES} and whole blocks of each group's channels (block {block}, {} to {} channels in {} groups)",
            g.cin, g.cout, g.groups
        )));
    }
    let Some(weights) = cx.inputs[1].constant else {
        return Err(CodegenError::Unsupported(
            "a blocked convolution needs constant weights".into(),
        ));
    };
    let mb = mg / LANES;
    let taps: usize = g.kernel.iter().product();
    let weights_per_channel = cg.div_ceil(LANES) * LANES * taps * 4;
    let tile = cx
        .tile
        .unwrap_or_else(|| default_tile(mb, weights_per_channel));
    if tile.rows == 0
        || tile.cols == 0
        || !tile.cols.is_multiple_of(LANES)
        || tile.col_block == 0
        || tile.unroll == 0
        || !LANES.is_multiple_of(tile.unroll)
    {
        return Err(CodegenError::Unsupported(format!(
            "tile {tile}: a blocked convolution needs pixels, whole vectors and input blocks of whole steps"
        )));
    }
    let (wt, ov) = (tile.rows, (tile.cols / LANES).min(mb));
    let weights = f32_constant(weights)?;
    let (x, out) = (cx.input(0), cx.output(0));
    let w = cx.table_filled(packed_len(&g), move |dst| {
        pack(&weights.view::<f32>().expect("f32"), &g, ov, dst);
    });
    let extra = epilogue_args(cx, &c.epilogue, g.cout)?;
    let own = cx.inputs.len() - c.epilogue.extra_inputs();
    let bias = (own > 2).then(|| cx.input(2));

    let cb = cg.div_ceil(LANES);
    let [id_n, ih_n, iw_n] = g.input;
    let [od_n, oh_n, ow_n] = g.output;
    let [kd_n, kh_n, kw_n] = g.kernel;
    let s = Shape {
        g,
        cb,
        last_lanes: cg - (cb - 1) * LANES,
        x_block: (id_n * ih_n * iw_n * LANES * 4) as i64,
        x_plane: (ih_n * iw_n * LANES * 4) as i64,
        x_row: (iw_n * LANES * 4) as i64,
        y_block: (od_n * oh_n * ow_n * LANES * 4) as i64,
        activation: c.epilogue.activation,
        span: costly_span(cx, c.epilogue.activation)?,
        all_rows: g.all_taps(1),
        all_planes: g.all_taps(0),
        unroll: tile.unroll,
    };
    // A loop over kernel planes where there are several or the padding is reached
    // (a 1x3x3 kernel with depth padding); else the one plane is an offset.
    let depth_loop = kd_n > 1 || !s.all_planes;
    let segs = segments(&g);
    // Vector groups per convolution group: full ones, then one of `tail` vectors.
    let (full, tail) = (mb / ov, mb % ov);
    let packed_group = (cb * taps * LANES * LANES * 4) as i64;
    let out_rows = od_n * oh_n;
    let macs = g.batch * g.cout * out_rows * ow_n * cb * LANES * taps;
    // Rows per unit: blocks enough for every task the work is worth.
    // Vector groups are taken a cache block at a time (the tile's `col_block` output
    // channels, whose weights stay in L2); a unit of work is a block of output rows of
    // one image, group and cache block, and each of its rows runs every vector group
    // of the block, so the input rows it reads stay in cache across them. Row blocks
    // are made small enough for every task the work is worth.
    let chunk = (tile.col_block / (ov * LANES)).clamp(1, full.max(1));
    // With few rows (a flattened plane), more and smaller cache blocks give the units
    // for every task the work is worth.
    let wanted_blocks = wanted_tasks(macs).div_ceil(g.batch * g.groups * out_rows);
    let chunks = full.div_ceil(chunk).max(wanted_blocks.min(full)).max(1);
    let images = g.batch * g.groups * chunks;
    let (rows, row_blocks) = row_blocks(images, out_rows, macs);
    let units = images * row_blocks;
    let tasks = tasks_for(units, macs);
    let x_image = g.cin.div_ceil(LANES) as i64 * s.x_block;
    let y_image = (g.cout * out_rows * ow_n * 4) as i64;
    let ptrs_of = |ptrs: &[Value], k: Option<usize>| k.map(|k| ptrs[k]);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = if tasks > 1 {
            fx.task_range(task, units, tasks)
        } else {
            (fx.iconst(0), fx.iconst(units as i64))
        };
        let (bias_p, res_p, slope_p) = (
            ptrs_of(ptrs, bias),
            ptrs_of(ptrs, extra.residual),
            ptrs_of(ptrs, extra.slope),
        );
        fx.for_range(lo, hi, |fx, u| {
            let rb = fx.b.ins().urem_imm_u(u, row_blocks as i64);
            let q = fx.b.ins().udiv_imm_u(u, row_blocks as i64);
            let ch = fx.b.ins().urem_imm_u(q, chunks as i64);
            let q = fx.b.ins().udiv_imm_u(q, chunks as i64);
            let grp = fx.b.ins().urem_imm_u(q, g.groups as i64);
            let n = fx.b.ins().udiv_imm_u(q, g.groups as i64);
            let x_img = fx.addr(ptrs[x], n, x_image, 0);
            let x_grp = fx.addr(x_img, grp, cb as i64 * s.x_block, 0);
            // The group's first output vector (channel block) in the image.
            let vec0 = fx.b.ins().imul_imm_s(grp, mb as i64);
            let y_img = fx.addr(ptrs[out], n, y_image, 0);
            let y_grp = fx.addr(y_img, vec0, s.y_block, 0);
            let r_grp = res_p.map(|r| {
                let img = fx.addr(r, n, y_image, 0);
                fx.addr(img, vec0, s.y_block, 0)
            });
            let bias_grp = bias_p.map(|b| fx.addr(b, vec0, 16, 0));
            let slope_grp = slope_p.map(|sl| fx.addr(sl, vec0, 16, 0));
            let w_grp = fx.addr(ptrs[w], grp, mb as i64 * packed_group, 0);
            let r0 = fx.b.ins().imul_imm_s(rb, rows as i64);
            let r1 = fx.b.ins().iadd_imm_s(r0, rows as i64);
            let last = fx.iconst(out_rows as i64);
            let r1 = fx.b.ins().smin(r1, last);
            fx.for_range(r0, r1, |fx, r| {
                let (od, oh) = if od_n == 1 {
                    (fx.iconst(0), r)
                } else {
                    (
                        fx.b.ins().udiv_imm_u(r, oh_n as i64),
                        fx.b.ins().urem_imm_u(r, oh_n as i64),
                    )
                };
                let (kh_lo, kh_hi, ih) = fx.valid_taps(&g, 1, oh);
                let (kd_lo, kd_hi, id) = fx.valid_taps(&g, 0, od);
                let kd = depth_loop.then_some((kd_lo, kd_hi));
                let x_plane = fx.addr(x_grp, id, s.x_plane, 0);
                let x_row = fx.addr(x_plane, ih, s.x_row, -(16 * g.pad[2] as i64));
                // The row of vector group `vg` (a run-time value), which has `vectors`
                // vectors (`ov`, or fewer for the last group).
                let row = |fx: &mut Fx, vg: Value, vectors: usize| {
                    let v_in = fx.b.ins().imul_imm_s(vg, ov as i64);
                    let ov = vectors;
                    let w_vg = fx.addr(w_grp, v_in, packed_group, 0);
                    let w_row = (kw_n * LANES * ov * LANES * 4) as i64;
                    let w_plane = fx.addr(w_vg, kd_lo, w_row * kh_n as i64, 0);
                    let w_at = fx.addr(w_plane, kh_lo, w_row, 0);
                    let y_vec = fx.addr(y_grp, v_in, s.y_block, 0);
                    let y_row = fx.addr(y_vec, r, (ow_n * 16) as i64, 0);
                    let r_row = r_grp.map(|rp| {
                        let rp = fx.addr(rp, v_in, s.y_block, 0);
                        fx.addr(rp, r, (ow_n * 16) as i64, 0)
                    });
                    let bias_at = bias_grp.map(|b| fx.addr(b, v_in, 16, 0));
                    let slope_at = slope_grp.map(|sl| fx.addr(sl, v_in, 16, 0));
                    for seg in &segs {
                        let at = |fx: &mut Fx, ow0: Value| {
                            let xc = fx.addr(x_row, ow0, (16 * g.stride[2]) as i64, 0);
                            TileAt {
                                x: xc,
                                w: w_at,
                                y: fx.addr(y_row, ow0, 16, 0),
                                residual: r_row.map(|r| fx.addr(r, ow0, 16, 0)),
                                bias: bias_at,
                                slope: slope_at,
                                kh_lo,
                                kh_hi,
                                kd,
                            }
                        };
                        let (n_full, rem) = (seg.len / wt, seg.len % wt);
                        if n_full > 0 {
                            fx.for_n(n_full as u64, |fx, t| {
                                let ow0 = fx.b.ins().imul_imm_s(t, wt as i64);
                                let ow0 = fx.b.ins().iadd_imm_s(ow0, seg.start as i64);
                                let a = at(fx, ow0);
                                fx.direct_tile(&s, &a, wt, ov, seg.taps);
                            });
                        }
                        if rem > 0 {
                            let ow0 = fx.iconst((seg.start + n_full * wt) as i64);
                            let a = at(fx, ow0);
                            fx.direct_tile(&s, &a, rem, ov, seg.taps);
                        }
                    }
                    if let Some(span) = s.span {
                        let count = fx.iconst(ow_n as i64);
                        fx.for_n(ov as u64, |fx, v| {
                            let y = fx.addr(y_row, v, s.y_block, 0);
                            fx.call_span(span, y, y, count);
                        });
                    }
                };
                // Cache blocks of equal size (within one vector group), so that the
                // threads' shares of the units are equal work.
                let (vg0, vg1) = fx.task_range(ch, full, chunks);
                let all = fx.iconst(full as i64);
                fx.for_range(vg0, vg1, |fx, vg| row(fx, vg, ov));
                if tail > 0 {
                    // The narrower last vector group belongs to the last cache block.
                    let last = fx.b.ins().icmp_imm_s(IntCC::Equal, ch, chunks as i64 - 1);
                    fx.if_then(last, |fx| row(fx, all, tail));
                }
            });
        });
        Ok(())
    })
}
