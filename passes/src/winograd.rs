//! Winograd convolution: a blocked 3x3, 4x4 or 5x5 stride-1 convolution becomes Winograd's
//! F(m x m, r x r) (see `cnnc_ir::winograd`) when the cost model says it is faster than
//! the direct kernel, and a blocked pointwise one of a small plane F(1x1, 1x1) (the
//! identity) where plain products pay ([`plain_plane`]):
//!
//! `x -> WinogradInput -> Conv 1x1 (t*t per group, transformed weights) -> WinogradOutput`
//!
//! The matrix products are a grouped pointwise convolution on blocked tensors, so the
//! direct kernel, its tiling and its threading serve them unchanged; the weights
//! (`G g Gᵀ`) are transformed here, at compile time. The output transform adds the
//! bias and applies the convolution's epilogue, and keeps the convolution's name.
//!
//! The cost model prices the products with the tiling pass's direct-kernel model
//! ([`direct_row_cycles`]) and the transforms by their operations and the bytes they
//! stream, and the weights (transformed, or the direct kernel's) by the bytes they
//! bring from beyond L2 when they do not fit it. For 3x3, F(6x6) multiplies 5.1x less
//! than the direct kernel, F(4x4) 4x less, F(2x2) 2.25x less but wastes less on small
//! images; for 4x4 (the phases of a strided stem, see `space_to_depth`), F(3x3)
//! multiplies 4x less; for 5x5, F(2x2) 2.8x less and F(4x4) 6.25x less, on 8x8 tiles
//! whose transforms cost about 2.5x a 6x6 tile's. A candidate must beat the direct
//! kernel by [`MARGIN`], so the model's error never picks the slower kernel for a small
//! gain, and an 8x8 one the best smaller one by [`LARGE_TILE_MARGIN`].

use cnnc_ir::op::{Conv, Epilogue, PLANE_PIXELS, Winograd};
use cnnc_ir::window::Axis;
use cnnc_ir::winograd::{Transform, transform, transforms_for};
use cnnc_ir::{Graph, IrError, Layout, NodeId, Op, Tensor, Value};

use crate::tiling::{DirectProblem, direct_row_cycles, row_columns};
use crate::util::{Names, constant};
use crate::{Pass, TargetInfo};

pub struct WinogradConv;

/// How much cheaper than the direct kernel a Winograd candidate must be.
pub(crate) const MARGIN: f64 = 1.25;
/// Bytes a transform moves per cycle between cache and registers (its tiles leave L1).
pub(crate) const STREAM_BYTES_PER_CYCLE: f64 = 16.0;

impl Pass for WinogradConv {
    fn name(&self) -> &'static str {
        "winograd"
    }

    fn run(&self, graph: &mut Graph, target: &TargetInfo) -> Result<usize, IrError> {
        let mut names = Names::of(graph);
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Some(conv) = candidate(graph, id, target).filter(|c| c.block.is_some()) else {
                continue;
            };
            if conv.r() == 1 {
                // F(1x1, 1x1) saves no multiply: only for the plain products.
                let wg = with_plain_products(winograd_of(&conv, 1, target), &conv, target);
                if wg.plain_products.is_some() {
                    rewrite(graph, id, &conv, wg, &mut names)?;
                    changes += 1;
                }
                continue;
            }
            let direct = direct_cycles(&conv, target);
            if let Some((cycles, wg)) = best_winograd(&conv, target)
                && cycles * MARGIN < direct
            {
                let wg = with_plain_products(wg, &conv, target);
                rewrite(graph, id, &conv, wg, &mut names)?;
                changes += 1;
            }
        }
        Ok(changes)
    }
}

/// How much cheaper than the best transform on smaller tiles one on 8x8 tiles must be:
/// their transforms compile to about 2.5x the code (U-Net 190 -> 290 ms with F(6x6)
/// wherever the model preferred it), and where F(6x6) saved under a tenth of the
/// multiplies it measured no faster (DenseNet-121's 28x28 and 56x56 layers).
const LARGE_TILE_MARGIN: f64 = 1.1;

/// Input tile side from which a transform counts as large (`LARGE_TILE_MARGIN`).
const LARGE_TILE: usize = 8;

/// The cheapest Winograd transform for `conv` and its cycles.
pub(crate) fn best_winograd(conv: &Candidate, target: &TargetInfo) -> Option<(f64, Winograd)> {
    let margin = |f: &Transform| {
        if f.t >= LARGE_TILE {
            LARGE_TILE_MARGIN
        } else {
            1.0
        }
    };
    // F(1x1, 1x1) saves no multiply (see `run`): never the cheaper kernel, nor a reason
    // for `space_to_depth` to split a convolution whose phases are 1x1.
    transforms_for(conv.r())
        .filter(|f| f.r > 1)
        .map(|f| {
            let wg = winograd_of(conv, f.m, target);
            (winograd_cycles(&wg, conv, target), margin(f), wg)
        })
        .min_by(|a, b| (a.0 * a.1).total_cmp(&(b.0 * b.1)))
        .map(|(cycles, _, wg)| (cycles, wg))
}

/// Rewrites convolution `id` with `tile`, whatever the cost model would choose and on
/// plain tensors too (which the pass leaves to the plain kernels); false if it is not
/// a 1x1, 3x3, 4x4 or 5x5 stride-1 convolution this applies to. For tests and benchmarks.
pub fn rewrite_with(
    graph: &mut Graph,
    id: NodeId,
    tile: usize,
    target: &TargetInfo,
) -> Result<bool, IrError> {
    let Some(conv) = candidate(graph, id, target) else {
        return Ok(false);
    };
    if transform(tile, conv.r()).is_none() {
        return Err(IrError::invalid(format!(
            "no Winograd transform with {tile}x{tile} tiles for {0}x{0} kernels",
            conv.r()
        )));
    }
    let wg = with_plain_products(winograd_of(&conv, tile, target), &conv, target);
    rewrite(graph, id, &conv, wg, &mut Names::of(graph))?;
    Ok(true)
}

/// A convolution the rewrite applies to (or, for `space_to_depth`, a strided one it
/// compares with).
pub(crate) struct Candidate {
    pub attrs: Conv,
    /// Input channels, output channels, output rows and columns.
    pub shape: [usize; 4],
    /// Input rows and columns.
    pub input: [usize; 2],
    pub images: usize,
    /// The channel block, `None` on plain tensors.
    pub block: Option<usize>,
}

impl Candidate {
    /// Kernel side (the kernel is square).
    fn r(&self) -> usize {
        self.attrs.kernel[0]
    }
}

/// `id` as a Winograd candidate: a 2-D 1x1, 3x3, 4x4 or 5x5 convolution with stride and
/// dilation 1 and constant weights, on plain tensors or blocked ones whose groups fill
/// whole channel blocks.
fn candidate(graph: &Graph, id: NodeId, target: &TargetInfo) -> Option<Candidate> {
    let node = graph.node(id);
    let Op::Conv(c) = &node.op else { return None };
    let inputs = graph.inputs_of(id);
    let x = graph.value_type(inputs[0]);
    let y = &node.outputs[0].ty;
    let block = match y.layout {
        Layout::Blocked { block } => Some(block as usize),
        Layout::Plain => None,
    };
    let whole = |n: usize| block.is_none_or(|b| b == target.lanes && n.is_multiple_of(b));
    let square = c.kernel.len() == 2
        && c.kernel[0] == c.kernel[1]
        && (c.kernel[0] == 1 || (3..=5).contains(&c.kernel[0]));
    let fits = square
        && c.strides == [1, 1]
        && c.dilations == [1, 1]
        && c.pads
            .iter()
            .all(|&(b, e)| b < c.kernel[0] && e < c.kernel[0])
        && whole(x.shape[1] / c.groups)
        && whole(y.shape[1] / c.groups)
        && constant(graph, inputs[1]).is_some();
    fits.then(|| Candidate {
        attrs: c.clone(),
        shape: [x.shape[1], y.shape[1], y.shape[2], y.shape[3]],
        input: [x.shape[2], x.shape[3]],
        images: y.shape[0],
        block,
    })
}

/// Cycles of the direct kernel on `conv` (any stride).
pub(crate) fn direct_cycles(conv: &Candidate, target: &TargetInfo) -> f64 {
    let [c, m, h, w] = conv.shape;
    let [ih, iw] = conv.input;
    let (cg, mg) = (c / conv.attrs.groups, m / conv.attrs.groups);
    let (pads, r, s) = (conv.attrs.pads[1], conv.r(), conv.attrs.strides[1]);
    let p = DirectProblem {
        vectors: mg / target.lanes,
        columns: row_columns(Axis {
            input: iw,
            output: w,
            kernel: r,
            stride: s,
            dilation: 1,
            pad: pads.0,
        }),
        rows: h,
        channels: cg,
        weights_per_channel: cg.div_ceil(target.lanes) * target.lanes * r * r * 4,
        bytes: 4 * (conv.images * (c * ih * iw + m * h * w) + m * cg * r * r),
    };
    direct_row_cycles(p, target) * (cg * r * r * h * conv.attrs.groups * conv.images) as f64
        + weight_stream_cycles(m * cg * r * r * 4, target)
}

/// Cache sets of an L1 data cache indexed within a 4 KiB page (every x86 one: 64 sets
/// of 64-byte lines, whatever its size).
const L1_SETS: usize = 64;

/// Lines of one channel block a product tile reads (up to 12 pixels of 16 bytes, not
/// aligned to a line).
const TILE_LINES: usize = 4;

/// Whether a product tile's reads of `blocks` channel blocks `stride` bytes apart put
/// more lines in one L1 set than half its ways (the rest hold the weights and the
/// output), or, when there are too many blocks for that, more than an even spread.
fn crowded(stride: usize, blocks: usize, target: &TargetInfo) -> bool {
    let ways = target.l1_bytes / (L1_SETS * 64);
    let limit = (ways / 2).max((blocks * TILE_LINES).div_ceil(L1_SETS) + 1);
    let mut per_set = [0usize; L1_SETS];
    for b in 0..blocks {
        for l in 0..TILE_LINES {
            per_set[(b * stride / 64 + l) % L1_SETS] += 1;
        }
    }
    per_set.iter().any(|&n| n > limit)
}

/// The Winograd attributes of `conv` with `tile`: rows of the tile plane as long as
/// keeps one row of every input channel's tiles in a quarter of L2 (the product
/// kernel reads it once per vector group), in whole rows of tiles. Planes whose size
/// is (nearly) a multiple of 4 KiB would put every channel block a product tile reads
/// in the same few L1 sets, and a tile's `t*t` values in the transforms too: each
/// plane row then ends in a few unused positions. Power-of-two images have such
/// planes: a U-Net at 256x256 (64x64 tiles of 64 channels, 4096 a plane) ran its
/// transforms in 29.1 ms and that layer's products in 15.7, then 22.9 and 13.2; the
/// model 168-182 -> 160-167 ms in two alternating runs. A convolution whose
/// transformed tensors would leave the cache goes in bands ([`band_rows`]), one row
/// of tiles a plane row.
fn winograd_of(conv: &Candidate, tile: usize, target: &TargetInfo) -> Winograd {
    let [c, _, h, w] = conv.shape;
    let p = &conv.attrs.pads;
    let mut wg = Winograd {
        tile,
        kernel: conv.r(),
        pads: [p[0].0, p[1].0],
        out: [h, w],
        plane: [0, 0],
        band: 0,
        plain_products: None,
        epilogue: Epilogue::default(),
    };
    let [th, tw] = wg.tiles();
    wg.band = band_rows(&wg, conv, target);
    let (rows, rows_per_row) = if wg.band > 0 {
        (th, 1)
    } else {
        let row_bytes = c * tw * 4;
        let fit = (target.l2_bytes / 4 / row_bytes.max(1)).max(1);
        let rows_per_row = (1..=th)
            .rev()
            .find(|k| th.is_multiple_of(*k) && *k <= fit)
            .unwrap_or(1);
        (th / rows_per_row, rows_per_row)
    };
    // The channel blocks a product tile reads are a stored plane apart: one band's.
    let stored_rows = if wg.band > 0 { wg.band } else { rows };
    let blocks = (c / conv.attrs.groups).div_ceil(target.lanes);
    let element = target.lanes * 4;
    let extra = (0..L1_SETS)
        .find(|e| {
            !crowded(
                stored_rows * (rows_per_row * tw + e) * element,
                blocks,
                target,
            )
        })
        .unwrap_or(0);
    wg.plane = [rows, rows_per_row * tw + extra];
    wg
}

/// Fewest channels (in and out, per group) for plain products on a plane of a single
/// row of output channels.
const PLAIN_CHANNELS: usize = 128;

/// The plane (tiles, in whole vectors) of plain products for `wg` on `conv`, if they
/// pay (see `Winograd::plain_products`), on blocked tensors. The blocked products run
/// a plane in register tiles of 8 to 12 pixels, each over all of a vector group's
/// weights: the first brings them from beyond L2 in a burst, the others read them
/// from L1. The plane kernel reads each weight once, evenly, but its transforms cost
/// about twice the blocked ones (every run of tiles transposed). So:
/// - planes of 8 to 13 vectors (29 to 52 tiles), where its tile is a single row of
///   output channels (one broadcast per input channel feeding an FMA per vector, at
///   86-90% of the FMA peak), with at least [`PLAIN_CHANNELS`] channels in and out
///   for the products to outweigh the transforms: VGG-19's 28x28 layers (512 channels
///   on 49 tiles, products at 69-75% blocked) 88 -> 81 ms, ZFNet-512's conv2 phases
///   7.3 -> 6.5; Inception v1's 28x28 layers of 96 to 128 channels gained in the
///   products what they lost in the transforms, AlexNet's conv2 (48 to 128 a group)
///   lost 0.3 ms. Fewer vectors are fewer FMA chains than the latency wants, and more
///   of the plane padding: 128 channels on 25 tiles (28 computed) ran 0.23 -> 0.27 ms;
/// - planes of 4 vectors (13 to 16 tiles; tiles of 2 rows by the plane, about 75% of
///   the peak, below the blocked tile's 80-85% on weights from L2) whose weights per
///   transform position (a group's) do not fit half of L2: VGG-19's 512 channels at 14x14 (1 MB a
///   position) 6.35 -> 5.62 ms of products, ResNet-50's 512 at 7x7 under F(2x2) 2.83 ->
///   2.70, but its 256 at 14x14 (256 KB) 1.30 -> 1.47; planes of 3 vectors (ZFNet-512's
///   9 tiles at 12x12, padded to 12) 3.6 -> 5.3.
///
/// A pointwise convolution (F(1x1, 1x1): its transforms only convert between blocks
/// and planes) takes them where its weights do not fit L2 either: the blocked kernel
/// then brings them from L3 or memory for its first tile of each vector group.
/// ResNet-50's last stage (7x7, 2 to 8 MB of weights: blocked at 74-82% of the FMA
/// peak, plain products at 88-92%): the model about 1% faster at 1 thread (five
/// alternating pairs, 104.6-108.5 -> 103.5-107.9 ms, one pair even). Where
/// the weights fit L2 the transforms take what the products gain: MobileNet-v2's 160
/// -> 960 channels (614 KB) 0.256 -> 0.263 ms, EfficientNet-B0's 7x7 stage with all
/// its pointwise layers plain 5.16 -> 5.13 ms, with those beyond L2 only 5.11.
fn plain_plane(wg: &Winograd, conv: &Candidate, target: &TargetInfo) -> Option<usize> {
    let [c, m, _, _] = conv.shape;
    let [th, tw] = wg.tiles();
    let plane = (th * tw).next_multiple_of(target.lanes);
    let vectors = plane / target.lanes;
    let (cg, mg) = (c / conv.attrs.groups, m / conv.attrs.groups);
    let weights = cg * mg * 4;
    let pays = match vectors {
        4 => weights > target.l2_bytes / 2,
        8.. => cg.min(mg) >= PLAIN_CHANNELS,
        _ => false,
    } && (conv.r() > 1 || weights > target.l2_bytes);
    // The plane kernel's register tile covers the whole plane (`PlaneTile`).
    (conv.block.is_some() && plane <= PLANE_PIXELS && pays).then_some(plane)
}

/// `wg` (as the cost model chose it, on blocked products) with plain products where
/// they pay ([`plain_plane`]).
fn with_plain_products(wg: Winograd, conv: &Candidate, target: &TargetInfo) -> Winograd {
    match plain_plane(&wg, conv, target) {
        Some(plane) => Winograd {
            plain_products: conv.block.map(|b| b as u32),
            plane: [1, plane],
            band: 0,
            ..wg
        },
        None => wg,
    }
}

/// Rows of tiles per band for `wg` on `conv`, 0 for none. The transformed input and
/// products are each written by one step and read by the next; when together they
/// would not fit half of L3 they go to memory and back between the steps (U-Net's
/// 64-channel 256x256 layer under F(6x6): 30 MB each; its transforms ran at 2.4x the
/// time per tile of the same layer at 64x64). In bands that fit L2 (a row of tiles at
/// least) they stay in cache: single layers at 1 thread, 64 -> 32 channels at 256x256
/// 17.0 -> 12.3 ms, VGG-19's first 22.3 -> 17.3, in bands of one row; bands of 4 to 8
/// rows, in L3, gained less or lost. The products read all their weights once per
/// band, so only weights that stay in L3 between bands (a quarter of it) go in bands:
/// 128 channels at 112x112, 4 MB of weights read 19 times, still 15.9 -> 15.3 ms. And
/// only where a row of tiles (of every image) stays in L3 too.
/// Among the band heights from half the largest that fits up to it, the one that
/// computes the fewest rows in all (the last band overlaps the one before when the
/// height does not divide the rows), the taller on a tie.
fn band_rows(wg: &Winograd, conv: &Candidate, target: &TargetInfo) -> usize {
    let [c, m, _, _] = conv.shape;
    let t = wg.transform().expect("a tile with a transform").t;
    let [th, tw] = wg.tiles();
    let row_bytes = conv.images * t * t * (c + m) * tw * 4;
    let weights = t * t * (c / conv.attrs.groups) * m * 4;
    let stays = row_bytes <= target.l3_bytes / 4 && weights <= target.l3_bytes / 4;
    if row_bytes * th <= target.l3_bytes / 2 || !stays {
        return 0;
    }
    let most = (target.l2_bytes / row_bytes.max(1)).clamp(1, th);
    (most.div_ceil(2)..=most)
        .rev()
        .min_by_key(|&b| th.div_ceil(b) * b)
        .expect("a band height")
}

/// Nonzero entries of a `rows x cols` matrix: the operations of applying it to a
/// vector (a multiply-add each, less the first of each row).
fn nonzeros(m: &[f64]) -> usize {
    m.iter().filter(|&&v| v != 0.0).count()
}

fn winograd_cycles(wg: &Winograd, conv: &Candidate, target: &TargetInfo) -> f64 {
    let [c, m, _, _] = conv.shape;
    let (cg, mg) = (c / conv.attrs.groups, m / conv.attrs.groups);
    let images = conv.images;
    let f: &Transform = wg.transform().expect("a tile with a transform");
    let (t, lanes) = (f.t, target.lanes);
    let tiles = (wg.plane[0] * wg.plane[1] * images) as f64;
    let products = DirectProblem {
        vectors: mg / lanes,
        columns: vec![(wg.plane[1], 1.0)],
        rows: wg.plane[0],
        channels: cg,
        weights_per_channel: cg * 4,
        bytes: 4 * t * t * (tiles as usize * (c + m) + m * cg),
    };
    let gemm = direct_row_cycles(products, target)
        * (cg * wg.plane[0] * t * t * conv.attrs.groups * images) as f64;
    // Per tile and channel block: the loads, the two passes of the matrix, the stores.
    let tile_cycles = |loads: usize, ops: usize, stores: usize| {
        let issue = (loads + ops + stores) as f64 / target.issue_width;
        let stream = ((loads + stores) * 16) as f64 / STREAM_BYTES_PER_CYCLE;
        issue.max(stream)
    };
    let input = tile_cycles(t * t, 2 * t * nonzeros(f.bt), t * t) * (c / lanes) as f64;
    let output = tile_cycles(t * t, (t + f.m) * nonzeros(f.at), f.m * f.m) * (m / lanes) as f64;
    // The transformed weights, `t*t / (r*r)` times the kernel's: deep layers with few
    // tiles per weight (VGG-19's 512 channels at 28x28: 38 MB in F(4x4), 67 MB in
    // F(6x6)) pay more for F(6x6)'s larger weights than its fewer multiplies save.
    gemm + tiles * (input + output) + weight_stream_cycles(t * t * cg * m * 4, target)
}

/// Cycles to read `bytes` of weights once a run from beyond L2, when they do not fit it
/// (the direct-kernel model's tiles reuse weights from L2 and L1 as if they came from
/// there).
fn weight_stream_cycles(bytes: usize, target: &TargetInfo) -> f64 {
    if bytes > target.l2_bytes {
        bytes as f64 / target.far_bytes_per_cycle
    } else {
        0.0
    }
}

/// `U[xi * M + o, c] = (G g[o, c] Gᵀ)[xi]`: the weights of the `t*t` products, in f64,
/// each output channel's kernels written as `t * t` runs of its `c` input channels
/// (those of its group) as consecutive values.
fn transformed_weights(f: &Transform, w: &Tensor, c: usize, m: usize) -> Result<Tensor, IrError> {
    let w = w.view::<f32>()?;
    let u = match (f.t, f.r) {
        (1, 1) => weights_of::<1, 1>(f.g, &w, c, m),
        (4, 3) => weights_of::<4, 3>(f.g, &w, c, m),
        (6, 3) => weights_of::<6, 3>(f.g, &w, c, m),
        (8, 3) => weights_of::<8, 3>(f.g, &w, c, m),
        (6, 4) => weights_of::<6, 4>(f.g, &w, c, m),
        (6, 5) => weights_of::<6, 5>(f.g, &w, c, m),
        (8, 5) => weights_of::<8, 5>(f.g, &w, c, m),
        (t, r) => unreachable!("Winograd input tile {t} for kernel {r}"),
    };
    Tensor::from_vec(vec![f.t * f.t * m, c, 1, 1], u)
}

/// [`transformed_weights`] for one input tile side `T` and kernel side `R`, with
/// fixed-size arrays so the two small matrix products unroll. VGG-19 has 2.2 million
/// kernels to transform, so the output channels are split over every core: each thread
/// writes its range of every one of the `T * T` runs.
fn weights_of<const T: usize, const R: usize>(
    g: &[f64],
    w: &[f32],
    c: usize,
    m: usize,
) -> Vec<f32> {
    let g: [[f64; R]; T] = std::array::from_fn(|i| std::array::from_fn(|j| g[i * R + j]));
    let mut u = vec![0f32; T * T * m * c];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = m.div_ceil(threads).max(1);
    let mut parts: Vec<Vec<&mut [f32]>> = (0..m.div_ceil(per)).map(|_| Vec::new()).collect();
    for run in u.chunks_exact_mut(m * c) {
        for (part, piece) in parts.iter_mut().zip(run.chunks_mut(per * c)) {
            part.push(piece);
        }
    }
    std::thread::scope(|s| {
        for (part, w) in parts.into_iter().zip(w.chunks(per * R * R * c)) {
            s.spawn(move || transform_range::<T, R>(&g, w, part, c));
        }
    });
    u
}

/// Transforms the kernels of consecutive output channels `w` into `runs[xi]`, the
/// same channels' part of each of the `T * T` runs. Each output channel's `T * T`
/// values per input channel go to a buffer first, input channel fastest in each run,
/// so that the runs are written in whole copies rather than a value at a time.
fn transform_range<const T: usize, const R: usize>(
    g: &[[f64; R]; T],
    w: &[f32],
    mut runs: Vec<&mut [f32]>,
    c: usize,
) {
    let mut channel = vec![0f32; T * T * c];
    for (o, kernels) in w.chunks_exact(R * R * c).enumerate() {
        for (ch, k) in kernels.chunks_exact(R * R).enumerate() {
            // G k: T x R.
            let mut gk = [[0f64; R]; T];
            for (i, row) in gk.iter_mut().enumerate() {
                for (l, v) in row.iter_mut().enumerate() {
                    for a in 0..R {
                        *v += g[i][a] * k[a * R + l] as f64;
                    }
                }
            }
            // (G k) Gᵀ: T x T.
            for (i, gki) in gk.iter().enumerate() {
                for (j, gj) in g.iter().enumerate() {
                    let mut v = 0f64;
                    for l in 0..R {
                        v += gki[l] * gj[l];
                    }
                    channel[(i * T + j) * c + ch] = v as f32;
                }
            }
        }
        for (run, values) in runs.iter_mut().zip(channel.chunks_exact(c)) {
            run[o * c..(o + 1) * c].copy_from_slice(values);
        }
    }
}

fn rewrite(
    graph: &mut Graph,
    id: NodeId,
    conv: &Candidate,
    wg: Winograd,
    names: &mut Names,
) -> Result<(), IrError> {
    let f = wg.transform().expect("a tile with a transform");
    let [c, m, _, _] = conv.shape;
    let inputs = graph.inputs_of(id);
    let name = graph.node(id).outputs[0].name.clone();
    let weights = constant(graph, inputs[1]).expect("candidate has constant weights");
    let u = transformed_weights(f, weights, c / conv.attrs.groups, m)?;
    let u = graph.add_const(names.fresh(&format!("{name}/winograd_weights")), u);
    let v = graph.add(
        names.fresh(&format!("{name}/winograd_input")),
        Op::WinogradInput(wg.clone()),
        &[inputs[0]],
    )?;
    // The transformed input holds `t*t` runs of `C` channels, the products `t*t` runs
    // of `M`: product `xi` of group `g` is the group `xi * groups + g` of a pointwise
    // convolution.
    let tt = f.t * f.t;
    let products = Conv {
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(0, 0); 2],
        groups: tt * conv.attrs.groups,
        epilogue: Epilogue::default(),
    };
    let p = graph.add(
        names.fresh(&format!("{name}/winograd_products")),
        Op::Conv(products),
        &[v, u],
    )?;
    if let (Some(block), None) = (conv.block, wg.plain_products) {
        graph.node_mut(p.node).outputs[0].ty.layout = Layout::Blocked {
            block: block as u32,
        };
    }
    let own = inputs.len() - conv.attrs.epilogue.extra_inputs();
    let bias: Value = if own > 2 {
        inputs[2]
    } else {
        let zero = Tensor::from_vec(vec![m], vec![0f32; m])?;
        graph.add_const(names.fresh(&format!("{name}/winograd_bias")), zero)
    };
    let mut out_inputs = vec![p, bias];
    out_inputs.extend(&inputs[own..]);
    let out = Winograd {
        epilogue: conv.attrs.epilogue,
        ..wg
    };
    graph.rewrite(id, Op::WinogradOutput(out), &out_inputs)
}
