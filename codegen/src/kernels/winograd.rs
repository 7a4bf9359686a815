//! Winograd's input and output transforms (the matrix products between them are a
//! grouped pointwise convolution, see `cnnc_passes`' `winograd` pass). On a blocked
//! tensor a vector holds one channel block, on a plain one a scalar one channel; the
//! code is the same with that element.
//!
//! A tile is transformed in two passes of the matrix, over its columns and then over
//! its rows, through a small stack buffer (the whole `t x t` tile would not fit the
//! registers): each column is loaded as it is transformed and each result stored as
//! it is computed, so no more than a column or row of values is live. The transform
//! matrices are constants: zero entries cost nothing, ±1 an add. Padding costs no
//! branch per element: the tiles that read padding are emitted one by one with their
//! valid rows and columns known (the left and right tiles of a row, every tile of the
//! top and bottom rows that reach padding), the interior tiles of a row by loops.
//!
//! A row's tiles go in runs of `RUN` (see [`steps`]); where a tile's values would
//! crowd a cache set ([`crowded`]) a run's values pass through a stack buffer.

use cnnc_ir::Layout;
use cnnc_ir::op::Winograd;
use cnnc_ir::winograd::Transform;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, F64, F64X2, I8X16, I64};
use cranelift_codegen::ir::{InstBuilder, StackSlot, StackSlotData, StackSlotKind, Type, Value};

use super::activation::costly_span;
use super::conv::epilogue_args;
use super::{ArgSource, KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES, bitcast_flags};

/// A tile's `t*t` values live a whole plane apart in the transformed tensors. When
/// that stride is a multiple of 4 KiB, or nearly, they share a few L1 cache sets
/// (64 of them, whatever the size: every x86 L1 indexes within the page); with more
/// of them in one set than it has ways, each cache line (a run of 4 tiles' vectors)
/// leaves L1 before the next tile uses it, and is fetched again for every tile. Then
/// a run of `RUN` tiles is staged on the stack, `[value][tile]`, and copied a whole
/// run per value at a time.
const RUN: usize = 4;

/// Ways of the L1 data cache of the cores we tune for (48 KiB, 12-way: Zen 4 and 5,
/// Golden Cove).
const L1_WAYS: usize = 12;

/// Whether `values` streams `stride` bytes apart crowd one L1 set beyond its ways.
/// (VGG-19's 64-channel 224x224 layer under F(4x4): planes 784 KiB apart, all 36 values
/// of a tile in one set; its input transform took 11.8 ms one tile at a time, 3.1
/// staged.)
fn crowded(stride: i64, values: usize) -> bool {
    let mut per_set = [0usize; 64];
    for v in 0..values as i64 {
        per_set[((v * stride) >> 6).rem_euclid(64) as usize] += 1;
    }
    per_set.iter().any(|&n| n > L1_WAYS)
}

/// A row of tiles in order, in runs of `RUN` from a multiple of `RUN` (whole cache
/// lines where the row starts on one): consecutive runs of tiles that `regular`
/// allows walked by a loop; each other run as its parts, the `regular` tiles by
/// loops and the others one by one.
#[derive(Debug, PartialEq)]
enum Step {
    /// `count` runs of `RUN` tiles from tile `first`.
    Runs { first: usize, count: usize },
    /// The run of `len` tiles from tile `first`.
    Run {
        first: usize,
        len: usize,
        parts: Vec<Part>,
    },
}

#[derive(Debug, PartialEq)]
enum Part {
    /// `len` tiles from `first`, by a loop.
    Tiles {
        first: usize,
        len: usize,
    },
    One(usize),
}

fn steps(tiles: usize, regular: impl Fn(usize) -> bool) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for first in (0..tiles).step_by(RUN) {
        let len = RUN.min(tiles - first);
        if len == RUN && (first..first + len).all(&regular) {
            match out.last_mut() {
                Some(Step::Runs { count, .. }) => *count += 1,
                _ => out.push(Step::Runs { first, count: 1 }),
            }
            continue;
        }
        let mut parts: Vec<Part> = Vec::new();
        for k in first..first + len {
            match (regular(k), parts.last_mut()) {
                (false, _) => parts.push(Part::One(k)),
                (true, Some(Part::Tiles { len, .. })) => *len += 1,
                (true, _) => parts.push(Part::Tiles { first: k, len: 1 }),
            }
        }
        out.push(Step::Run { first, len, parts });
    }
    out
}

/// A tile's element `(i, j)`, `None` for zero.
type LoadAt<'a> = dyn FnMut(&mut Fx, usize, usize) -> Option<Value> + 'a;
/// Takes a result's element `(i, j)`, `None` for zero.
type StoreAt<'a> = dyn FnMut(&mut Fx, usize, usize, Option<Value>) + 'a;

/// Pairs of columns `(c1, c2)` of a `rows x cols` matrix, both values present, whose
/// coefficients in each row are equal or opposite, where sharing their sum and
/// difference saves operations: each row using one saves one, computing them costs
/// one each. A column is in one pair at most.
fn column_pairs(l: &[f64], rows: usize, cols: usize, x: &[Option<Value>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut taken = vec![false; cols];
    for c1 in 0..cols {
        for c2 in c1 + 1..cols {
            if taken[c1] || taken[c2] || x[c1].is_none() || x[c2].is_none() {
                continue;
            }
            let (mut sums, mut diffs, mut alike) = (0, 0, true);
            for r in 0..rows {
                let (k1, k2) = (l[r * cols + c1], l[r * cols + c2]);
                match (k1 == 0.0 && k2 == 0.0, k1 == k2, k1 == -k2) {
                    (true, _, _) => {}
                    (_, true, _) => sums += 1,
                    (_, _, true) => diffs += 1,
                    _ => alike = false,
                }
            }
            let cost = usize::from(sums > 0) + usize::from(diffs > 0);
            if alike && sums + diffs > cost {
                pairs.push((c1, c2));
                taken[c1] = true;
                taken[c2] = true;
            }
        }
    }
    pairs
}

/// A row's terms: column and coefficient.
type Terms = Vec<(usize, f64)>;

/// The terms of two rows with the same columns split into those of equal and those
/// of opposite coefficients (the first row's), when neither part is empty.
fn split(a: &[(usize, f64)], b: &[(usize, f64)]) -> Option<(Terms, Terms)> {
    if a.len() != b.len() {
        return None;
    }
    let (mut even, mut odd) = (Vec::new(), Vec::new());
    for (&(ca, ka), &(cb, kb)) in a.iter().zip(b) {
        match (ca == cb, ka == kb, ka == -kb) {
            (true, true, _) => even.push((ca, ka)),
            (true, _, true) => odd.push((ca, ka)),
            _ => return None,
        }
    }
    (!even.is_empty() && !odd.is_empty()).then_some((even, odd))
}

/// What a row walk emits: `tiles(fx, tw0, k0, len)` the `len` regular tiles from tile
/// `tw0`, the `k0`-th of their run onwards, by a loop; `one(fx, tw, k)` the other tile
/// `tw`, the `k`-th of its run; `start` and `end` around each run (its first tile and
/// length).
struct RowWalk<'a> {
    tiles: &'a dyn Fn(&mut Fx, Value, usize, usize),
    one: &'a dyn Fn(&mut Fx, usize, usize),
    start: &'a dyn Fn(&mut Fx, Value, usize),
    end: &'a dyn Fn(&mut Fx, Value, usize),
}

/// Emits a row of `tiles` tiles in the runs of [`steps`].
fn walk_row(fx: &mut Fx, tiles: usize, regular: impl Fn(usize) -> bool, w: &RowWalk) {
    for step in steps(tiles, regular) {
        match step {
            Step::Runs { first, count } => fx.for_n(count as u64, |fx, r| {
                let tw0 = fx.b.ins().imul_imm_s(r, RUN as i64);
                let tw0 = fx.add(tw0, first as i64);
                (w.start)(fx, tw0, RUN);
                (w.tiles)(fx, tw0, 0, RUN);
                (w.end)(fx, tw0, RUN);
            }),
            Step::Run { first, len, parts } => {
                let run0 = fx.iconst(first as i64);
                (w.start)(fx, run0, len);
                for part in parts {
                    match part {
                        Part::Tiles { first: f, len } => {
                            let tw0 = fx.iconst(f as i64);
                            (w.tiles)(fx, tw0, f - first, len);
                        }
                        Part::One(tw) => (w.one)(fx, tw, tw - first),
                    }
                }
                (w.end)(fx, run0, len);
            }
        }
    }
}

/// The element type, its bytes and the channel groups (blocks or channels) of `c`
/// channels in `layout`.
fn element(blocked: bool, c: usize) -> (Type, i64, usize) {
    if blocked {
        (F32X4, 16, c / LANES)
    } else {
        (F32, 4, c)
    }
}

fn transform_of(w: &Winograd) -> Result<&'static Transform, CodegenError> {
    w.transform().ok_or_else(|| {
        CodegenError::Unsupported(format!(
            "no Winograd transform with {0}x{0} tiles for {1}x{1} kernels",
            w.tile, w.kernel
        ))
    })
}

/// Which way a staged run is copied: from the stack buffer to the transformed
/// tensor (the input transform) or back (the output transform).
#[derive(Clone, Copy)]
enum Direction {
    ToTensor,
    FromTensor,
}

/// How a transform's runs of tiles move between its stack buffer (`[value][tile]`,
/// `RUN` tiles) and the transformed tensor, whose `values` planes are `stride` bytes
/// apart: as they are, elements of `es` bytes; or, for plain products, each plane's
/// four tiles' vectors (one per tile, a channel block's lanes) transposed into the
/// block's channels' planes (one vector of the four tiles each), `lane` bytes apart.
#[derive(Clone, Copy)]
struct Staging {
    plain: bool,
    ty: Type,
    /// Bytes from one tile to the next in the transformed tensor.
    tile_bytes: i64,
    lane: i64,
    stride: i64,
    values: usize,
}

impl Staging {
    fn new(
        plain: bool,
        (ty, es): (Type, i64),
        tiles: usize,
        (stride, values): (i64, usize),
    ) -> Self {
        Staging {
            plain,
            ty,
            tile_bytes: if plain { 4 } else { es },
            lane: 4 * tiles as i64,
            stride,
            values,
        }
    }

    /// Copies the run of `tiles` tiles from tile `run0` of the tensor's row at `row`
    /// between the stack buffer `stage` and the tensor.
    fn copy(
        self,
        fx: &mut Fx,
        direction: Direction,
        stage: Value,
        (row, run0, tiles): (Value, Value, usize),
    ) {
        let at = fx.addr(row, run0, self.tile_bytes, 0);
        let (tensor, staged) = ((at, self.stride), (stage, RUN as i64 * self.tile_bytes));
        match (self.plain, direction) {
            (true, _) => {
                let plain = (at, self.stride, self.lane);
                fx.transpose_runs(direction, stage, plain, (self.values, tiles))
            }
            (false, Direction::ToTensor) => {
                fx.copy_runs(self.ty, staged, tensor, self.values, tiles)
            }
            (false, Direction::FromTensor) => {
                fx.copy_runs(self.ty, tensor, staged, self.values, tiles)
            }
        }
    }
}

/// Whether `w`'s transformed tensors are plain beside a blocked convolution
/// (`Winograd::plain_products`), checked against the layout of the transformed tensor
/// (`transformed`) and of the convolution's side (blocked or not).
fn plain_products(w: &Winograd, blocked: bool, transformed: Layout) -> Result<bool, CodegenError> {
    let plain = w.plain_products.is_some();
    let ok = match (plain, blocked) {
        // The transposes move a block of `LANES` channels (and a run of as many tiles).
        (true, true) => transformed == Layout::Plain && w.plain_products == Some(LANES as u32),
        (true, false) => false,
        (false, true) => transformed != Layout::Plain,
        (false, false) => transformed == Layout::Plain,
    };
    if !ok {
        return Err(CodegenError::Unsupported(format!(
            "Winograd transforms between a {} convolution and {transformed:?} transformed tensors{}",
            if blocked { "blocked" } else { "plain" },
            if plain { " (plain products)" } else { "" }
        )));
    }
    Ok(plain)
}

impl Fx<'_> {
    /// `y = L x` for a `rows x x.len()` matrix `L` of constants, `None` for a value
    /// known to be zero. Two kinds of sharing, both from the symmetric points `p` and
    /// `-p` of Winograd's matrices: two columns alike in every row but for signs
    /// become their sum and difference, computed once (F(4x4)'s output matrix: 10
    /// operations instead of 14); two rows alike but for the signs of some terms share
    /// their two partial sums `e` and `o` as `e + o` and `e - o` (F(4x4)'s input
    /// matrix: 13 instead of 22).
    fn apply(
        &mut self,
        ty: Type,
        l: &[f64],
        rows: usize,
        x: &[Option<Value>],
    ) -> Vec<Option<Value>> {
        let cols = x.len();
        let mut x = x.to_vec();
        let mut terms: Vec<Terms> = (0..rows)
            .map(|r| {
                (0..cols)
                    .filter(|&c| x[c].is_some() && l[r * cols + c] != 0.0)
                    .map(|c| (c, l[r * cols + c]))
                    .collect()
            })
            .collect();
        for (c1, c2) in column_pairs(l, rows, cols, &x) {
            let (a, b) = (x[c1].expect("a value"), x[c2].expect("a value"));
            let mut shared = |fx: &mut Self, same: bool| {
                let v = if same {
                    fx.b.ins().fadd(a, b)
                } else {
                    fx.b.ins().fsub(a, b)
                };
                x.push(Some(v));
                x.len() - 1
            };
            let (mut sum, mut diff) = (None, None);
            for row in &mut terms {
                let k = row.iter().find(|t| t.0 == c1).map(|t| t.1);
                let k2 = row.iter().find(|t| t.0 == c2).map(|t| t.1);
                let (Some(k), Some(k2)) = (k, k2) else {
                    continue;
                };
                let at = if k == k2 {
                    *sum.get_or_insert_with(|| shared(self, true))
                } else {
                    *diff.get_or_insert_with(|| shared(self, false))
                };
                row.retain(|t| t.0 != c1 && t.0 != c2);
                row.push((at, k));
            }
        }
        let mut y: Vec<Option<Option<Value>>> = vec![None; rows];
        for r in 0..rows {
            if y[r].is_some() {
                continue;
            }
            let twin = (r + 1..rows)
                .filter(|&r2| y[r2].is_none())
                .find_map(|r2| split(&terms[r], &terms[r2]).map(|parts| (r2, parts)));
            match twin {
                Some((r2, (even, odd))) => {
                    let e = self.combine(ty, &even, &x).expect("terms");
                    let o = self.combine(ty, &odd, &x).expect("terms");
                    y[r] = Some(Some(self.b.ins().fadd(e, o)));
                    y[r2] = Some(Some(self.b.ins().fsub(e, o)));
                }
                None => y[r] = Some(self.combine(ty, &terms[r], &x)),
            }
        }
        y.into_iter().map(|v| v.expect("every row")).collect()
    }

    /// `sum k x[c]` over `terms` `(c, k)`, from a term of coefficient 1 when there is
    /// one (no multiplication), `None` for no terms.
    fn combine(&mut self, ty: Type, terms: &[(usize, f64)], x: &[Option<Value>]) -> Option<Value> {
        let first = terms.iter().position(|&(_, k)| k == 1.0).unwrap_or(0);
        let (c0, k0) = *terms.get(first)?;
        let x0 = x[c0].expect("a term of a value");
        let mut acc = match k0 {
            1.0 => x0,
            -1.0 => self.b.ins().fneg(x0),
            k => {
                let k = self.fconst(ty, k as f32);
                self.b.ins().fmul(x0, k)
            }
        };
        for (i, &(c, k)) in terms.iter().enumerate() {
            if i == first {
                continue;
            }
            let xc = x[c].expect("a term of a value");
            acc = match k {
                1.0 => self.b.ins().fadd(acc, xc),
                -1.0 => self.b.ins().fsub(acc, xc),
                k => {
                    let k = self.fconst(ty, k as f32);
                    self.fma(xc, k, acc)
                }
            };
        }
        Some(acc)
    }

    /// `L X Lᵀ` of a `cols x cols` tile `X` (`L` is `rows x cols`): its columns
    /// through `L` into `slot`, then its rows. `load(i, j)` gives `X[i][j]` (`None`
    /// for zero) as column `j` is transformed, `store(i, j, v)` takes the `rows x rows`
    /// result's `(i, j)` as soon as it is computed: a column or row of values live at a
    /// time, never the whole tile, which would not fit the registers.
    fn sandwich(
        &mut self,
        ty: Type,
        slot: StackSlot,
        (l, rows, cols): (&[f64], usize, usize),
        load: &mut LoadAt,
        store: &mut StoreAt,
    ) {
        let size = ty.bytes() as i32;
        let mut written = vec![false; rows * cols];
        for j in 0..cols {
            let col: Vec<Option<Value>> = (0..cols).map(|i| load(self, i, j)).collect();
            for (i, v) in self.apply(ty, l, rows, &col).into_iter().enumerate() {
                if let Some(v) = v {
                    self.b
                        .ins()
                        .stack_store(I64, v, slot, (i * cols + j) as i32 * size);
                    written[i * cols + j] = true;
                }
            }
        }
        for i in 0..rows {
            let row: Vec<Option<Value>> = (0..cols)
                .map(|j| {
                    written[i * cols + j].then(|| {
                        self.b
                            .ins()
                            .stack_load(I64, ty, slot, (i * cols + j) as i32 * size)
                    })
                })
                .collect();
            for (j, v) in self.apply(ty, l, rows, &row).into_iter().enumerate() {
                store(self, i, j, v);
            }
        }
    }

    /// A stack buffer for `RUN` tiles' `values` values each, as `[value][tile]`: its
    /// address.
    fn stage(&mut self, ty: Type, values: usize) -> Value {
        let slot = self.stack_buffer(ty, values * RUN);
        self.b.ins().stack_addr(I64, slot, 0)
    }

    /// Copies `values` runs of `tiles` elements from `from` to `to`, each an address
    /// and the bytes from one run to the next.
    fn copy_runs(
        &mut self,
        ty: Type,
        from: (Value, i64),
        to: (Value, i64),
        values: usize,
        tiles: usize,
    ) {
        let es = ty.bytes() as i32;
        for v in 0..values as i64 {
            let src = self.add(from.0, v * from.1);
            let dst = self.add(to.0, v * to.1);
            for k in 0..tiles as i32 {
                let x = self.load(ty, src, k * es);
                self.store(x, dst, k * es);
            }
        }
    }

    /// A run's `values` staged vectors (`[value][tile]`, a channel block's lanes each)
    /// to or from the plain tensor at `at` (value `v` at `v * stride`, channel `l` of
    /// the block `l * lane` bytes on, the run's tiles in one vector): each value's
    /// four vectors transposed (`Winograd::plain_products`; a run is four tiles).
    fn transpose_runs(
        &mut self,
        direction: Direction,
        stage: Value,
        (at, stride, lane): (Value, i64, i64),
        (values, tiles): (usize, usize),
    ) {
        let run = (RUN * LANES * 4) as i64;
        for v in 0..values as i64 {
            let (staged, plain) = (self.add(stage, v * run), self.add(at, v * stride));
            let (from, step, to, to_step) = match direction {
                Direction::ToTensor => (staged, 16, plain, lane),
                Direction::FromTensor => (plain, lane, staged, 16),
            };
            // A shorter run (a row's last) reads and writes only its own tiles' lanes
            // in the tensor: the next row may be another task's, and the last row's
            // vector would reach past the plane (a row of 6 tiles in a plane of 36).
            let rows = [0, 1, 2, 3].map(|k| {
                let at = (k * step) as i32;
                match direction {
                    Direction::FromTensor if tiles < RUN => self.load_lanes(from, at, tiles),
                    _ => self.load(I8X16, from, at),
                }
            });
            for (k, x) in self.transpose4(rows).into_iter().enumerate() {
                let x = self.b.ins().bitcast(F32X4, bitcast_flags(), x);
                let at = (k as i64 * to_step) as i32;
                match direction {
                    Direction::ToTensor if tiles < RUN => {
                        for l in 0..tiles {
                            let e = self.b.ins().extractlane(x, l as u8);
                            self.store(e, to, at + 4 * l as i32);
                        }
                    }
                    _ => self.store(x, to, at),
                }
            }
        }
    }

    /// The first `n` (1 to 3) floats at `at + offset` as the first lanes of a vector
    /// (i8x16), the others zero: two by one 8-byte load.
    fn load_lanes(&mut self, at: Value, offset: i32, n: usize) -> Value {
        let v = if n >= 2 {
            let pair = self.load(F64, at, offset);
            let v = self.b.ins().scalar_to_vector(F64X2, pair);
            self.b.ins().bitcast(F32X4, bitcast_flags(), v)
        } else {
            let x = self.load(F32, at, offset);
            self.b.ins().scalar_to_vector(F32X4, x)
        };
        let v = if n == 3 {
            let x = self.load(F32, at, offset + 8);
            self.b.ins().insertlane(v, x, 2)
        } else {
            v
        };
        self.b.ins().bitcast(I8X16, bitcast_flags(), v)
    }

    /// A stack slot of `elements` values of `ty`, 16-byte aligned.
    fn stack_buffer(&mut self, ty: Type, elements: usize) -> StackSlot {
        self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            ty.bytes() * elements as u32,
            4,
        ))
    }
}

/// Runs `body(Some(k))` when `v == k` for each `k` of `special`, else `body(None)`.
fn dispatch(
    fx: &mut Fx,
    v: Value,
    special: &[usize],
    body: &mut impl FnMut(&mut Fx, Option<usize>),
) {
    let done = fx.b.create_block();
    for &k in special {
        let (hit, next) = (fx.b.create_block(), fx.b.create_block());
        let is = fx.b.ins().icmp_imm_s(IntCC::Equal, v, k as i64);
        fx.b.ins().brif(is, hit, &[], next, &[]);
        fx.b.switch_to_block(hit);
        body(fx, Some(k));
        fx.b.ins().jump(done, &[]);
        fx.b.switch_to_block(next);
    }
    body(fx, None);
    fx.b.ins().jump(done, &[]);
    fx.b.switch_to_block(done);
}

/// A unit's row of tiles, from its row `local` in the band: the band's first row
/// (the argument `start`) plus `local` when banded.
fn global_row(fx: &mut Fx, start: Option<Value>, local: Value) -> Value {
    match start {
        Some(s) => fx.b.ins().iadd(s, local),
        None => local,
    }
}

/// The input transform: one unit of work per image, channel group and row of tiles
/// (of the band).
pub fn input(cx: &mut KernelCx, w: &Winograd) -> Result<(), CodegenError> {
    let f = transform_of(w)?;
    let xs = cx.inputs[0].ty.shape.clone();
    let blocked = cx.inputs[0].ty.layout != Layout::Plain;
    let (ty, es, groups) = element(blocked, xs[1]);
    let plain = plain_products(w, blocked, cx.outputs[0].1.layout)?;
    let (n, h, wd) = (xs[0], xs[2], xs[3]);
    let (t, m) = (f.t, f.m);
    let [th_n, tw_n] = w.tiles();
    let (_, rows_per_band) = w.bands();
    // Positions per stored plane: the tiles, then unused ones (`Winograd::plane`).
    let tiles = w.stored_plane().iter().product::<usize>();
    let [pad_r, pad_c] = w.pads.map(|p| p as isize);
    // Tiles reaching padding: whole rows above and below, single tiles left and right.
    let border = |k: usize, pad: isize, len: usize| {
        let first = (k * m) as isize - pad;
        first < 0 || first + t as isize > len as isize
    };
    let border_rows: Vec<usize> = (0..th_n).filter(|&k| border(k, pad_r, h)).collect();
    let border_cols: Vec<usize> = (0..tw_n).filter(|&k| border(k, pad_c, wd)).collect();
    let units = n * groups * rows_per_band;
    let (x, v) = (cx.input(0), cx.output(0));
    let start = (w.band > 0).then(|| cx.arg(ArgSource::BandStart));
    let tasks = tasks_for(units, units * tw_n * t * t * 8);
    let plane = (h * wd) as i64 * es;
    let xi_stride = (groups * tiles) as i64 * es;
    let row_bytes = wd as i64 * es;
    let staging = Staging::new(plain, (ty, es), tiles, (xi_stride, t * t));
    let tile_bytes = staging.tile_bytes;
    cx.launch(tasks, |fx, task, ptrs| {
        let slot = fx.stack_buffer(ty, t * t);
        let stage = (plain || crowded(xi_stride, t * t)).then(|| fx.stage(ty, t * t));
        let (u0, u1) = fx.task_range(task, units, tasks);
        fx.for_range(u0, u1, |fx, u| {
            let local = fx.b.ins().urem_imm_u(u, rows_per_band as i64);
            let th = global_row(fx, start.map(|k| ptrs[k]), local);
            let q = fx.b.ins().udiv_imm_u(u, rows_per_band as i64);
            let g = fx.b.ins().urem_imm_u(q, groups as i64);
            let img = fx.b.ins().udiv_imm_u(q, groups as i64);
            let xg = fx.addr(ptrs[x], q, plane, 0);
            // The group's transformed tiles: image `img`, position 0, group `g`.
            let vi = fx.b.ins().imul_imm_s(img, (t * t * groups) as i64);
            let vi = fx.b.ins().iadd(vi, g);
            let vg = fx.addr(ptrs[v], vi, tiles as i64 * es, 0);
            let v_row = fx.addr(vg, local, tw_n as i64 * tile_bytes, 0);
            let mut row = |fx: &mut Fx, known: Option<usize>| {
                // Each tile row's first element at input column 0, or None if padding.
                let rows: Vec<Option<Value>> = (0..t)
                    .map(|i| match known {
                        Some(k) => {
                            let r = (k * m + i) as isize - pad_r;
                            (0..h as isize)
                                .contains(&r)
                                .then(|| fx.add(xg, r as i64 * row_bytes))
                        }
                        None => Some(fx.addr(
                            xg,
                            th,
                            m as i64 * row_bytes,
                            (i as isize - pad_r) as i64 * row_bytes,
                        )),
                    })
                    .collect();
                // Writes the tile's `t*t` values `stride` bytes apart from `at`.
                let tile = |fx: &mut Fx,
                            first_col: Value,
                            valid: &dyn Fn(usize) -> bool,
                            at: Value,
                            stride: i64| {
                    let mut load = |fx: &mut Fx, i: usize, j: usize| match rows[i] {
                        Some(r) if valid(j) => {
                            let a = fx.b.ins().iadd(r, first_col);
                            Some(fx.load(ty, a, (j as i64 * es) as i32))
                        }
                        _ => None,
                    };
                    let mut store = |fx: &mut Fx, i: usize, j: usize, v: Option<Value>| {
                        let v = v.unwrap_or_else(|| fx.fconst(ty, 0.0));
                        let a = fx.add(at, (i * t + j) as i64 * stride);
                        fx.store(v, a, 0);
                    };
                    fx.sandwich(ty, slot, (f.bt, t, t), &mut load, &mut store);
                };
                // Where tile `tw`, the `k`-th of its run, puts its values, how far
                // apart.
                let place = |fx: &mut Fx, tw: Value, k: Value| match stage {
                    Some(s) => (fx.addr(s, k, es, 0), RUN as i64 * es),
                    None => (fx.addr(v_row, tw, tile_bytes, 0), xi_stride),
                };
                let flush = |fx: &mut Fx, run0: Value, tiles: usize| {
                    if let Some(s) = stage {
                        let run = (v_row, run0, tiles);
                        staging.copy(fx, Direction::ToTensor, s, run);
                    }
                };
                // `len` interior tiles from `tw0`, the `k0`-th of their run onwards.
                let tiles = |fx: &mut Fx, tw0: Value, k0: usize, len: usize| {
                    fx.for_n(len as u64, |fx, k| {
                        let tw = fx.b.ins().iadd(tw0, k);
                        let col = fx.b.ins().imul_imm_s(tw, m as i64 * es);
                        let col = fx.add(col, -(pad_c as i64) * es);
                        let k = fx.add(k, k0 as i64);
                        let (at, stride) = place(fx, tw, k);
                        tile(fx, col, &|_| true, at, stride);
                    });
                };
                let one = |fx: &mut Fx, tw: usize, k: usize| {
                    let c0 = (tw * m) as isize - pad_c;
                    let col = fx.iconst(c0 as i64 * es);
                    let (twv, k) = (fx.iconst(tw as i64), fx.iconst(k as i64));
                    let (at, stride) = place(fx, twv, k);
                    let valid = |j: usize| (0..wd as isize).contains(&(c0 + j as isize));
                    tile(fx, col, &valid, at, stride);
                };
                let walk = RowWalk {
                    tiles: &tiles,
                    one: &one,
                    start: &|_, _, _| {},
                    end: &flush,
                };
                walk_row(fx, tw_n, |k| !border_cols.contains(&k), &walk);
            };
            dispatch(fx, th, &border_rows, &mut row);
        });
        Ok(())
    })
}

/// The output transform with bias and epilogue: one unit of work per image, channel
/// group and row of tiles (of the band).
pub fn output(cx: &mut KernelCx, w: &Winograd) -> Result<(), CodegenError> {
    let f = transform_of(w)?;
    let ys = cx.outputs[0].1.shape.clone();
    let blocked = cx.outputs[0].1.layout != Layout::Plain;
    let (ty, es, groups) = element(blocked, ys[1]);
    let plain = plain_products(w, blocked, cx.inputs[0].ty.layout)?;
    let (n, oh, ow) = (ys[0], ys[2], ys[3]);
    let (t, m) = (f.t, f.m);
    let [th_n, tw_n] = w.tiles();
    let (_, rows_per_band) = w.bands();
    // Positions per stored plane: the tiles, then unused ones (`Winograd::plane`).
    let tiles = w.stored_plane().iter().product::<usize>();
    let (p, y, bias) = (cx.input(0), cx.output(0), cx.input(1));
    let start = (w.band > 0).then(|| cx.arg(ArgSource::BandStart));
    let extra = epilogue_args(cx, &w.epilogue, ys[1])?;
    let activation = w.epilogue.activation;
    // A costly activation runs on each finished row of tiles (`m` output rows of a
    // channel block, one span), by its span function.
    let span = costly_span(cx, activation.filter(|_| blocked))?;
    let inline = activation.filter(|_| span.is_none());
    let units = n * groups * rows_per_band;
    let tasks = tasks_for(units, units * tw_n * t * t * 8);
    let plane = (oh * ow) as i64 * es;
    let xi_stride = (groups * tiles) as i64 * es;
    let row_bytes = ow as i64 * es;
    let partial_row = (oh % m != 0).then_some(th_n - 1);
    let full_cols = ow / m;
    let staging = Staging::new(plain, (ty, es), tiles, (xi_stride, t * t));
    let tile_bytes = staging.tile_bytes;
    cx.launch(tasks, |fx, task, ptrs| {
        let slot = fx.stack_buffer(ty, t * t);
        let stage = (plain || crowded(xi_stride, t * t)).then(|| fx.stage(ty, t * t));
        let (u0, u1) = fx.task_range(task, units, tasks);
        fx.for_range(u0, u1, |fx, u| {
            let local = fx.b.ins().urem_imm_u(u, rows_per_band as i64);
            let th = global_row(fx, start.map(|k| ptrs[k]), local);
            let q = fx.b.ins().udiv_imm_u(u, rows_per_band as i64);
            let g = fx.b.ins().urem_imm_u(q, groups as i64);
            let img = fx.b.ins().udiv_imm_u(q, groups as i64);
            let pi = fx.b.ins().imul_imm_s(img, (t * t * groups) as i64);
            let pi = fx.b.ins().iadd(pi, g);
            let pg = fx.addr(ptrs[p], pi, tiles as i64 * es, 0);
            let p_row = fx.addr(pg, local, tw_n as i64 * tile_bytes, 0);
            let yg = fx.addr(ptrs[y], q, plane, 0);
            let y_row = fx.addr(yg, th, m as i64 * row_bytes, 0);
            let r_row = extra.residual.map(|r| {
                let rg = fx.addr(ptrs[r], q, plane, 0);
                fx.addr(rg, th, m as i64 * row_bytes, 0)
            });
            let ba = fx.addr(ptrs[bias], g, es, 0);
            let b = fx.load(ty, ba, 0);
            let slope = extra.slope.map(|s| {
                let sa = fx.addr(ptrs[s], g, es, 0);
                fx.load(ty, sa, 0)
            });
            let mut row = |fx: &mut Fx, known: Option<usize>| {
                let rows = known.map_or(m, |k| oh - k * m);
                // The tile whose products are at `src` (the first, and how far
                // apart), its first output column `col` bytes in, `cols` valid columns.
                let tile = |fx: &mut Fx, src: (Value, i64), col: Value, cols: usize| {
                    let mut load = |fx: &mut Fx, i: usize, j: usize| {
                        let a = fx.add(src.0, (i * t + j) as i64 * src.1);
                        Some(fx.load(ty, a, 0))
                    };
                    let ya = fx.b.ins().iadd(y_row, col);
                    let ra = r_row.map(|r| fx.b.ins().iadd(r, col));
                    let mut store = |fx: &mut Fx, i: usize, j: usize, o: Option<Value>| {
                        if i >= rows || j >= cols {
                            return;
                        }
                        let off = (i as i64 * row_bytes + j as i64 * es) as i32;
                        let o = o.expect("every output reads the products");
                        let mut v = fx.b.ins().fadd(o, b);
                        if let Some(r) = ra {
                            let r = fx.load(ty, r, off);
                            v = fx.b.ins().fadd(v, r);
                        }
                        if let Some(a) = inline {
                            v = fx.activate(a, v, slope);
                        }
                        fx.store(v, ya, off);
                    };
                    fx.sandwich(ty, slot, (f.at, m, t), &mut load, &mut store);
                };
                // Where tile `tw`, the `k`-th of its run, finds its products.
                let place = |fx: &mut Fx, tw: Value, k: Value| match stage {
                    Some(s) => (fx.addr(s, k, es, 0), RUN as i64 * es),
                    None => (fx.addr(p_row, tw, tile_bytes, 0), xi_stride),
                };
                let fill = |fx: &mut Fx, run0: Value, tiles: usize| {
                    if let Some(s) = stage {
                        let run = (p_row, run0, tiles);
                        staging.copy(fx, Direction::FromTensor, s, run);
                    }
                };
                // `len` tiles from `tw0`, the `k0`-th of their run onwards, `cols`
                // columns each.
                let tiles = |fx: &mut Fx, tw0: Value, k0: usize, len: usize, cols: usize| {
                    fx.for_n(len as u64, |fx, k| {
                        let tw = fx.b.ins().iadd(tw0, k);
                        let col = fx.b.ins().imul_imm_s(tw, m as i64 * es);
                        let k = fx.add(k, k0 as i64);
                        let src = place(fx, tw, k);
                        tile(fx, src, col, cols);
                    });
                };
                let walk = RowWalk {
                    tiles: &|fx, tw0, k0, len| tiles(fx, tw0, k0, len, m),
                    one: &|fx, tw, k| {
                        let tw0 = fx.iconst(tw as i64);
                        tiles(fx, tw0, k, 1, ow - tw * m);
                    },
                    start: &fill,
                    end: &|_, _, _| {},
                };
                walk_row(fx, tw_n, |k| k < full_cols, &walk);
                if let Some(span) = span {
                    let count = fx.iconst((rows * ow) as i64);
                    fx.call_span(span, y_row, y_row, count);
                }
            };
            dispatch(fx, th, partial_row.as_slice(), &mut row);
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Features;
    use cranelift_codegen::ir::{Function, Opcode};
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

    /// The arithmetic instructions of `y = L x` for a `rows x cols` matrix.
    fn operations(l: &[f64], rows: usize, cols: usize) -> usize {
        let mut func = Function::new();
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let block = b.create_block();
        b.switch_to_block(block);
        let x: Vec<Option<Value>> = (0..cols)
            .map(|_| Some(b.append_block_param(block, F32X4)))
            .collect();
        let mut fx = Fx {
            b,
            features: Features {
                fma: true,
                round: true,
            },
        };
        fx.apply(F32X4, l, rows, &x);
        let dfg = &fx.b.func.dfg;
        fx.b.func
            .layout
            .block_insts(block)
            .filter(|&i| {
                use Opcode::*;
                matches!(dfg.insts[i].opcode(), Fadd | Fsub | Fmul | Fma | Fneg)
            })
            .count()
    }

    #[test]
    fn symmetric_points_share_sums_and_differences() {
        let f43 = cnnc_ir::winograd::transform(4, 3).expect("F(4x4, 3x3)");
        assert_eq!(operations(f43.bt, 6, 6), 13);
        assert_eq!(operations(f43.at, 4, 6), 10);
        // 8x8 tiles: the pairs ±1, ±2 and ±1/2 (36 and 32 operations unpaired).
        let f63 = cnnc_ir::winograd::transform(6, 3).expect("F(6x6, 3x3)");
        assert_eq!(operations(f63.bt, 8, 8), 30);
        assert_eq!(operations(f63.at, 6, 8), 20);
        let f45 = cnnc_ir::winograd::transform(4, 5).expect("F(4x4, 5x5)");
        assert_eq!(operations(f45.at, 4, 8), 16);
        let f23 = cnnc_ir::winograd::transform(2, 3).expect("F(2x2, 3x3)");
        assert_eq!(operations(f23.bt, 4, 4), 4);
        assert_eq!(operations(f23.at, 2, 4), 4);
    }

    #[test]
    fn planes_a_multiple_of_two_kib_apart_crowd_a_set() {
        // 36 values: 4 KiB apart all in one set, 2 KiB apart 18 in each of two.
        assert!(crowded(4096 * 49, 36));
        assert!(crowded(2048 * 49, 36));
        // 1 KiB apart: 9 in each of four sets, within 12 ways.
        assert!(!crowded(1024 * 49, 36));
        assert!(!crowded(3136, 36));
        // F(2x2): 16 values fit one set.
        assert!(!crowded(4096, 12));
        assert!(crowded(4096, 16));
    }

    #[test]
    fn a_row_goes_in_runs_from_multiples_of_the_run() {
        use Part::{One, Tiles};
        // 14 tiles, the first and last at the padding.
        let border = |k: usize| k != 0 && k != 13;
        assert_eq!(
            steps(14, border),
            vec![
                Step::Run {
                    first: 0,
                    len: 4,
                    parts: vec![One(0), Tiles { first: 1, len: 3 }],
                },
                Step::Runs { first: 4, count: 2 },
                Step::Run {
                    first: 12,
                    len: 2,
                    parts: vec![Tiles { first: 12, len: 1 }, One(13)],
                },
            ]
        );
        // Every tile regular; a short last run.
        assert_eq!(
            steps(6, |_| true),
            vec![
                Step::Runs { first: 0, count: 1 },
                Step::Run {
                    first: 4,
                    len: 2,
                    parts: vec![Tiles { first: 4, len: 2 }],
                },
            ]
        );
        // A single tile at the padding on both sides.
        assert_eq!(
            steps(1, |_| false),
            vec![Step::Run {
                first: 0,
                len: 1,
                parts: vec![One(0)],
            }]
        );
    }
}
