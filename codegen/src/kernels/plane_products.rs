//! A pointwise convolution, grouped or not, on plain tensors whose planes are small
//! (up to 13 vectors) and a whole number of vectors: the products of a Winograd convolution on a small
//! image (`Winograd::plain_products`), each group a transform position. A register
//! tile is `rows` output channels by the whole plane: per input channel, a broadcast
//! of each row's weight times each vector of the plane's pixels. So each weight is
//! read once, in order, the stream from L3 or memory even: on blocked tensors a
//! 16-pixel plane runs as two tiles of 8 pixels over all of a vector group's weights,
//! the first bringing them from beyond L2 in a burst, the second reading them from L1
//! (VGG-19's 512 channels at 14x14: 65% of the FMA peak).
//!
//! The weights are packed at compile time, per group and tile, one input channel's
//! weights of the tile's rows side by side; the register tile is
//! [`PlaneTile`](super::microkernel::PlaneTile).

use cnnc_ir::Layout;
use cnnc_ir::op::Conv;
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::condcodes::IntCC;

use super::microkernel::PlaneTile;
use super::{KernelCx, f32_constant, on_every_core, tasks_for, wanted_tasks};
use crate::CodegenError;
use crate::emit::LANES;

/// Whether this kernel computes the convolution `c` of the node in `cx`: plain,
/// with constant weights, and of the shapes `Conv::on_plane_kernel` names (the plain
/// Winograd products, and any other pointwise convolution of such planes).
pub fn applies(cx: &KernelCx, c: &Conv) -> bool {
    cx.outputs[0].1.layout == Layout::Plain
        && cx.inputs[1].constant.is_some()
        && c.on_plane_kernel(&cx.inputs[0].ty.shape, cx.inputs.len(), LANES)
}

/// `w` (`[groups * mg, cg]`) into `out`: per group, the tiles of `rows` output
/// channels (the last one the rest), per input channel the tile's rows' weights.
fn pack(w: &[f32], (mg, cg, rows): (usize, usize, usize), out: &mut [f32]) {
    let mut parts: Vec<(&[f32], &mut [f32])> = w
        .chunks_exact(mg * cg)
        .zip(out.chunks_exact_mut(mg * cg))
        .collect();
    on_every_core(&mut parts, w.len(), |(group, dst)| {
        let mut dst = dst.iter_mut();
        for tile in group.chunks(rows * cg) {
            let n = tile.len() / cg;
            for ic in 0..cg {
                for r in 0..n {
                    *dst.next().expect("the packed group fills its part") = tile[r * cg + ic];
                }
            }
        }
    });
}

pub fn emit(cx: &mut KernelCx, c: &Conv) -> Result<(), CodegenError> {
    let (xs, ys) = (cx.inputs[0].ty.shape.clone(), cx.outputs[0].1.shape.clone());
    let (n, cin, cout) = (xs[0], xs[1], ys[1]);
    let plane: usize = xs[2..].iter().product();
    let (cg, mg) = (cin / c.groups, cout / c.groups);
    let Some(weights) = cx.inputs[1].constant else {
        return Err(CodegenError::Unsupported(
            "a plane product needs constant weights".into(),
        ));
    };
    let weights = f32_constant(weights)?;
    let tile = PlaneTile::of(plane / LANES, mg);
    let rows = tile.rows;
    let w = cx.table_filled(cout * cg, move |dst| {
        pack(&weights.view::<f32>().expect("f32"), (mg, cg, rows), dst);
    });
    let (x, y) = (cx.input(0), cx.output(0));
    let (full, rest) = (mg / rows, mg % rows);
    let macs = n * cout * cg * plane;
    // Units: an image's group, or a share of its tiles where there are too few groups
    // for every task the work is worth (the last share also takes the narrower tile).
    let chunks = wanted_tasks(macs)
        .div_ceil(n * c.groups)
        .clamp(1, full.max(1));
    let units = n * c.groups * chunks;
    let tasks = tasks_for(units, macs);
    let (row_bytes, tile_weights) = ((plane * 4) as i64, (rows * cg * 4) as i64);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, units, tasks);
        fx.for_range(lo, hi, |fx, u| {
            let ch = fx.b.ins().urem_imm_u(u, chunks as i64);
            // The image's group: `n * groups` of them, consecutive in both tensors.
            let q = fx.b.ins().udiv_imm_u(u, chunks as i64);
            let grp = fx.b.ins().urem_imm_u(q, c.groups as i64);
            let xg = fx.addr(ptrs[x], q, cg as i64 * row_bytes, 0);
            let yg = fx.addr(ptrs[y], q, mg as i64 * row_bytes, 0);
            let wg = fx.addr(ptrs[w], grp, (mg * cg * 4) as i64, 0);
            let (t0, t1) = fx.task_range(ch, full, chunks);
            fx.for_range(t0, t1, |fx, t| {
                let wt = fx.addr(wg, t, tile_weights, 0);
                let yt = fx.addr(yg, t, rows as i64 * row_bytes, 0);
                fx.plane_tile(tile, cg, xg, wt, yt);
            });
            if rest > 0 {
                let last = fx.b.ins().icmp_imm_s(IntCC::Equal, ch, chunks as i64 - 1);
                fx.if_then(last, |fx| {
                    let wt = fx.add(wg, full as i64 * tile_weights);
                    let yt = fx.add(yg, (full * rows) as i64 * row_bytes);
                    fx.plane_tile(PlaneTile { rows: rest, ..tile }, cg, xg, wt, yt);
                });
            }
        });
        Ok(())
    })
}
