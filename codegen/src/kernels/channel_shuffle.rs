//! Channel shuffle (`Op::ChannelShuffle`): output channel `j * g + i` is input channel
//! `i * C/g + j`.
//!
//! Plain, it is a strided copy of whole channel planes. Blocked (one vector of four
//! channels per block, `C/g` a multiple of four), four consecutive `j` of all `g`
//! groups are `g` input blocks and make `g` output blocks: at each position the `g`
//! vectors are a `g x 4` matrix to transpose, done in registers by lane shuffles, so
//! every value is loaded and stored once as part of a vector. This replaces the reorder
//! to plain, the transpose and the reorder back the ONNX spelling would run (ShuffleNet
//! has one shuffle per unit).

use cnnc_ir::Layout;
use cranelift_codegen::ir::types::I8X16;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::movement::{CopyPlan, copy_launch};
use super::{KernelCx, row_blocks, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

pub fn emit(cx: &mut KernelCx, groups: usize) -> Result<(), CodegenError> {
    let x = cx.inputs[0].ty.clone();
    let (n, c) = (x.shape[0], x.shape[1]);
    let s: usize = x.shape[2..].iter().product();
    if x.numel() == 0 {
        return Ok(());
    }
    match x.layout {
        Layout::Plain => plain(cx, n, c, s, groups, x.dtype.size()),
        Layout::Blocked { block }
            if block as usize == LANES && (c / groups).is_multiple_of(LANES) =>
        {
            blocked(cx, n, c, s, groups)
        }
        layout => Err(CodegenError::Unsupported(format!(
            "channel shuffle of {c} channels in {groups} groups in layout {layout:?}"
        ))),
    }
}

/// Over the output as `[n, j, i, s]`, reading input channel `i * C/g + j`.
fn plain(
    cx: &mut KernelCx,
    n: usize,
    c: usize,
    s: usize,
    groups: usize,
    elem: usize,
) -> Result<(), CodegenError> {
    let (src, dst) = (cx.input(0), cx.output(0));
    let (c_, s_, g_) = (c as isize, s as isize, groups as isize);
    let from = vec![c_ * s_, s_, c_ / g_ * s_, 1];
    let plan = CopyPlan::strided(&[n, c / groups, groups, s], from, 0, elem);
    copy_launch(cx, src, dst, plan)
}

/// Blocked: a unit is one image's `k`-th run of four `j` (input blocks `i * q + k`,
/// output blocks `k * g + o`, `q = C / 4g`) over a range of positions.
fn blocked(
    cx: &mut KernelCx,
    n: usize,
    c: usize,
    s: usize,
    groups: usize,
) -> Result<(), CodegenError> {
    let (src, dst) = (cx.input(0), cx.output(0));
    let q = c / (LANES * groups);
    let planes = n * q;
    let (per, blocks) = row_blocks(planes, s, n * c * s);
    let units = planes * blocks;
    let tasks = tasks_for(units, n * c * s);
    let block_bytes = (s * LANES * 4) as i64;
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, units, tasks);
        fx.for_range(lo, hi, |fx, u| {
            let plane = fx.b.ins().udiv_imm_u(u, blocks as i64);
            let part = fx.b.ins().urem_imm_u(u, blocks as i64);
            let image = fx.b.ins().udiv_imm_u(plane, q as i64);
            let k = fx.b.ins().urem_imm_u(plane, q as i64);
            // Block `image * C/4 + k` of the input, `image * C/4 + k * g` of the output,
            // each `g` blocks `q` and one block apart.
            let image_block = fx.b.ins().imul_imm_s(image, (c / LANES) as i64);
            let from = fx.b.ins().iadd(image_block, k);
            let from = fx.addr(ptrs[src], from, block_bytes, 0);
            let froms: Vec<Value> = (0..groups)
                .map(|i| fx.add(from, (i * q) as i64 * block_bytes))
                .collect();
            let to = fx.b.ins().imul_imm_s(k, groups as i64);
            let to = fx.b.ins().iadd(image_block, to);
            let to = fx.addr(ptrs[dst], to, block_bytes, 0);
            let tos: Vec<Value> = (0..groups)
                .map(|o| fx.add(to, o as i64 * block_bytes))
                .collect();
            // The part's positions: `per` of them, fewer in the last part.
            let lo = fx.b.ins().imul_imm_s(part, per as i64);
            let hi = fx.b.ins().iadd_imm_s(lo, per as i64);
            let end = fx.iconst(s as i64);
            let hi = fx.b.ins().smin(hi, end);
            fx.for_range(lo, hi, |fx, p| {
                let at = fx.b.ins().imul_imm_s(p, (LANES * 4) as i64);
                let v: Vec<Value> = froms
                    .iter()
                    .map(|&f| {
                        let x = fx.b.ins().iadd(f, at);
                        fx.load(I8X16, x, 0)
                    })
                    .collect();
                for (out, &t) in transposed(fx, &v).into_iter().zip(&tos) {
                    let y = fx.b.ins().iadd(t, at);
                    fx.store(out, y, 0);
                }
            });
        });
        Ok(())
    })
}

/// The `g` output vectors of one position from its `g` input vectors: output vector
/// `o` holds flat indices `4o..4o + 4` of the `4 x g` output `(j, i)`, `i` fastest,
/// which is lane `j` of input `i`. With `g` a multiple of four that is `g / 4` 4x4
/// transposes (output `j * g/4 + a` is row `j` of the transpose of inputs `4a..4a + 4`),
/// eight shuffles for four vectors; otherwise each output gathers its lanes.
fn transposed(fx: &mut Fx, v: &[Value]) -> Vec<Value> {
    let g = v.len();
    if g.is_multiple_of(LANES) {
        let rows: Vec<[Value; 4]> = v
            .chunks_exact(LANES)
            .map(|c| fx.transpose4([c[0], c[1], c[2], c[3]]))
            .collect();
        return (0..g)
            .map(|o| rows[o % (g / LANES)][o / (g / LANES)])
            .collect();
    }
    (0..g)
        .map(|o| {
            let picks = std::array::from_fn(|l| {
                let f = o * LANES + l;
                (f % g, (f / g) as u8)
            });
            gather(fx, v, &picks)
        })
        .collect()
}

/// A vector whose lane `l` is lane `picks[l].1` of `v[picks[l].0]`: one two-source
/// shuffle when the lanes come from at most two vectors, else one for each pair of
/// sources and one to merge them.
fn gather(fx: &mut Fx, v: &[Value], picks: &[(usize, u8); LANES]) -> Value {
    let mut sources: Vec<usize> = Vec::with_capacity(LANES);
    for &(s, _) in picks {
        if !sources.contains(&s) {
            sources.push(s);
        }
    }
    // Lane selection from `pair` (two source indices), lanes of other sources left 0.
    let pair_shuffle = |fx: &mut Fx, pair: [usize; 2]| {
        let lanes = picks.map(|(s, lane)| match s {
            s if s == pair[0] => lane,
            s if s == pair[1] => LANES as u8 + lane,
            _ => 0,
        });
        fx.shuffle32(v[pair[0]], v[pair[1]], lanes)
    };
    let pair = |k: usize| [sources[k], *sources.get(k + 1).unwrap_or(&sources[k])];
    if sources.len() <= 2 {
        return pair_shuffle(fx, pair(0));
    }
    let (lo, hi) = (pair(0), pair(2));
    let a = pair_shuffle(fx, lo);
    let b = pair_shuffle(fx, hi);
    let merge = std::array::from_fn(|l| {
        let from_lo = lo.contains(&picks[l].0);
        l as u8 + if from_lo { 0 } else { LANES as u8 }
    });
    fx.shuffle32(a, b, merge)
}
