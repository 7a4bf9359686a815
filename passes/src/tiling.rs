//! Tiling: the register tile and cache blocks of every convolution and matrix product,
//! chosen from a cost model of the target and recorded on the node, where `inspect`
//! shows them and code generation follows them.
//!
//! The product is `C[M, N] += A[M, K] B[K, N]`: for a convolution, output channels (of
//! a group) by output pixels over input channels times kernel taps (B is the im2col
//! panel, or the input itself for a pointwise convolution); for Gemm and MatMul their
//! own matrices.
//!
//! Register tile `rows x cols`: `rows * v` vector accumulators (`v = cols / lanes`), `v`
//! vectors of B, a broadcast of A and its copy must fit the vector registers, less a
//! reserve for the allocator. A step of the inner dimension costs the largest of its
//! FMAs over their throughput, its loads over theirs, all its operations (with the
//! copies and moves Cranelift adds, see `step_cycles`) over the issue width, and the
//! FMA latency. The model sums this over every tile of the grid, tail tiles (fewer
//! rows, fewer vectors, scalar columns) at their own cost, and keeps the cheapest tile;
//! ties go to the larger tile, whose epilogue is spread over more work.
//!
//! A convolution on blocked channels has a direct kernel instead: its tile is output
//! pixels of a row by output channel vectors, costed the same way per input channel
//! (see `direct_step_cycles`), each tile also at least as long as its weights take to
//! stream in (see `direct_row_tile_cycles`): a row that is the only one reads every
//! weight from beyond L2, and is then best covered by one tile of one vector.
//!
//! `k_block`: the A sliver (`rows x k_block`) and B sliver (`k_block x cols`) a tile
//! reads stay in half of L1, with the blocks of K as equal as possible. `col_block`:
//! the B panel one pass over a block reads (`k_block x col_block`) stays in half of
//! L2, and a convolution's im2col panel (all of K by `col_block`, one per task) in a
//! quarter of it.

use cnnc_ir::op::{Conv, Tile};
use cnnc_ir::window::{Axis, segments};
use cnnc_ir::{Graph, IrError, Layout, Op};

use crate::{Pass, TargetInfo};

pub struct Tiling;

/// Vector registers left out of the tile: with all sixteen of x86-64 in a tile,
/// Cranelift's allocator spills accumulators (measured: 4 x 12 and 6 x 8 ran slower
/// than 4 x 8 on a product in L1).
const REGISTER_RESERVE: usize = 4;
/// The loop's own operations per step: two pointer increments, the counter, the branch.
const LOOP_OPS: usize = 4;

/// The shape of a product and where its B comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// B is an im2col panel the kernel fills per block.
    pub im2col: bool,
}

impl Pass for Tiling {
    fn name(&self) -> &'static str {
        "tiling"
    }

    fn run(&self, graph: &mut Graph, target: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            let tile = if let Some(d) = direct_problem(graph, id) {
                choose_direct_tile(d, target)
            } else if let Some(problem) = problem(graph, id, target) {
                choose_tile(problem, target)
            } else {
                continue;
            };
            let node = graph.node_mut(id);
            if node.tile != Some(tile) {
                node.tile = Some(tile);
                changes += 1;
            }
        }
        Ok(changes)
    }
}

fn conv_problem(c: &Conv, x: &[usize], y: &[usize]) -> Problem {
    let taps: usize = c.kernel.iter().product();
    Problem {
        m: y[1] / c.groups,
        n: y[2..].iter().product(),
        k: x[1] / c.groups * taps,
        im2col: !c.is_pointwise(),
    }
}

/// The product node `id` computes, if it is a convolution or matrix product.
fn problem(graph: &Graph, id: cnnc_ir::NodeId, target: &TargetInfo) -> Option<Problem> {
    let node = graph.node(id);
    if !matches!(node.op, Op::Conv(_) | Op::Gemm(_) | Op::MatMul { .. }) {
        return None;
    }
    let inputs = graph.inputs_of(id);
    let x = &graph.value_type(inputs[0]).shape;
    let y = &node.outputs[0].ty.shape;
    match &node.op {
        // The plane kernel (the plain Winograd products), which has no tile.
        Op::Conv(c)
            if node.outputs[0].ty.layout == Layout::Plain
                && c.on_plane_kernel(x, inputs.len(), target.lanes) =>
        {
            None
        }
        Op::Conv(c) => Some(conv_problem(c, x, y)),
        // One row with `[N, K]` weights: the matrix-vector kernel, which has no tile.
        Op::Gemm(g) if g.trans_b && y[0] == 1 => None,
        Op::Gemm(g) => Some(Problem {
            m: y[0],
            n: y[1],
            k: if g.trans_a { x[0] } else { x[1] },
            im2col: false,
        }),
        Op::MatMul { .. } => {
            let b = &graph.value_type(inputs[1]).shape;
            let m = if x.len() > 1 { x[x.len() - 2] } else { 1 };
            let n = if b.len() > 1 { b[b.len() - 1] } else { 1 };
            Some(Problem {
                m,
                n,
                k: x[x.len() - 1],
                im2col: false,
            })
        }
        _ => None,
    }
}

/// A convolution on blocked channels (the direct kernel): per group, `vectors` output
/// channel vectors by the pixels of an output row, over `channels` input channels.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectProblem {
    pub vectors: usize,
    /// The row's columns as the kernel runs them: segments of equal valid kernel
    /// columns (see `cnnc_ir::window`), each its length and the share of the kernel's
    /// taps it reads. A border column is a tile of its own, however narrow.
    pub columns: Vec<(usize, f64)>,
    /// Output rows per group: with one (a flattened plane, or the Winograd products of
    /// a small one), every weight is read once per run, from beyond L2.
    pub rows: usize,
    pub channels: usize,
    /// Weight bytes per output channel (input channels padded to whole vectors, times
    /// the kernel taps).
    pub weights_per_channel: usize,
    /// Bytes the convolution reads and writes: input, weights and output.
    pub bytes: usize,
}

fn direct_problem(graph: &Graph, id: cnnc_ir::NodeId) -> Option<DirectProblem> {
    let node = graph.node(id);
    let (Op::Conv(c), Layout::Blocked { block }) = (&node.op, node.outputs[0].ty.layout) else {
        return None;
    };
    let (mut y, block) = (node.outputs[0].ty.shape.clone(), block as usize);
    let input = graph.inputs_of(id)[0];
    let mut x = graph.value_type(input).shape.clone();
    // The products of a banded Winograd convolution run on one band's rows at a time.
    if let Op::WinogradInput(w) = &graph.node(input.node).op
        && w.band > 0
    {
        (x[2], y[2]) = (w.band, w.band);
    }
    let channels = x[1];
    let taps: usize = c.kernel.iter().product();
    let plane: usize = y[2..].iter().product();
    let flat = c.is_pointwise() && plane <= FLAT_PIXELS;
    let columns = if flat {
        vec![(plane, 1.0)]
    } else {
        let last = c.kernel.len() - 1;
        row_columns(Axis {
            input: x[x.len() - 1],
            output: y[y.len() - 1],
            kernel: c.kernel[last],
            stride: c.strides[last],
            dilation: c.dilations[last],
            pad: c.pads[last].0,
        })
    };
    let weights_per_channel = (channels / c.groups).div_ceil(block) * block * taps * 4;
    let elements = |shape: &[usize]| shape.iter().product::<usize>();
    Some(DirectProblem {
        vectors: y[1] / c.groups / block,
        columns,
        rows: if flat {
            1
        } else {
            y[2..y.len() - 1].iter().product()
        },
        channels,
        weights_per_channel,
        bytes: 4 * (elements(&x) + elements(&y)) + y[1] * weights_per_channel,
    })
}

/// [`DirectProblem::columns`] of a row along `axis`.
pub fn row_columns(axis: Axis) -> Vec<(usize, f64)> {
    let kernel = axis.kernel as f64;
    segments(axis)
        .iter()
        .map(|s| (s.len, (s.taps.1 - s.taps.0) as f64 / kernel))
        .collect()
}

/// Largest plane the direct kernel reads as one row when the convolution is pointwise
/// (`FLAT_PIXELS` in `cnnc-codegen`'s `direct_conv.rs`).
const FLAT_PIXELS: usize = 256;

/// Input channels per step of the direct kernel's tile loop (`Tile::unroll`). A
/// one-vector tile that has the registers for a whole input block (4 weight vectors and
/// 4 broadcasts beside its accumulators: at most 8 pixels in 16 registers) takes a
/// whole block per step, a quarter of the loop's overhead per multiply-add where 2
/// channels take half. Measured on Zen 5, Winograd products of 16 tiles ran at 73-77%
/// of the FMA peak with 2 and at 80-85% with 4 (160 to 320 channels, 512 to 128, 128 to
/// 512) — unless the convolution streams from memory (its bytes beyond half the
/// last-level cache): there 4 ran slower, 60% against 65% (512 to 512 channels, 38 MB
/// of weights), 67% against 73% (64 channels at 224x224, 29 MB of input). A partial
/// input block (an RGB stem) is walked lane by lane whatever the unroll, so only whole
/// blocks take 4.
fn direct_unroll(p: &DirectProblem, pixels: usize, vectors: usize, t: &TargetInfo) -> usize {
    let block = vectors == 1
        && p.channels.is_multiple_of(t.lanes)
        && direct_live_registers(t.lanes, pixels, vectors, 0) <= t.vector_registers
        && p.bytes <= t.l3_bytes / 2;
    if block { t.lanes } else { 2 }
}

/// Vector registers a tile's loop holds (`TileShape::fits`): a one-vector tile's
/// accumulators, unrolled weights and broadcasts; else the accumulators, the unrolled
/// broadcasts, the copy of one and a weight vector. A step over a partial input block
/// (a 3-channel stem) broadcasts each of its `walk` lanes and holds a weight vector
/// per lane.
fn direct_live_registers(unroll: usize, pixels: usize, vectors: usize, walk: usize) -> usize {
    let step = if vectors == 1 { 2 * unroll } else { unroll + 2 };
    pixels * vectors + step.max(2 * walk + 1)
}

/// Cycles per input channel of a direct-convolution tile of `pixels` x `vectors`. The
/// weights of a tile of several vectors (2 channels a step) are FMA memory operands
/// (half of them: Cranelift loads the second channel's separately), each pixel's input
/// a broadcast (a load and a shuffle), each FMA but one per pixel a copy of the
/// broadcast; per iteration, a weight pointer per pixel, the input pointer, the
/// counter, and a move of each pixel's accumulator on the back edge. A one-vector tile
/// keeps its weight vector in a register and loads each broadcast from memory into the
/// register the FMA overwrites: no shuffles, no copies. The shuffles and copies share
/// the vector ALUs with the FMAs (with them the 3x4 tile's bound is 71% of the FMA
/// peak, where the 3x3 kernel bench measures 69-76%; one-vector tiles of 8-12 pixels
/// run at 85-92%). A narrow tile waits on its FMAs' latency here, although code
/// generation gives it partial sums (`cnnc_ir::op::partial_sums`): costed with them,
/// the pass moved tiles to where they measured no faster or slower (see
/// docs/ARCHITECTURE.md, the direct kernel).
fn direct_step_cycles(unroll: usize, pixels: usize, vectors: usize, t: &TargetInfo) -> f64 {
    let fmas = pixels * vectors;
    let (loads, ops, alu) = if vectors == 1 {
        let loads = pixels + 1;
        let ops = 2 * fmas + 1 + (pixels + 2 + LOOP_OPS) / unroll;
        (loads, ops, fmas as f64 + pixels as f64 / 2.0)
    } else {
        let loads = pixels + fmas;
        let ops = 2 * fmas + 2 * pixels + fmas / 2 + (pixels + LOOP_OPS) / unroll;
        let copies = pixels * (vectors - 1);
        (
            loads,
            ops,
            (fmas + pixels + copies) as f64 + pixels as f64 / 2.0,
        )
    };
    (fmas as f64 / t.fma_per_cycle)
        .max(ops as f64 / t.issue_width)
        .max(loads as f64 / t.loads_per_cycle)
        .max(alu / t.vector_ops_per_cycle)
        .max(t.fma_latency)
}

/// Cycles per input channel and kernel tap for one output row of one group (every
/// vector group) with tiles of `pixels` x `vectors` taking `unroll` channels a step.
/// Each segment of the row's columns is covered by full tiles and a narrower tail, a
/// tile costing its share of the kernel's taps: a 7-pixel row whose first column
/// reaches the padding is a 1-pixel tile, latency-bound, and a 6-pixel one. Each tile
/// of a row reads its vector group's weights: the first from L2 (the cache block stays
/// there across rows) or, for a single row, from beyond L2, the others from L1 when the
/// vector group's weights stay there, else from L2. A tile runs at the slower of its
/// FMAs and its weight stream: one reading every weight from L3 for three pixels is
/// bound by the stream, one covering the whole row by its FMAs.
fn direct_row_tile_cycles(
    p: &DirectProblem,
    (pixels, vectors, unroll): (usize, usize, usize),
    t: &TargetInfo,
) -> f64 {
    let first_bw = if p.rows <= 1 {
        t.far_bytes_per_cycle
    } else {
        t.l2_bytes_per_cycle
    };
    let in_l1 = p.weights_per_channel * t.lanes * vectors <= t.l1_bytes / 2;
    let rest_bw = if in_l1 {
        f64::INFINITY
    } else {
        t.l2_bytes_per_cycle
    };
    let tiles: Vec<(usize, f64)> = p
        .columns
        .iter()
        .flat_map(|&(len, share)| {
            let (full, rest) = (len / pixels, len % pixels);
            std::iter::repeat_n(pixels, full)
                .chain((rest > 0).then_some(rest))
                .map(move |px| (px, share))
        })
        .collect();
    let row = |v: usize| {
        let weights = (v * t.lanes * 4) as f64;
        tiles
            .iter()
            .enumerate()
            .map(|(k, &(px, share))| {
                let bw = if k == 0 { first_bw } else { rest_bw };
                share * direct_step_cycles(unroll, px, v, t).max(weights / bw)
            })
            .sum::<f64>()
    };
    let (full_v, rest_v) = (p.vectors / vectors, p.vectors % vectors);
    let mut cycles = full_v as f64 * row(vectors);
    if rest_v > 0 {
        cycles += row(rest_v);
    }
    cycles
}

/// The cheapest register tile for `p`: cycles per input channel and kernel tap for
/// one output row of one group (every vector group), pixels, vectors.
fn best_direct_tile(p: &DirectProblem, target: &TargetInfo) -> (f64, usize, usize) {
    let width: usize = p.columns.iter().map(|c| c.0).sum();
    let mut best: Option<(f64, usize, usize)> = None;
    for vectors in 1..=p.vectors.clamp(1, 4) {
        for pixels in 1..=width.clamp(1, 12) {
            let walk = p.channels % target.lanes;
            let unroll = direct_unroll(p, pixels, vectors, target);
            let pointers = if vectors > 1 { pixels } else { 1 };
            if direct_live_registers(unroll, pixels, vectors, walk) > target.vector_registers
                || pointers > target.weight_pointers
            {
                continue;
            }
            let cycles = direct_row_tile_cycles(p, (pixels, vectors, unroll), target);
            let better = match best {
                None => true,
                Some((c, px, v)) => {
                    cycles < c * (1.0 - 1e-9) || (cycles <= c && pixels * vectors > px * v)
                }
            };
            if better {
                best = Some((cycles, pixels, vectors));
            }
        }
    }
    best.expect("a one-pixel tile always fits")
}

/// The direct kernel's cycles per input channel and kernel tap for one output row of
/// one group, with its best tile: the unit the Winograd choice compares in.
pub fn direct_row_cycles(p: DirectProblem, target: &TargetInfo) -> f64 {
    best_direct_tile(&p, target).0
}

/// The direct kernel's tile: `rows` output pixels of a row by `cols` output channels
/// (whole vectors); `k_block` all input channels; `col_block` the output channels of a
/// cache block, whose weights stay in half of L2 while the rows run through them.
pub fn choose_direct_tile(p: DirectProblem, target: &TargetInfo) -> Tile {
    let (_, rows, vectors) = best_direct_tile(&p, target);
    let cols = vectors * target.lanes;
    // Output channels whose weights fill half of L2, in whole tiles.
    let fit = target.l2_bytes / 2 / p.weights_per_channel.max(1);
    let all = (p.vectors * target.lanes).next_multiple_of(cols);
    Tile {
        rows,
        cols,
        k_block: p.channels.max(1),
        col_block: (fit / cols * cols).clamp(cols, all),
        unroll: direct_unroll(&p, rows, vectors, target),
    }
}

/// Cycles per step of the inner dimension of a tile of `rows` rows, `vectors` vector
/// columns and `scalars` single columns, as Cranelift compiles it. Its x86 FMA
/// overwrites a multiplicand, so each reuse of a broadcast of A costs a register copy,
/// and the accumulators, which come out in the broadcasts' registers, move back at the
/// loop's back edge: about two more operations per FMA for the front end to issue.
/// Each accumulator also waits for its previous FMA (the latency bound).
fn step_cycles(rows: usize, vectors: usize, scalars: usize, t: &TargetInfo) -> f64 {
    let cols = vectors + scalars;
    let fmas = rows * cols;
    let loads = rows + cols;
    let copies = rows * cols.saturating_sub(1);
    let ops = fmas + copies + fmas + loads + rows + LOOP_OPS;
    (fmas as f64 / t.fma_per_cycle)
        .max(ops as f64 / t.issue_width)
        .max(loads as f64 / t.loads_per_cycle)
        .max(t.fma_latency)
}

/// Cycles per step of the inner dimension for the whole `m x n` grid of tiles.
fn grid_cycles(m: usize, n: usize, rows: usize, vectors: usize, t: &TargetInfo) -> f64 {
    let cols = vectors * t.lanes;
    let (full_rows, rest_rows) = ((m / rows) as f64, m % rows);
    let (full_cols, rest_cols) = ((n / cols) as f64, n % cols);
    let (tail_v, tail_s) = (rest_cols / t.lanes, rest_cols % t.lanes);
    let mut cycles = full_rows * full_cols * step_cycles(rows, vectors, 0, t);
    if rest_rows > 0 {
        cycles += full_cols * step_cycles(rest_rows, vectors, 0, t);
    }
    if rest_cols > 0 {
        cycles += full_rows * step_cycles(rows, tail_v, tail_s, t);
        if rest_rows > 0 {
            cycles += step_cycles(rest_rows, tail_v, tail_s, t);
        }
    }
    cycles
}

/// The tile the cost model picks for `p` on `target`.
pub fn choose_tile(p: Problem, target: &TargetInfo) -> Tile {
    let mut best: Option<(f64, usize, usize)> = None;
    for vectors in 1..=8 {
        for rows in 1..=8 {
            // Accumulators, the B vectors of a step, a broadcast of A and its copy,
            // leaving the register allocator room to work; no larger than the product.
            if rows * vectors + vectors + 2 + REGISTER_RESERVE > target.vector_registers
                || rows > p.m.max(1)
                || (vectors - 1) * target.lanes >= p.n.max(1)
            {
                continue;
            }
            let cycles = grid_cycles(p.m.max(1), p.n.max(1), rows, vectors, target);
            let better = match best {
                None => true,
                Some((c, r, v)) => {
                    cycles < c * (1.0 - 1e-9) || (cycles <= c && rows * vectors > r * v)
                }
            };
            if better {
                best = Some((cycles, rows, vectors));
            }
        }
    }
    let (_, rows, vectors) = best.expect("a one-vector tile always fits");
    let cols = vectors * target.lanes;
    let floats = |bytes: usize| bytes / 4;
    let k = p.k.max(1);
    let k_max = (floats(target.l1_bytes / 2) / (rows + cols)).max(target.lanes);
    let k_block = k.div_ceil(k.div_ceil(k_max));
    let mut col_block = floats(target.l2_bytes / 2) / k_block;
    if p.im2col {
        col_block = col_block.min(floats(target.l2_bytes / 4) / k);
    }
    // Whole register tiles, at least one; no more than the product has.
    let col_block = (col_block / cols * cols).clamp(cols, p.n.max(1).next_multiple_of(cols));
    Tile {
        rows,
        cols,
        k_block,
        col_block,
        unroll: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(m: usize, n: usize, k: usize, im2col: bool) -> Tile {
        choose_tile(Problem { m, n, k, im2col }, &TargetInfo::default())
    }

    #[test]
    fn register_tiles_fit_the_registers() {
        let t = TargetInfo::default();
        for (m, n) in [(64, 3136), (1, 1000), (1000, 1), (7, 13), (256, 49), (3, 3)] {
            let tile = tile(m, n, 64, false);
            let v = tile.cols / t.lanes;
            assert!(
                tile.rows * v + v + 2 + REGISTER_RESERVE <= t.vector_registers,
                "{tile}"
            );
            assert_eq!(tile.cols % t.lanes, 0);
        }
    }

    #[test]
    fn large_products_hide_the_fma_latency() {
        // Eight accumulators keep two FMA pipes of latency 4 busy.
        let t = tile(64, 3136, 576, true);
        assert!(t.rows * t.cols / 4 >= 8, "{t}");
    }

    #[test]
    fn the_tile_follows_the_shape() {
        // One row (a classifier on one image): the widest tile of one row.
        let t = tile(1, 1000, 2048, false);
        assert_eq!(t.rows, 1, "{t}");
        // 1000 rows and one column: one vector column, many rows.
        let t = tile(1000, 4, 64, false);
        assert_eq!(t.cols, 4, "{t}");
    }

    #[test]
    fn blocks_fit_the_caches() {
        let target = TargetInfo::default();
        for (m, n, k, im2col) in [
            (512, 49, 4608, true),
            (64, 3136, 64, false),
            (1, 1000, 9216, false),
        ] {
            let t = tile(m, n, k, im2col);
            assert!((t.rows + t.cols) * t.k_block * 4 <= target.l1_bytes / 2 || t.k_block <= 4);
            assert!(
                t.k_block <= k && k.div_ceil(t.k_block) * t.k_block - k < k.div_ceil(t.k_block)
            );
            assert!(
                t.k_block * t.col_block * 4 <= target.l2_bytes / 2 || t.col_block == t.cols,
                "{t}"
            );
            assert_eq!(t.col_block % t.cols, 0);
        }
    }

    #[test]
    fn small_products_are_one_block() {
        let t = tile(16, 100, 27, true);
        assert_eq!(t.k_block, 27);
        assert!(t.col_block >= 100, "{t}");
    }

    /// The products of a small Winograd plane (one row of nine tiles, 512 to 512
    /// channels): every weight comes from beyond L2 once per run, so the tile covers
    /// the row in one pass instead of streaming the weights at three pixels per read
    /// (measured: 9x1 took 7.0-7.9 ms where 3x4 took 8.9-9.4).
    #[test]
    fn a_single_row_reads_its_weights_once() {
        let t = TargetInfo::default();
        let p = DirectProblem {
            vectors: 128,
            columns: vec![(9, 1.0)],
            rows: 1,
            channels: 512,
            weights_per_channel: 512 * 4,
            bytes: 128 * 4 * 512 * 4 + 2 * 9 * 512 * 4,
        };
        assert_eq!(choose_direct_tile(p.clone(), &t).rows, 9);
        // With many rows the same weights come from L2: a tile of several vectors.
        let rows = DirectProblem {
            rows: 56,
            columns: vec![(56, 1.0)],
            ..p
        };
        let tile = choose_direct_tile(rows, &t);
        assert!(tile.rows * tile.cols / t.lanes >= 8, "{tile}");
    }

    /// A one-vector tile of at most 8 pixels takes a whole input block per step, unless
    /// the convolution streams from memory.
    #[test]
    fn small_one_vector_tiles_unroll_a_block_unless_streamed() {
        let t = TargetInfo::default();
        // Inception v1's 3x3 160 to 320 at 13x13 as Winograd products: 16 tiles.
        let products = DirectProblem {
            vectors: 80,
            columns: vec![(16, 1.0)],
            rows: 1,
            channels: 160,
            weights_per_channel: 160 * 4,
            bytes: 36 * 4 * (16 * (160 + 320) + 320 * 160),
        };
        let tile = choose_direct_tile(products.clone(), &t);
        assert_eq!((tile.rows, tile.cols, tile.unroll), (8, 4, 4), "{tile}");
        // VGG-19's 512 to 512 at 14x14: 38 MB of weights.
        let streamed = DirectProblem {
            vectors: 128,
            channels: 512,
            weights_per_channel: 512 * 4,
            bytes: 36 * 4 * (16 * 1024 + 512 * 512),
            ..products
        };
        let tile = choose_direct_tile(streamed, &t);
        assert_eq!((tile.rows, tile.unroll), (8, 2), "{tile}");
        // Wider tiles keep 2 channels per step.
        let wide = DirectProblem {
            columns: vec![(56, 1.0)],
            rows: 56,
            ..products
        };
        let tile = choose_direct_tile(wide, &t);
        assert!(tile.rows > 8 || tile.cols > 4, "{tile}");
        assert_eq!(tile.unroll, 2, "{tile}");
    }
}
