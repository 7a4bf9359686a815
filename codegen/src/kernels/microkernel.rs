//! The register tiles of the convolutions: [`TileShape`], on blocked channels,
//! `pixels` output pixels by `vectors` vectors of output channels, the micro-kernel the
//! loop nests of `direct_conv.rs` (and the Winograd products, which are pointwise
//! convolutions) are built around; and [`PlaneTile`], on small plain planes (the
//! plain Winograd products of `plane_products.rs`), output channels by the whole
//! plane. The loop nests hand them pointers (and the blocked tile its accumulators)
//! and get the results back, so they do not care how a step is produced; a wider ISA
//! changes this file only.
//!
//! [`tile_listing`] and [`plane_tile_listing`] compile one tile as a function of its
//! own for the tests: the disassembly is snapshotted per shape, and a tile that spills
//! a vector register to the stack fails them.

use cnnc_ir::op::partial_sums;
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::types::{F32, F32X4, I32X4, I64};
use cranelift_codegen::ir::{AbiParam, Function, InstBuilder, Signature, UserFuncName, Value};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use crate::CodegenError;
use crate::emit::{Fx, LANES, bitcast_flags};
use crate::target::Features;

/// Vector registers a tile may hold: x86-64's sixteen xmm (AArch64's 32 leave room).
pub const VECTOR_REGISTERS: usize = 16;

/// A register tile: `pixels * vectors` accumulators, `unroll` input channels per step.
/// Cranelift's elaboration orders a step's pure instructions depth-first from each
/// accumulator's result, so every unrolled channel's broadcast of a pixel is loaded
/// before that pixel's first FMA: more channels per step cost live registers, fewer
/// cost loop overhead (a move of every accumulator on the back edge, the pointers, the
/// counter). The tiling pass chooses (`Tile::unroll`). Channel `u` of a step adds
/// into partial sum `u % split` of its accumulator (see [`TileShape::of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileShape {
    pub pixels: usize,
    pub vectors: usize,
    pub unroll: usize,
    pub split: usize,
}

impl TileShape {
    /// The tile of `pixels` x `vectors` at the chosen `unroll`, unless it is too narrow
    /// to hide the FMA latency: then partial sums (`cnnc_ir::op::partial_sums`), over a
    /// whole input block per step where the registers hold it with one to spare (see
    /// there), else over two channels.
    pub fn of(pixels: usize, vectors: usize, unroll: usize) -> Self {
        let split = partial_sums(pixels * vectors);
        if split == 1 {
            return TileShape {
                pixels,
                vectors,
                unroll,
                split,
            };
        }
        let whole = TileShape {
            pixels,
            vectors,
            unroll: LANES,
            split,
        };
        if whole.fits(VECTOR_REGISTERS - 1) {
            whole
        } else {
            TileShape {
                unroll: 2,
                split: 2,
                ..whole
            }
        }
    }

    /// Accumulators, partial sums included.
    pub fn accumulators(self) -> usize {
        self.pixels * self.vectors * self.split
    }

    /// Whether the tile fits the vector registers: a one-vector tile's accumulators,
    /// unrolled weight vectors and broadcasts; else the accumulators, the unrolled
    /// broadcasts, the copy of one Cranelift makes for each FMA, and a weight vector.
    pub fn fits(self, registers: usize) -> bool {
        let live = if self.vectors == 1 {
            self.accumulators() + 2 * self.unroll
        } else {
            self.accumulators() + self.unroll + 2
        };
        live <= registers
    }
}

/// How a tile loop walks the input channels: `lanes` per step, the input and weight
/// pointers advancing by the given bytes.
#[derive(Clone, Copy, Debug)]
pub struct Walk {
    pub lanes: usize,
    pub x_bytes: i64,
    pub w_bytes: i64,
}

impl Walk {
    /// [`TileShape::unroll`] consecutive channels per step.
    pub fn unrolled(shape: TileShape) -> Self {
        let lanes = shape.unroll;
        Walk {
            lanes,
            x_bytes: 4 * lanes as i64,
            w_bytes: (lanes * shape.vectors * 16) as i64,
        }
    }
}

impl Fx<'_> {
    /// One step of the tile: `lanes` consecutive input channels (lanes of one input
    /// block). `x` is the input of pixel 0 at the step's first channel, pixels
    /// `x_pixel` bytes apart; `ws` holds one copy of the weights pointer per pixel
    /// (equal loads would be merged into one with several uses, which could not be an
    /// FMA memory operand), the step's weights `[lanes][vectors][4]` from there; `acc`
    /// holds the accumulators pixel-major, one such set per partial sum.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tile_step(
        &mut self,
        shape: TileShape,
        lanes: usize,
        x: Value,
        x_pixel: i64,
        ws: &[Value],
        acc: &mut [Value],
    ) {
        let ov = shape.vectors;
        let set = shape.pixels * ov;
        if ov == 1 {
            // One weight vector per channel, in a register for every pixel: each
            // broadcast then has one use, loads straight from memory, and its
            // register takes the FMA's result (no copy).
            for u in 0..lanes {
                let wv = self.load_fixed(F32X4, ws[0], (16 * u) as i32);
                let part = &mut acc[u % shape.split * set..][..set];
                for (p, a) in part.iter_mut().enumerate() {
                    let at = (x_pixel * p as i64 + 4 * u as i64) as i32;
                    let xs = self.load_fixed(F32, x, at);
                    let xv = self.b.ins().splat(F32X4, xs);
                    *a = self.fma(xv, wv, *a);
                }
            }
            return;
        }
        for (p, &wp) in ws[..shape.pixels].iter().enumerate() {
            for u in 0..lanes {
                let xs = self.load_fixed(F32, x, (x_pixel * p as i64 + 4 * u as i64) as i32);
                let xv = self.b.ins().splat(F32X4, xs);
                let part = u % shape.split * set;
                for v in 0..ov {
                    let wv = self.load_fixed(F32X4, wp, (16 * (u * ov + v)) as i32);
                    let a = part + p * ov + v;
                    acc[a] = self.fma(xv, wv, acc[a]);
                }
            }
        }
    }

    /// The tile's loop over `steps` steps of `walk.lanes` channels each from `x` and
    /// `w` (a pointer per pixel) into `acc`, the pointers advancing by the walk's bytes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tile_loop(
        &mut self,
        shape: TileShape,
        steps: u64,
        walk: Walk,
        x: Value,
        x_pixel: i64,
        ws: &[Value],
        acc: &[Value],
    ) -> Vec<Value> {
        // A one-vector tile reads its weights through one pointer (see `tile_step`).
        let wt = if shape.vectors == 1 { 1 } else { shape.pixels };
        // Accumulators first: the pointer increments then follow the step's FMAs
        // (see `for_range_carry`); leading, they were computed at the top and kept a
        // register through the step, which spilled a pointer in the larger loop nests.
        let n = acc.len();
        let mut carried = acc.to_vec();
        carried.push(x);
        carried.extend(&ws[..wt]);
        let mut done = self.for_n_carry(steps, &carried, |fx, _, l| {
            let (x, ws) = (l[n], &l[n + 1..]);
            let mut next = l[..n].to_vec();
            fx.tile_step(shape, walk.lanes, x, x_pixel, ws, &mut next);
            next.push(fx.b.ins().iadd_imm_s(x, walk.x_bytes));
            for &w in ws {
                next.push(fx.b.ins().iadd_imm_s(w, walk.w_bytes));
            }
            next
        });
        done.truncate(n);
        done
    }
}

/// The register tile of the products on a small plain plane (`plane_products.rs`):
/// `rows` output channels by `vectors` vectors of pixels (the whole plane), `unroll`
/// input channels a step. Per channel, each row's weight is broadcast once and each
/// FMA takes a fresh load of its pixel vector, whose register then takes the result:
/// Cranelift's x86 FMA overwrites a multiplicand, and a vector load as a multiplicand
/// would be folded into the FMA as its memory operand, leaving the broadcast to be
/// overwritten (a copy per FMA); loaded as integers and bitcast, it is not. Each row
/// reads the pixels through its own copy of the pointer, or the equal loads of the
/// rows would be merged into one value with several uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaneTile {
    pub rows: usize,
    pub vectors: usize,
    pub unroll: usize,
}

impl PlaneTile {
    /// Registers the tile holds: the accumulators, every broadcast of a step (all
    /// loaded before the first FMA: Cranelift's elaboration goes depth-first from each
    /// accumulator) and the loaded pixel vector an FMA overwrites, with one to spare.
    fn live(rows: usize, vectors: usize, unroll: usize) -> usize {
        rows * vectors + unroll * rows + 2
    }

    /// The tile for planes of `vectors` vectors (up to 13) and `channels` output
    /// channels: up to nine accumulators (eight chains for two FMA pipes of latency 4,
    /// six on a plane of one vector), or one row of the whole plane; two input
    /// channels a step where their broadcasts fit too (2 x 4, and rows of up to 11). A single row of 13 vectors (512 channels on 52
    /// pixels) ran at 90% of the FMA peak, rows of 2 by 4 vectors at about 75%.
    pub fn of(vectors: usize, channels: usize) -> Self {
        let rows = (1..=9 / vectors)
            .rev()
            .find(|&r| Self::live(r, vectors, 1) < VECTOR_REGISTERS)
            .unwrap_or(1)
            .min(channels.max(1));
        let unroll = if Self::live(rows, vectors, 2) < VECTOR_REGISTERS {
            2
        } else {
            1
        };
        PlaneTile {
            rows,
            vectors,
            unroll,
        }
    }
}

impl Fx<'_> {
    /// One plane tile over `channels` input channels, from the input's planes at `x`
    /// (each `vectors` vectors) and the tile's packed weights at `w` (per channel, one
    /// weight a row), stored to the output's planes at `y`.
    pub(super) fn plane_tile(
        &mut self,
        tile: PlaneTile,
        channels: usize,
        x: Value,
        w: Value,
        y: Value,
    ) {
        let PlaneTile {
            rows,
            vectors,
            unroll,
        } = tile;
        let plane = (vectors * LANES * 4) as i64;
        let n = rows * vectors;
        // Accumulators, then the weights pointer and a copy of the input's per row.
        let zero = self.splat_const(0.0);
        let mut carried = vec![zero; n];
        carried.push(w);
        carried.extend(std::iter::repeat_n(x, rows));
        let step = |fx: &mut Fx, c: &[Value], lanes: usize| {
            let (w, xs) = (c[n], &c[n + 1..]);
            let mut acc = c[..n].to_vec();
            for u in 0..lanes {
                for (r, &xr) in xs.iter().enumerate() {
                    let ws = fx.load_fixed(F32, w, (4 * (u * rows + r)) as i32);
                    let wv = fx.b.ins().splat(F32X4, ws);
                    for v in 0..vectors {
                        let at = (u as i64 * plane + 16 * v as i64) as i32;
                        let pv = fx.load_fixed(I32X4, xr, at);
                        let pv = fx.b.ins().bitcast(F32X4, bitcast_flags(), pv);
                        acc[r * vectors + v] = fx.fma(pv, wv, acc[r * vectors + v]);
                    }
                }
            }
            acc.push(fx.b.ins().iadd_imm_s(w, (4 * lanes * rows) as i64));
            for &xr in xs {
                acc.push(fx.b.ins().iadd_imm_s(xr, lanes as i64 * plane));
            }
            acc
        };
        let mut out = self.for_n_carry((channels / unroll) as u64, &carried, |fx, _, c| {
            step(fx, c, unroll)
        });
        if !channels.is_multiple_of(unroll) {
            out = step(self, &out, channels % unroll);
        }
        for (k, &a) in out[..n].iter().enumerate() {
            let (r, v) = (k / vectors, k % vectors);
            self.store(a, y, (r as i64 * plane + 16 * v as i64) as i32);
        }
    }
}

/// The disassembly of `tile` compiled alone for `isa` as `fn(x, w, y)` over 64 input
/// channels.
pub fn plane_tile_listing(tile: PlaneTile, isa: &dyn TargetIsa) -> Result<String, CodegenError> {
    listing(isa, |fx, p| fx.plane_tile(tile, 64, p[0], p[1], p[2]))
}

/// The disassembly of `shape` compiled alone for `isa` as `fn(x, w, y)`: zeroed
/// accumulators, the tile's loop over 64 steps (pixels 16 bytes apart, as at stride
/// 1), the accumulators stored to `y`.
pub fn tile_listing(shape: TileShape, isa: &dyn TargetIsa) -> Result<String, CodegenError> {
    listing(isa, |fx, p| {
        let ws = vec![p[1]; shape.pixels];
        let zero = fx.splat_const(0.0);
        let acc = vec![zero; shape.accumulators()];
        let walk = Walk::unrolled(shape);
        let acc = fx.tile_loop(shape, 64, walk, p[0], 16, &ws, &acc);
        for (k, a) in acc.into_iter().enumerate() {
            fx.store(a, p[2], (16 * k) as i32);
        }
    })
}

/// The disassembly of `fn(x, w, y)` with the body `body` makes, compiled for `isa`.
fn listing(
    isa: &dyn TargetIsa,
    body: impl FnOnce(&mut Fx, &[Value]),
) -> Result<String, CodegenError> {
    let mut sig = Signature::new(isa.default_call_conv());
    sig.params.extend([AbiParam::new(I64); 3]);
    let mut ctx =
        Context::for_function(Function::with_name_signature(UserFuncName::user(0, 0), sig));
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut fx = Fx {
            b: FunctionBuilder::new(&mut ctx.func, &mut fctx),
            features: Features::of(isa),
        };
        let entry = fx.b.create_block();
        fx.b.append_block_params_for_function_params(entry);
        fx.b.switch_to_block(entry);
        let p = fx.b.block_params(entry).to_vec();
        body(&mut fx, &p);
        fx.b.ins().return_(&[]);
        fx.b.seal_all_blocks();
        fx.b.finalize(isa.frontend_config());
    }
    ctx.set_disasm(true);
    let code = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|e| CodegenError::Cranelift(format!("{:?}", e.inner)))?;
    Ok(code.vcode.clone().unwrap_or_default())
}
