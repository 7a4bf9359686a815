//! Matrix multiplication: `C = alpha * A B + epilogue`, the core of Gemm, MatMul and
//! (through im2col) convolution.
//!
//! The node's [`Tile`] (from the tiling pass, or [`default_tile`]) sets the blocking.
//! A register tile is `rows` by `cols / 4` vectors: per step of the inner dimension,
//! `rows` broadcast elements of A and the vector loads of B feed `rows * cols / 4`
//! fused multiply-adds into accumulators that stay in registers. The columns are
//! walked a cache block (`col_block`) at a time and the inner dimension in blocks of
//! `k_block`, the partial sums kept in C between blocks, so the B panel a block reads
//! stays in L2 and the A and B slivers a tile reads stay in L1. Tails of fewer rows or
//! columns get smaller tiles, the last columns scalar accumulators. All sizes are
//! compile-time constants; only the base pointers and task ranges are run-time values.

use cnnc_ir::op::{Activation, Epilogue, Gemm, Tile};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_module::FuncId;

use super::activation::costly_span;
use super::movement::{CopyPlan, copy_launch};
use super::nest::dense_strides;
use super::{KernelCx, f32_constant, on_every_core, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES, mem};

/// Most steps of the inner dimension per iteration (`Tile::unroll`): the code grows with
/// them, and nothing gains beyond a few.
const MAX_UNROLL: usize = 8;

/// Bytes of A (all rows, one block of the inner dimension) that stay in L1 while the
/// tiles sweep it once per column of tiles: a third of the smallest L1 we target.
const A_IN_L1: usize = 10 << 10;

/// The blocking without a tiling pass (`-O0`): a 4 x 8 register tile (eight
/// accumulators, what the tiling pass picks for large products), no cache blocks.
pub fn default_tile(k: usize, n: usize) -> Tile {
    Tile {
        rows: 4,
        cols: 2 * LANES,
        k_block: k.max(1),
        col_block: n.max(1),
        unroll: 2,
    }
}

/// Checks that code generation can follow `tile`.
pub fn check_tile(t: &Tile) -> Result<(), CodegenError> {
    if t.rows == 0
        || t.cols == 0
        || !t.cols.is_multiple_of(LANES)
        || t.k_block == 0
        || !(1..=MAX_UNROLL).contains(&t.unroll)
    {
        return Err(CodegenError::Unsupported(format!(
            "tile {t}: rows and blocks must be positive, columns whole vectors of {LANES}, steps per iteration 1 to {MAX_UNROLL}"
        )));
    }
    Ok(())
}

/// What is added to `alpha * A B` first.
#[derive(Clone, Copy)]
pub enum Bias {
    None,
    /// `+ bias[i]` per row (convolution bias).
    Row(Value),
    /// `+ beta * C0[i * row + j * col]` (Gemm's C, possibly broadcast).
    Matrix {
        ptr: Value,
        row: i64,
        col: i64,
        beta: f32,
    },
}

/// The fused epilogue applied after the bias: `activation(y + residual)`.
#[derive(Clone, Copy, Default)]
pub struct Post {
    /// A tensor laid out like C (same row stride) added element by element.
    pub residual: Option<Value>,
    pub activation: Option<Activation>,
    /// PRelu's slope, one per row.
    pub slope: Option<Value>,
    /// The span function of a costly activation (see `activation.rs`): the vector
    /// columns store without the activation, and each finished cache block's rows run
    /// it. Inline in a tile's epilogue, its constants lived beside the accumulators and
    /// the allocator spilled them in the main loop (measured on Zen 5, a 3x3x3
    /// convolution of 64 channels on 8x28x28 through im2col: ReLU 26.6 ms, SiLU inline
    /// 32.0 ms, by its span function 27.1 ms).
    pub span: Option<FuncId>,
}

/// One matrix product with static sizes and strides (in elements) and run-time bases.
/// B's rows are contiguous; A is read element by element with any strides.
#[derive(Clone, Copy)]
pub struct Product {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Value,
    pub a_row: i64,
    pub a_col: i64,
    pub b: Value,
    pub b_row: i64,
    pub c: Value,
    pub c_row: i64,
    /// B is scratch the same function fills first (an im2col panel).
    pub b_scratch: bool,
    pub alpha: f32,
    pub bias: Bias,
    pub post: Post,
    pub tile: Tile,
}

/// Which dimension the tasks of a product split.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Rows,
    Cols,
}

/// A stretch of the inner dimension that one pass over a tile covers.
#[derive(Clone, Copy)]
struct KPart {
    /// First index, a run-time value.
    start: Value,
    len: usize,
    /// The first pass starts from zero, later ones from the partial sums in C.
    first: bool,
    /// The last pass applies alpha, the bias and the epilogue.
    last: bool,
}

/// Whether a task computes a tail of rows or columns.
#[derive(Clone, Copy)]
enum When {
    Always,
    If(Value),
}

impl Fx<'_> {
    /// One register tile over one part of the inner dimension: rows `i0..i0+mr` (i0 a
    /// value), columns `j0 ..` as `nv` vectors then `ns` single columns.
    #[allow(clippy::too_many_arguments)]
    fn gemm_tile(
        &mut self,
        p: &Product,
        i0: Value,
        mr: usize,
        j0: Value,
        nv: usize,
        ns: usize,
        part: KPart,
    ) {
        // Row bases of A and C and the column base of B, in bytes.
        let a_rows: Vec<Value> = (0..mr)
            .map(|r| {
                let i = self.b.ins().iadd_imm_s(i0, r as i64);
                self.addr(p.a, i, 4 * p.a_row, 0)
            })
            .collect();
        let c_rows: Vec<Value> = (0..mr)
            .map(|r| {
                let i = self.b.ins().iadd_imm_s(i0, r as i64);
                let crow = self.addr(p.c, i, 4 * p.c_row, 0);
                self.addr(crow, j0, 4, 0)
            })
            .collect();
        let init: Vec<Value> = if part.first {
            let zero_v = self.splat_const(0.0);
            let zero_s = self.f32(0.0);
            let mut z = vec![zero_v; mr * nv];
            z.extend(vec![zero_s; mr * ns]);
            z
        } else {
            let mut acc: Vec<Value> = (0..mr * nv)
                .map(|t| self.load(F32X4, c_rows[t / nv], (16 * (t % nv)) as i32))
                .collect();
            acc.extend(
                (0..mr * ns)
                    .map(|t| self.load(F32, c_rows[t / ns], (16 * nv + 4 * (t % ns)) as i32)),
            );
            acc
        };
        // One pointer walks A's tile column and one B's tile row, the rows of A at
        // constant offsets: no multiplications in the loop. (Where the offsets do not
        // fit an i32, rows of over half a GiB, each row's address is computed.)
        let (a_step, b_step) = (4 * p.a_col, 4 * p.b_row);
        let a_stride = 4 * p.a_row;
        let direct = i32::try_from(a_stride * mr.saturating_sub(1) as i64).is_ok();
        let a0 = self.addr(a_rows[0], part.start, a_step, 0);
        let b_col = self.addr(p.b, j0, 4, 0);
        let b0 = self.addr(b_col, part.start, b_step, 0);
        // One step of the inner dimension at `off` steps past the pointers. A is never
        // written while the product runs, and B only when it is this function's own
        // scratch: elsewhere their loads may move, so that each broadcast of A loads
        // straight from memory and each vector of B can be an FMA's memory operand.
        let b_flags = if p.b_scratch {
            mem()
        } else {
            mem().with_readonly().with_can_move()
        };
        let step = |fx: &mut Self, pa: Value, pb: Value, off: i64, acc: &mut [Value]| {
            let load_b = |fx: &mut Self, ty, at: i64| {
                fx.b.ins().load(ty, b_flags, pb, (b_step * off + at) as i32)
            };
            let bv: Vec<Value> = (0..nv).map(|v| load_b(fx, F32X4, 16 * v as i64)).collect();
            let bs: Vec<Value> = (0..ns)
                .map(|s| load_b(fx, F32, (16 * nv + 4 * s) as i64))
                .collect();
            for r in 0..mr {
                let a = if direct {
                    fx.load_fixed(F32, pa, (a_step * off + a_stride * r as i64) as i32)
                } else {
                    let walked = fx.b.ins().isub(pa, a_rows[0]);
                    let at = fx.b.ins().iadd(a_rows[r], walked);
                    fx.load_fixed(F32, at, (a_step * off) as i32)
                };
                if nv > 0 {
                    let av = fx.b.ins().splat(F32X4, a);
                    for v in 0..nv {
                        acc[r * nv + v] = fx.fma(av, bv[v], acc[r * nv + v]);
                    }
                }
                for (s, &b) in bs.iter().enumerate() {
                    let at = mr * nv + r * ns + s;
                    acc[at] = fx.fma(a, b, acc[at]);
                }
            }
        };
        // Several steps per iteration (the tile's `unroll`, 2 from the tiling pass)
        // divide the loop's overhead and the moves Cranelift makes of the accumulators
        // on its back edge; the steps left over follow.
        // The pointers after the accumulators, so that their increments follow the
        // FMAs (see `Fx::for_range_carry`).
        let n = init.len();
        let mut carried = init;
        carried.extend([a0, b0]);
        let unroll = p.tile.unroll;
        let iterations = (part.len / unroll) as u64;
        let mut out = self.for_n_carry(iterations, &carried, |fx, _, carried| {
            let (pa, pb) = (carried[n], carried[n + 1]);
            let mut next = carried[..n].to_vec();
            for u in 0..unroll {
                step(fx, pa, pb, u as i64, &mut next);
            }
            next.push(fx.b.ins().iadd_imm_s(pa, unroll as i64 * a_step));
            next.push(fx.b.ins().iadd_imm_s(pb, unroll as i64 * b_step));
            next
        });
        let (pa, pb) = (out[n], out[n + 1]);
        for u in 0..part.len % unroll {
            step(self, pa, pb, u as i64, &mut out[..n]);
        }
        let acc = &out[..n];
        for r in 0..mr {
            let crow = c_rows[r];
            if !part.last {
                for v in 0..nv {
                    self.store(acc[r * nv + v], crow, (16 * v) as i32);
                }
                for s in 0..ns {
                    self.store(acc[mr * nv + r * ns + s], crow, (16 * nv + 4 * s) as i32);
                }
                continue;
            }
            let i = self.b.ins().iadd_imm_s(i0, r as i64);
            let bias = match p.bias {
                Bias::Row(bias) => {
                    let at = self.addr(bias, i, 4, 0);
                    Some(self.load(F32, at, 0))
                }
                _ => None,
            };
            let slope = p.post.slope.map(|s| {
                let at = self.addr(s, i, 4, 0);
                self.load(F32, at, 0)
            });
            let residual_row = p.post.residual.map(|r| {
                let row = self.addr(r, i, 4 * p.c_row, 0);
                self.addr(row, j0, 4, 0)
            });
            for col in 0..nv + ns {
                let vector = col < nv;
                let ty = if vector { F32X4 } else { F32 };
                let mut y = if vector {
                    acc[r * nv + col]
                } else {
                    acc[mr * nv + r * ns + (col - nv)]
                };
                let jj = if vector { 4 * col } else { 4 * nv + (col - nv) };
                if p.alpha != 1.0 {
                    let a = self.fconst(ty, p.alpha);
                    y = self.b.ins().fmul(y, a);
                }
                match p.bias {
                    Bias::None => {}
                    Bias::Row(_) => {
                        let b = bias.expect("loaded above");
                        let b = if vector {
                            self.b.ins().splat(F32X4, b)
                        } else {
                            b
                        };
                        y = self.b.ins().fadd(y, b);
                    }
                    Bias::Matrix {
                        ptr,
                        row,
                        col: cs,
                        beta,
                    } => {
                        let base = self.addr(ptr, i, 4 * row, 0);
                        let j = self.b.ins().iadd_imm_s(j0, jj as i64);
                        let at = self.addr(base, j, 4 * cs, 0);
                        let c0 = if vector && cs == 0 {
                            let s = self.load(F32, at, 0);
                            self.b.ins().splat(F32X4, s)
                        } else {
                            self.load(ty, at, 0)
                        };
                        let bt = self.fconst(ty, beta);
                        y = self.fma(c0, bt, y);
                    }
                }
                if let Some(row) = residual_row {
                    let r = self.load(ty, row, (4 * jj) as i32);
                    y = self.b.ins().fadd(y, r);
                }
                // Vector columns leave a costly activation to the span function.
                let activation = p
                    .post
                    .activation
                    .filter(|_| !vector || p.post.span.is_none());
                if let Some(a) = activation {
                    let s = slope.map(|s| {
                        if vector {
                            self.b.ins().splat(F32X4, s)
                        } else {
                            s
                        }
                    });
                    y = self.activate(a, y, s);
                }
                self.store(y, crow, (4 * jj) as i32);
            }
        }
    }

    /// Calls `body` for each part of the inner dimension, in order: the first block,
    /// the middle ones (a run-time loop), the last.
    fn k_parts(&mut self, p: &Product, mut body: impl FnMut(&mut Self, KPart)) {
        let kc = p.tile.k_block.min(p.k).max(1);
        let parts = p.k.div_ceil(kc);
        let zero = self.iconst(0);
        if parts <= 1 {
            let whole = KPart {
                start: zero,
                len: p.k,
                first: true,
                last: true,
            };
            body(self, whole);
            return;
        }
        let part = |start, len, first, last| KPart {
            start,
            len,
            first,
            last,
        };
        body(self, part(zero, kc, true, false));
        self.for_n((parts - 2) as u64, |fx, b| {
            let start = fx.b.ins().imul_imm_s(b, kc as i64);
            let start = fx.b.ins().iadd_imm_s(start, kc as i64);
            body(fx, part(start, kc, false, false));
        });
        let start = self.iconst(((parts - 1) * kc) as i64);
        body(self, part(start, p.k - (parts - 1) * kc, false, true));
    }

    fn when(&mut self, w: When, body: impl FnOnce(&mut Self)) {
        match w {
            When::Always => body(self),
            When::If(c) => self.if_then(c, body),
        }
    }

    /// Whole row tiles `rows` (a run-time range) by whole column tiles `cols`, then
    /// the row tail when `row_tail` and the column tail when `col_tail`.
    fn gemm_region(
        &mut self,
        p: &Product,
        rows: (Value, Value),
        row_tail: When,
        cols: (Value, Value),
        col_tail: When,
    ) {
        let (mr, nr) = (p.tile.rows, p.tile.cols);
        let nv = nr / LANES;
        let (row_rest, col_rest) = (p.m % mr, p.n % nr);
        let tail_i0 = self.iconst((p.m - row_rest) as i64);
        // Column tiles per cache block.
        let per_block = (p.tile.col_block / nr).max(1) as i64;
        let span = self.b.ins().isub(cols.1, cols.0);
        let span = self.b.ins().iadd_imm_s(span, per_block - 1);
        let blocks = self.b.ins().udiv_imm_u(span, per_block);
        let zero = self.iconst(0);
        self.for_range(zero, blocks, |fx, cb| {
            let jc = fx.b.ins().imul_imm_s(cb, per_block);
            let jc = fx.b.ins().iadd(cols.0, jc);
            let end = fx.b.ins().iadd_imm_s(jc, per_block);
            let jend = fx.b.ins().umin(end, cols.1);
            fx.k_parts(p, |fx, part| {
                // Each row of tiles is a column of A `k_block` deep. When all of them
                // stay in L1, the columns go outermost: each B sliver is read from L2
                // once, for every row of tiles; otherwise the rows go outermost, each
                // A sliver read once and the cache block of B streamed from L2.
                let a_in_l1 = p.m * part.len * 4 <= A_IN_L1;
                let column = |fx: &mut Self, j0: Value| {
                    fx.for_range(rows.0, rows.1, |fx, ib| {
                        let i0 = fx.b.ins().imul_imm_s(ib, mr as i64);
                        fx.gemm_tile(p, i0, mr, j0, nv, 0, part);
                    });
                    if row_rest > 0 {
                        fx.when(row_tail, |fx| {
                            fx.gemm_tile(p, tail_i0, row_rest, j0, nv, 0, part)
                        });
                    }
                };
                let tiles = |fx: &mut Self, i0: Value, mr: usize| {
                    fx.for_range(jc, jend, |fx, jb| {
                        let j0 = fx.b.ins().imul_imm_s(jb, nr as i64);
                        fx.gemm_tile(p, i0, mr, j0, nv, 0, part);
                    });
                };
                if a_in_l1 {
                    fx.for_range(jc, jend, |fx, jb| {
                        let j0 = fx.b.ins().imul_imm_s(jb, nr as i64);
                        column(fx, j0);
                    });
                    return;
                }
                fx.for_range(rows.0, rows.1, |fx, ib| {
                    let i0 = fx.b.ins().imul_imm_s(ib, mr as i64);
                    tiles(fx, i0, mr);
                });
                if row_rest > 0 {
                    fx.when(row_tail, |fx| tiles(fx, tail_i0, row_rest));
                }
            });
            if let Some(span) = p.post.span {
                // The block's tiles are final: their rows' vectors, in cache.
                let tiles = fx.b.ins().isub(jend, jc);
                let count = fx.b.ins().imul_imm_s(tiles, nv as i64);
                let col0 = fx.b.ins().imul_imm_s(jc, nr as i64);
                fx.activate_rows(p, span, (rows, row_tail, tail_i0), col0, count);
            }
        });
        if col_rest > 0 {
            let j0 = self.iconst((p.n - col_rest) as i64);
            let (tv, ts) = (col_rest / LANES, col_rest % LANES);
            self.when(col_tail, |fx| {
                fx.k_parts(p, |fx, part| {
                    fx.for_range(rows.0, rows.1, |fx, ib| {
                        let i0 = fx.b.ins().imul_imm_s(ib, mr as i64);
                        fx.gemm_tile(p, i0, mr, j0, tv, ts, part);
                    });
                    if row_rest > 0 {
                        fx.when(row_tail, |fx| {
                            fx.gemm_tile(p, tail_i0, row_rest, j0, tv, ts, part)
                        });
                    }
                });
                if let (Some(span), true) = (p.post.span, tv > 0) {
                    let count = fx.iconst(tv as i64);
                    fx.activate_rows(p, span, (rows, row_tail, tail_i0), j0, count);
                }
            });
        }
    }

    /// Runs span function `span` on `count` vectors from column `col0` of the rows of
    /// row tiles `rows.0..rows.1` and, when `row_tail` holds, the rows from `tail_i0`
    /// to the last.
    fn activate_rows(
        &mut self,
        p: &Product,
        span: FuncId,
        (rows, row_tail, tail_i0): ((Value, Value), When, Value),
        col0: Value,
        count: Value,
    ) {
        let activate = |fx: &mut Self, lo: Value, hi: Value| {
            fx.for_range(lo, hi, |fx, i| {
                let row = fx.addr(p.c, i, 4 * p.c_row, 0);
                let at = fx.addr(row, col0, 4, 0);
                fx.call_span(span, at, at, count);
            });
        };
        let mr = p.tile.rows as i64;
        let lo = self.b.ins().imul_imm_s(rows.0, mr);
        let hi = self.b.ins().imul_imm_s(rows.1, mr);
        activate(self, lo, hi);
        if !p.m.is_multiple_of(p.tile.rows) {
            self.when(row_tail, |fx| {
                let end = fx.iconst(p.m as i64);
                activate(fx, tail_i0, end);
            });
        }
    }

    /// The whole product, or the share of task `task` of `tasks` split along `split`.
    pub fn gemm(&mut self, p: &Product, task: Option<(Value, usize, Split)>) {
        let (full_rows, full_cols) = (p.m / p.tile.rows, p.n / p.tile.cols);
        let zero = self.iconst(0);
        let all_rows = (zero, self.iconst(full_rows as i64));
        let all_cols = (zero, self.iconst(full_cols as i64));
        match task {
            Some((task, tasks, split)) if tasks > 1 => {
                let last = self
                    .b
                    .ins()
                    .icmp_imm_s(IntCC::Equal, task, (tasks - 1) as i64);
                if split == Split::Rows {
                    let rows = self.task_range(task, full_rows, tasks);
                    self.gemm_region(p, rows, When::If(last), all_cols, When::Always);
                } else {
                    let cols = self.task_range(task, full_cols, tasks);
                    self.gemm_region(p, all_rows, When::Always, cols, When::If(last));
                }
            }
            _ => self.gemm_region(p, all_rows, When::Always, all_cols, When::Always),
        }
    }
}

/// How to split a lone product (one batch) between tasks.
fn split_for(m: usize, n: usize, k: usize, tile: &Tile) -> (usize, Split) {
    let work = m * n * k;
    let (row_blocks, col_blocks) = (m / tile.rows, n / tile.cols);
    if col_blocks >= row_blocks {
        (tasks_for(col_blocks, work), Split::Cols)
    } else {
        (tasks_for(row_blocks, work), Split::Rows)
    }
}

/// Transposes a 2-D operand into row-major `[cols, rows]` scratch (a separate launch).
fn transposed(
    cx: &mut KernelCx,
    src: usize,
    rows: usize,
    cols: usize,
) -> Result<usize, CodegenError> {
    let dst = cx.scratch(rows * cols * 4);
    let plan = CopyPlan::strided(&[cols, rows], vec![1, cols as isize], 0, 4);
    copy_launch(cx, src, dst, plan)?;
    Ok(dst)
}

/// The residual slot of a fused epilogue (activations need no argument; PRelu, which
/// needs a per-row slope, is fused into convolutions only).
fn post_args(cx: &mut KernelCx, e: &Epilogue) -> Result<Option<usize>, CodegenError> {
    if e.activation == Some(Activation::PRelu) {
        return Err(CodegenError::Unsupported(
            "a PRelu fused into a matrix product".into(),
        ));
    }
    let at = cx.inputs.len() - e.extra_inputs();
    Ok(e.residual.then(|| cx.input(at)))
}

/// Strides (elements) of a tensor of `shape` read broadcast over `[rows, cols]` (its
/// last two dims, numpy-aligned).
fn matrix_strides(shape: &[usize]) -> (i64, i64) {
    let own = dense_strides(shape);
    let r = shape.len();
    let at = |back: usize| -> i64 {
        if r < back || shape[r - back] == 1 {
            0
        } else {
            own[r - back] as i64
        }
    };
    (at(2), at(1))
}

pub fn emit_gemm(cx: &mut KernelCx, g: &Gemm) -> Result<(), CodegenError> {
    let ta = cx.inputs[0].ty.shape.clone();
    let (m, n) = (cx.outputs[0].1.shape[0], cx.outputs[0].1.shape[1]);
    let k = if g.trans_a { ta[0] } else { ta[1] };
    let residual = post_args(cx, &g.epilogue)?;
    let own = cx.inputs.len() - g.epilogue.extra_inputs();
    let a = cx.input(0);
    if m == 1 && g.trans_b {
        return emit_gemv(cx, g, (a, residual), n, k);
    }
    // B must be row-major [K, N]: transposed at compile time when constant.
    let b = match (g.trans_b, cx.inputs[1].constant) {
        (false, _) => cx.input(1),
        (true, Some(t)) => {
            let bt = cnnc_ir::transpose_2d(&t.view::<f32>()?, n, k);
            cx.table(bt)
        }
        (true, None) => {
            let src = cx.input(1);
            transposed(cx, src, n, k)?
        }
    };
    let cin = (own > 2).then(|| {
        let (row, col) = matrix_strides(&cx.inputs[2].ty.shape.clone());
        (cx.input(2), row, col)
    });
    let out = cx.output(0);
    let (a_row, a_col) = if g.trans_a {
        (1, m as i64)
    } else {
        (k as i64, 1)
    };
    let tile = cx.tile.unwrap_or_else(|| default_tile(k, n));
    check_tile(&tile)?;
    let (tasks, split) = split_for(m, n, k, &tile);
    let (alpha, beta, activation) = (g.alpha, g.beta, g.epilogue.activation);
    let span = costly_span(cx, activation)?;
    cx.launch(tasks, |fx, task, ptrs| {
        let bias = match cin {
            // Even with beta = 0, as ONNX defines Gemm: 0 * inf is NaN.
            Some((c, row, col)) => Bias::Matrix {
                ptr: ptrs[c],
                row,
                col,
                beta,
            },
            None => Bias::None,
        };
        let post = Post {
            residual: residual.map(|r| ptrs[r]),
            activation,
            slope: None,
            span,
        };
        let p = Product {
            m,
            n,
            k,
            a: ptrs[a],
            a_row,
            a_col,
            b: ptrs[b],
            b_row: n as i64,
            c: ptrs[out],
            c_row: n as i64,
            b_scratch: false,
            alpha,
            bias,
            post,
            tile,
        };
        fx.gemm(&p, Some((task, tasks, split)));
        Ok(())
    })
}

/// Rows of B per step of the matrix-vector kernel.
const GEMV_ROWS: usize = 4;

/// Groups of [`GEMV_ROWS`] rows the matrix-vector kernel reads side by side, each a
/// stream of B from its own part of the task's rows, with one accumulator per row
/// (eight FMA chains hide the latency). Against one stream, at 1 and 2 threads:
/// AlexNet's 9216 x 4096 layer 4.06-4.16 -> 3.58-3.60 and 2.15-2.16 -> 1.71-1.77 ms,
/// VGG-19's 25088 x 4096 12.2-13.0 -> 11.0-11.5 and 6.5-6.9 -> 5.6-5.9 ms (ONNX
/// Runtime: 12.4 and 5.9); three streams measured the same as two, four slower (16
/// accumulators).
const GEMV_STREAMS: usize = 2;

/// A constant `[N, K]` B for the matrix-vector kernel, into `out` (`N * K` floats) with
/// its rows interleaved so that the kernel reads one stream in memory order: each group
/// of [`GEMV_ROWS`] rows (the last group the rest) holds, per step of eight columns,
/// the eight values of each of its rows, then each row's last `K % 8`. A group still
/// starts where its first row did, so the groups are rearranged in place of one
/// another, on every core (VGG-19's first fully connected layer is 411 MB).
///
/// It moves bytes (4 per value), so that weights still in the model file, at any
/// alignment there, are read in place.
fn interleave_rows(b: &[u8], k: usize, out: &mut [u8]) {
    let (group, work) = (GEMV_ROWS * k * 4, out.len() / 4);
    let mut groups: Vec<_> = out
        .chunks_mut(group.max(1))
        .zip(b.chunks(group.max(1)))
        .collect();
    on_every_core(&mut groups, work, |(dst, src)| {
        interleave_group(dst, src, 4 * k)
    });
}

/// One group of [`interleave_rows`]: `src` holds its rows of `row` bytes.
fn interleave_group(dst: &mut [u8], src: &[u8], row: usize) {
    let step = 2 * LANES * 4;
    let main = row / step * step;
    let rows = src.len() / row.max(1);
    let (body, tails) = dst.split_at_mut(rows * main);
    for (r, values) in src.chunks_exact(row).enumerate() {
        for (c, piece) in values[..main].chunks_exact(step).enumerate() {
            let at = (c * rows + r) * step;
            body[at..at + step].copy_from_slice(piece);
        }
        let tail = row - main;
        tails[r * tail..(r + 1) * tail].copy_from_slice(&values[main..]);
    }
}

/// `y[j] = alpha * A[0, :] . B[j, :] + beta * C[j]`, epilogue: a Gemm of one row whose
/// B is `[N, K]` (a fully connected layer at batch 1). Each output is a dot product of
/// two rows of K, so B streams through once at full bandwidth, where the `[K, N]` tile
/// would read short pieces of many rows. A constant B is interleaved at compile time
/// ([`interleave_rows`]): one stream of addresses instead of one per row of a group,
/// which the hardware prefetcher follows further ahead (a 9216 x 4096 layer 5.6 -> 4.7
/// ms, 4096 x 4096 2.85 -> 1.9 ms; eight rows per group measured no faster). Two
/// groups from distant rows go side by side ([`GEMV_STREAMS`]): two such streams.
fn emit_gemv(
    cx: &mut KernelCx,
    g: &Gemm,
    (a, residual): (usize, Option<usize>),
    n: usize,
    k: usize,
) -> Result<(), CodegenError> {
    let (b, packed) = match cx.inputs[1].constant {
        Some(t) => {
            let t = f32_constant(t)?;
            let b = cx.table_filled(n * k, move |dst| {
                interleave_rows(&t.le_bytes(), k, bytemuck::cast_slice_mut(dst));
            });
            (b, true)
        }
        None => (cx.input(1), false),
    };
    let own = cx.inputs.len() - g.epilogue.extra_inputs();
    let cin = (own > 2).then(|| {
        let (_, col) = matrix_strides(&cx.inputs[2].ty.shape.clone());
        (cx.input(2), col)
    });
    let y_arg = cx.output(0);
    let tasks = tasks_for(n.div_ceil(GEMV_ROWS), n * k);
    let (alpha, beta, activation) = (g.alpha, g.beta, g.epilogue.activation);
    let vecs = k / (2 * LANES);
    cx.launch(tasks, |fx, task, ptrs| {
        let groups = n / GEMV_ROWS;
        // Task ranges over groups of rows; the last task also takes the rest.
        let (lo, hi) = fx.task_range(task, groups, tasks);
        // The dot products of `rows` rows from each group starting at `j0s` (one
        // stream of B each), one accumulator per row: every row sums in the same order
        // whichever loop takes it, so equal rows give equal outputs (a softmax of
        // logits near 4e12, ulps of 2.6e5, turns any difference into a wrong answer).
        let dot = |fx: &mut Fx, j0s: &[Value], rows: usize| {
            let streams = j0s.len();
            let n_acc = streams * rows;
            let zero = fx.splat_const(0.0);
            let mut carried = vec![zero; n_acc];
            carried.push(ptrs[a]);
            for &j0 in j0s {
                carried.push(fx.addr(ptrs[b], j0, 4 * k as i64, 0));
            }
            // Bytes from one row's values to the next row's, and per step of the loop.
            let (row_step, b_step) = if packed {
                (32, 32 * rows as i64)
            } else {
                (4 * k, 32)
            };
            let out = fx.for_n_carry(vecs as u64, &carried, |fx, _, c| {
                let pa = c[n_acc];
                let x0 = fx.load_fixed(F32X4, pa, 0);
                let x1 = fx.load_fixed(F32X4, pa, 16);
                let mut next = Vec::with_capacity(c.len());
                for (st, &pb) in c[n_acc + 1..].iter().enumerate() {
                    for r in 0..rows {
                        let row = (row_step * r) as i32;
                        let w0 = fx.load_fixed(F32X4, pb, row);
                        let w1 = fx.load_fixed(F32X4, pb, row + 16);
                        let v = fx.fma(w0, x0, c[st * rows + r]);
                        next.push(fx.fma(w1, x1, v));
                    }
                }
                next.push(fx.b.ins().iadd_imm_s(pa, 32));
                for &pb in &c[n_acc + 1..] {
                    next.push(fx.b.ins().iadd_imm_s(pb, b_step));
                }
                next
            });
            // The last K % 8 products, one at a time, from column `main`.
            let main = vecs * 2 * LANES;
            for (st, &j0) in j0s.iter().enumerate() {
                for r in 0..rows {
                    let mut y = fx.hsum(out[st * rows + r]);
                    // Where column `main` of row `r` would be: interleaved, the row's tail
                    // follows the group's steps and the tails of the rows before it.
                    let tail = if packed {
                        4 * (rows * main + r * (k - main)) as i64 - 4 * main as i64
                    } else {
                        (4 * k * r) as i64
                    };
                    let row = fx.addr(ptrs[b], j0, 4 * k as i64, tail);
                    for t in main..k {
                        let xa = fx.load(F32, ptrs[a], (4 * t) as i32);
                        let wb = fx.load(F32, row, (4 * t) as i32);
                        y = fx.fma(xa, wb, y);
                    }
                    if alpha != 1.0 {
                        let al = fx.f32(alpha);
                        y = fx.b.ins().fmul(y, al);
                    }
                    let j = fx.b.ins().iadd_imm_s(j0, r as i64);
                    if let Some((c, col)) = cin {
                        // Even with beta = 0, as ONNX defines Gemm: 0 * inf is NaN.
                        let at = fx.addr(ptrs[c], j, 4 * col, 0);
                        let c0 = fx.load(F32, at, 0);
                        let bt = fx.f32(beta);
                        y = fx.fma(c0, bt, y);
                    }
                    if let Some(res) = residual {
                        let at = fx.addr(ptrs[res], j, 4, 0);
                        let rv = fx.load(F32, at, 0);
                        y = fx.b.ins().fadd(y, rv);
                    }
                    if let Some(act) = activation {
                        y = fx.activate(act, y, None);
                    }
                    let at = fx.addr(ptrs[y_arg], j, 4, 0);
                    fx.store(y, at, 0);
                }
            }
        };
        // The task's groups in `GEMV_STREAMS` equal parts read side by side, then the
        // few left over one at a time.
        let count = fx.b.ins().isub(hi, lo);
        let part = fx.b.ins().udiv_imm_u(count, GEMV_STREAMS as i64);
        let side_by_side = fx.b.ins().iadd(lo, part);
        fx.for_range(lo, side_by_side, |fx, grp| {
            let mut j0s = Vec::with_capacity(GEMV_STREAMS);
            let mut g = grp;
            for _ in 0..GEMV_STREAMS {
                j0s.push(fx.b.ins().imul_imm_s(g, GEMV_ROWS as i64));
                g = fx.b.ins().iadd(g, part);
            }
            dot(fx, &j0s, GEMV_ROWS);
        });
        let paired = fx.b.ins().imul_imm_s(part, GEMV_STREAMS as i64);
        let rest = fx.b.ins().iadd(lo, paired);
        fx.for_range(rest, hi, |fx, grp| {
            let j0 = fx.b.ins().imul_imm_s(grp, GEMV_ROWS as i64);
            dot(fx, &[j0], GEMV_ROWS);
        });
        if !n.is_multiple_of(GEMV_ROWS) {
            let last = fx.b.ins().icmp_imm_s(IntCC::Equal, task, tasks as i64 - 1);
            fx.if_then(last, |fx| {
                let j0 = fx.iconst((groups * GEMV_ROWS) as i64);
                dot(fx, &[j0], n % GEMV_ROWS);
            });
        }
        Ok(())
    })
}

/// numpy matmul: batch axes broadcast, 1-D operands promoted; then a broadcast bias
/// and the epilogue.
pub fn emit_matmul(cx: &mut KernelCx, with_bias: bool, e: &Epilogue) -> Result<(), CodegenError> {
    let sa = cx.inputs[0].ty.shape.clone();
    let sb = cx.inputs[1].ty.shape.clone();
    let a2: Vec<usize> = if sa.len() == 1 {
        vec![1, sa[0]]
    } else {
        sa.clone()
    };
    let b2: Vec<usize> = if sb.len() == 1 {
        vec![sb[0], 1]
    } else {
        sb.clone()
    };
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let batch = cnnc_ir::infer::broadcast_shapes(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    let out_shape = cx.outputs[0].1.shape.clone();
    if (with_bias || !e.is_empty()) && (sa.len() < 2 || sb.len() < 2) {
        return Err(CodegenError::Unsupported(
            "a fused matmul epilogue with 1-D operands".into(),
        ));
    }
    let residual = post_args(cx, e)?;
    // The bias, aligned to the output: its matrix strides and its batch part.
    let bias = with_bias.then(|| {
        let shape = cx.inputs[2].ty.shape.clone();
        let mut full = vec![1; out_shape.len() - shape.len()];
        full.extend(&shape);
        let (row, col) = matrix_strides(&full);
        let batch_part = full[..full.len() - 2].to_vec();
        (cx.input(2), row, col, batch_part)
    });
    let bias_batch = bias.as_ref().map_or(vec![], |b| b.3.clone());
    let nest = super::nest::Nest::broadcast(
        &batch,
        &[&a2[..a2.len() - 2], &b2[..b2.len() - 2], &bias_batch],
    );
    // Elements per batch step of the bias: the size of its matrix part.
    let bias_batch_elems: i64 = if with_bias {
        cx.inputs[2]
            .ty
            .shape
            .iter()
            .rev()
            .take(2)
            .product::<usize>() as i64
    } else {
        0
    };
    let batches = nest.total();
    let (a, b, out) = (cx.input(0), cx.input(1), cx.output(0));
    let tile = cx.tile.unwrap_or_else(|| default_tile(k, n));
    check_tile(&tile)?;
    let (tasks, split) = if batches > 1 {
        (tasks_for(batches, batches * m * n * k), None)
    } else {
        let (t, s) = split_for(m, n, k, &tile);
        (t, Some(s))
    };
    let activation = e.activation;
    let span = costly_span(cx, activation)?;
    cx.launch(tasks, |fx, task, ptrs| {
        let (pa, pb, pc) = (ptrs[a], ptrs[b], ptrs[out]);
        let one = |fx: &mut Fx, offs: &[Value], split: Option<(Value, usize, Split)>| {
            let ao = fx.addr(pa, offs[1], 4 * (m * k) as i64, 0);
            let bo = fx.addr(pb, offs[2], 4 * (k * n) as i64, 0);
            let co = fx.addr(pc, offs[0], 4 * (m * n) as i64, 0);
            let bias = match &bias {
                Some((slot, row, col, _)) => {
                    let at = fx.addr(ptrs[*slot], offs[3], 4 * bias_batch_elems, 0);
                    Bias::Matrix {
                        ptr: at,
                        row: *row,
                        col: *col,
                        beta: 1.0,
                    }
                }
                None => Bias::None,
            };
            let post = Post {
                residual: residual.map(|r| fx.addr(ptrs[r], offs[0], 4 * (m * n) as i64, 0)),
                activation,
                slope: None,
                span,
            };
            let p = Product {
                m,
                n,
                k,
                a: ao,
                a_row: k as i64,
                a_col: 1,
                b: bo,
                b_row: n as i64,
                c: co,
                c_row: n as i64,
                b_scratch: false,
                alpha: 1.0,
                bias,
                post,
                tile,
            };
            fx.gemm(&p, split);
        };
        let zero = fx.iconst(0);
        let base = [zero; 4];
        match split {
            Some(s) => one(fx, &base, Some((task, tasks, s))),
            None => {
                let outer = (tasks > 1).then(|| fx.task_range(task, nest.dims[0], tasks));
                fx.for_nest(&nest.dims, &nest.strides, &base, outer, &mut |fx, offs| {
                    one(fx, offs, None)
                });
            }
        }
        Ok(())
    })
}
