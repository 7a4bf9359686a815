//! Convolution on plain tensors, 1-D to 3-D, with groups and dilation: im2col into per-task scratch,
//! one block of output rows at a time, then the GEMM micro-kernel with the bias in its
//! epilogue. A pointwise convolution (1x1, stride 1, no padding) reads its input as
//! the GEMM operand directly.

use cnnc_ir::Layout;
use cnnc_ir::op::{Activation, Conv, Epilogue, Tile};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::activation::costly_span;
use super::gemm::{Bias, Post, Product, check_tile, default_tile};
use super::{KernelCx, MAX_TASKS, MIN_TASK_WORK, tasks_for};
use crate::CodegenError;
use crate::emit::Fx;

/// The geometry of a convolution with spatial axes padded to three (d, h, w).
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub groups: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub dilation: [usize; 3],
    pub pad: [usize; 3],
}

/// Pads per-axis attributes at the front to three axes with `fill`.
pub fn three(v: &[usize], fill: usize) -> [usize; 3] {
    let mut a = [fill; 3];
    a[3 - v.len()..].copy_from_slice(v);
    a
}

impl Geometry {
    pub fn of(c: &Conv, x: &[usize], y: &[usize]) -> Self {
        let begin: Vec<usize> = c.pads.iter().map(|p| p.0).collect();
        Geometry {
            batch: x[0],
            cin: x[1],
            cout: y[1],
            groups: c.groups,
            input: three(&x[2..], 1),
            output: three(&y[2..], 1),
            kernel: three(&c.kernel, 1),
            stride: three(&c.strides, 1),
            dilation: three(&c.dilations, 1),
            pad: three(&begin, 0),
        }
    }

    fn in_plane(&self) -> usize {
        self.input.iter().product()
    }

    fn out_plane(&self) -> usize {
        self.output.iter().product()
    }

    /// Output rows (depth x height); each has `output[2]` pixels.
    fn rows(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Inner dimension of the product: input channels of a group times kernel size.
    fn depth(&self) -> usize {
        self.cin / self.groups * self.kernel.iter().product::<usize>()
    }

    /// A 1x1 kernel reading every input pixel once, in order: the input is the GEMM's
    /// B as it is. (End padding would add output pixels, so the sizes must agree.)
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1, 1] && self.stride == [1, 1, 1] && self.input == self.output
    }

    /// Whether every output index of axis `a` reads every kernel tap inside the input
    /// (no padding is reached): a loop over the taps has a constant count.
    pub fn all_taps(&self, a: usize) -> bool {
        self.pad[a] == 0
            && (self.output[a] - 1) * self.stride[a] + (self.kernel[a] - 1) * self.dilation[a]
                < self.input[a]
    }

    /// The outputs of axis `a` that read every kernel tap inside the input: a range,
    /// empty when padding reaches every output.
    pub fn interior(&self, a: usize) -> std::ops::Range<usize> {
        (0..self.kernel[a])
            .map(|k| self.valid(a, k))
            .fold(0..self.output[a], |r, (lo, hi)| {
                r.start.max(lo)..r.end.min(hi)
            })
    }

    /// The outputs `o` of axis `a` whose input index `o * stride + k * dilation - pad`
    /// is inside the input.
    fn valid(&self, a: usize, k: usize) -> (usize, usize) {
        let off = (k * self.dilation[a]) as isize - self.pad[a] as isize;
        let s = self.stride[a] as isize;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let top = self.input[a] as isize - 1 - off;
        let hi = if top < 0 { 0 } else { top / s + 1 };
        let lo = (lo as usize).min(self.output[a]);
        (lo, (hi as usize).clamp(lo, self.output[a]))
    }
}

impl Fx<'_> {
    /// Fills `rows` output rows starting at row `r0` of the im2col matrix at `col`
    /// (row-major [depth, rows * W]) from one image and group of the input at `x`.
    fn im2col(&mut self, g: &Geometry, x: Value, col: Value, r0: Value, rows: usize) {
        let [kd_n, kh_n, kw_n] = g.kernel;
        let ow = g.output[2];
        let width = rows * ow;
        let cg = g.cin / g.groups;
        let kk = kd_n * kh_n * kw_n;
        self.for_n(cg as u64, |fx, c| {
            let xc = fx.addr(x, c, 4 * g.in_plane() as i64, 0);
            let crow0 = fx.addr(col, c, 4 * (kk * width) as i64, 0);
            for kd in 0..kd_n {
                for kh in 0..kh_n {
                    for kw in 0..kw_n {
                        let k = (kd * kh_n + kh) * kw_n + kw;
                        let crow = fx.add(crow0, 4 * (k * width) as i64);
                        let (lo, hi) = g.valid(2, kw);
                        fx.for_n(rows as u64, |fx, row| {
                            let r = fx.b.ins().iadd(r0, row);
                            let (od, oh) = if g.output[0] == 1 {
                                (fx.iconst(0), r)
                            } else {
                                (
                                    fx.b.ins().udiv_imm_u(r, g.output[1] as i64),
                                    fx.b.ins().urem_imm_u(r, g.output[1] as i64),
                                )
                            };
                            let id = fx.b.ins().imul_imm_s(od, g.stride[0] as i64);
                            let id =
                                fx.b.ins()
                                    .iadd_imm_s(id, (kd * g.dilation[0]) as i64 - g.pad[0] as i64);
                            let ih = fx.b.ins().imul_imm_s(oh, g.stride[1] as i64);
                            let ih =
                                fx.b.ins()
                                    .iadd_imm_s(ih, (kh * g.dilation[1]) as i64 - g.pad[1] as i64);
                            // Unsigned compares also reject negative indices.
                            let vd = fx.b.ins().icmp_imm_u(
                                IntCC::UnsignedLessThan,
                                id,
                                g.input[0] as i64,
                            );
                            let vh = fx.b.ins().icmp_imm_u(
                                IntCC::UnsignedLessThan,
                                ih,
                                g.input[1] as i64,
                            );
                            let valid = fx.b.ins().band(vd, vh);
                            let dst = fx.addr(crow, row, 4 * ow as i64, 0);
                            fx.if_else(
                                valid,
                                |fx| {
                                    let plane_row = fx.b.ins().imul_imm_s(id, g.input[1] as i64);
                                    let plane_row = fx.b.ins().iadd(plane_row, ih);
                                    let src = fx.addr(xc, plane_row, 4 * g.input[2] as i64, 0);
                                    fx.fill_f32(dst, lo, 0.0);
                                    let first = (lo * g.stride[2] + kw * g.dilation[2]) as i64
                                        - g.pad[2] as i64;
                                    if g.stride[2] == 1 {
                                        let s = fx.add(src, 4 * first);
                                        let d = fx.add(dst, 4 * lo as i64);
                                        fx.copy_bytes(s, d, 4 * (hi - lo));
                                    } else {
                                        fx.for_n((hi - lo) as u64, |fx, o| {
                                            let s =
                                                fx.addr(src, o, 4 * g.stride[2] as i64, 4 * first);
                                            let v =
                                                fx.load(cranelift_codegen::ir::types::F32, s, 0);
                                            let d = fx.addr(dst, o, 4, 4 * lo as i64);
                                            fx.store(v, d, 0);
                                        });
                                    }
                                    let tail = fx.add(dst, 4 * hi as i64);
                                    fx.fill_f32(tail, ow - hi, 0.0);
                                },
                                |fx| fx.fill_f32(dst, ow, 0.0),
                            );
                        });
                    }
                }
            }
        });
    }
}

/// Argument slots of a fused epilogue's inputs.
pub struct EpilogueArgs {
    pub residual: Option<usize>,
    /// A PRelu slope with one value per output channel.
    pub slope: Option<usize>,
}

/// Declares the epilogue's inputs (after the op's own); the slope must be per channel.
pub fn epilogue_args(
    cx: &mut KernelCx,
    e: &Epilogue,
    channels: usize,
) -> Result<EpilogueArgs, CodegenError> {
    let mut at = cx.inputs.len() - e.extra_inputs();
    let residual = e.residual.then(|| {
        at += 1;
        cx.input(at - 1)
    });
    let slope = match e.activation {
        Some(Activation::PRelu) => {
            let n = cx.inputs[at].ty.numel();
            if n != channels {
                return Err(CodegenError::Unsupported(format!(
                    "a fused PRelu slope of {n} values for {channels} channels"
                )));
            }
            Some(cx.input(at))
        }
        _ => None,
    };
    Ok(EpilogueArgs { residual, slope })
}

/// The blocking without a tiling pass: the GEMM default, with blocks of output rows of
/// about 64 Ki floats of im2col scratch, or about 1024 pixels for a pointwise
/// convolution.
fn default_conv_tile(g: &Geometry) -> Tile {
    let pixels = if g.pointwise() {
        1024
    } else {
        (1 << 16) / g.depth().max(1)
    };
    Tile {
        col_block: pixels.max(1),
        ..default_tile(g.depth(), g.out_plane())
    }
}

pub fn emit(cx: &mut KernelCx, c: &Conv) -> Result<(), CodegenError> {
    if let Layout::Blocked { block } = cx.outputs[0].1.layout {
        return super::direct_conv::emit(cx, c, block as usize);
    }
    if super::plane_products::applies(cx, c) {
        return super::plane_products::emit(cx, c);
    }
    let g = Geometry::of(c, &cx.inputs[0].ty.shape, &cx.outputs[0].1.shape);
    let (x, w, out) = (cx.input(0), cx.input(1), cx.output(0));
    let extra = epilogue_args(cx, &c.epilogue, g.cout)?;
    let own = cx.inputs.len() - c.epilogue.extra_inputs();
    let bias = (own > 2).then(|| cx.input(2));
    let activation = c.epilogue.activation;
    let span = costly_span(cx, activation)?;
    let tile = cx.tile.unwrap_or_else(|| default_conv_tile(&g));
    check_tile(&tile)?;
    let rows = g.rows();
    let macs = g.batch * g.cout * g.out_plane() * g.depth();
    // Output rows per block: the tile's column block, in whole rows, but blocks
    // enough for every task the work is worth.
    let wanted = (macs / MIN_TASK_WORK).clamp(1, MAX_TASKS).div_ceil(g.batch);
    let r = (tile.col_block / g.output[2]).clamp(1, rows.div_ceil(wanted));
    let blocks = rows.div_ceil(r);
    let rest = rows % r;
    let units = g.batch * blocks;
    let tasks = tasks_for(units, macs);
    let depth = g.depth();
    let block_floats = depth * r * g.output[2];
    let col = (!g.pointwise()).then(|| cx.scratch(4 * tasks * block_floats));
    let (cg, mg) = (g.cin / g.groups, g.cout / g.groups);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = if tasks > 1 {
            fx.task_range(task, units, tasks)
        } else {
            (fx.iconst(0), fx.iconst(units as i64))
        };
        let scratch = col.map(|k| fx.addr(ptrs[k], task, 4 * block_floats as i64, 0));
        fx.for_range(lo, hi, |fx, u| {
            let n = fx.b.ins().udiv_imm_u(u, blocks as i64);
            let blk = fx.b.ins().urem_imm_u(u, blocks as i64);
            let r0 = fx.b.ins().imul_imm_s(blk, r as i64);
            let body = |fx: &mut Fx, rows_here: usize| {
                fx.for_n(g.groups as u64, |fx, grp| {
                    let img = fx.b.ins().imul_imm_s(n, g.groups as i64);
                    let img = fx.b.ins().iadd(img, grp);
                    let xg = fx.addr(ptrs[x], img, 4 * (cg * g.in_plane()) as i64, 0);
                    let (b, b_row) = match scratch {
                        Some(s) => {
                            fx.im2col(&g, xg, s, r0, rows_here);
                            (s, (rows_here * g.output[2]) as i64)
                        }
                        None => (
                            fx.addr(xg, r0, 4 * g.output[2] as i64, 0),
                            g.in_plane() as i64,
                        ),
                    };
                    let a = fx.addr(ptrs[w], grp, 4 * (mg * depth) as i64, 0);
                    let c_at = fx.addr(ptrs[out], img, 4 * (mg * g.out_plane()) as i64, 0);
                    let c_at = fx.addr(c_at, r0, 4 * g.output[2] as i64, 0);
                    let bias = match bias {
                        Some(k) => Bias::Row(fx.addr(ptrs[k], grp, 4 * mg as i64, 0)),
                        None => Bias::None,
                    };
                    let post = Post {
                        residual: extra.residual.map(|k| {
                            let at = fx.addr(ptrs[k], img, 4 * (mg * g.out_plane()) as i64, 0);
                            fx.addr(at, r0, 4 * g.output[2] as i64, 0)
                        }),
                        activation,
                        slope: extra.slope.map(|k| fx.addr(ptrs[k], grp, 4 * mg as i64, 0)),
                        span,
                    };
                    let p = Product {
                        m: mg,
                        n: rows_here * g.output[2],
                        k: depth,
                        a,
                        a_row: depth as i64,
                        a_col: 1,
                        b,
                        b_row,
                        c: c_at,
                        c_row: g.out_plane() as i64,
                        b_scratch: scratch.is_some(),
                        alpha: 1.0,
                        bias,
                        post,
                        tile,
                    };
                    fx.gemm(&p, None);
                });
            };
            if rest == 0 {
                body(fx, r);
            } else {
                let last =
                    fx.b.ins()
                        .icmp_imm_s(IntCC::Equal, blk, (blocks - 1) as i64);
                fx.if_else(last, |fx| body(fx, rest), |fx| body(fx, r));
            }
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::Geometry;

    /// A 2-D geometry of one channel whose rows are `input` long.
    fn rows(input: usize, kernel: usize, stride: usize, pad: (usize, usize)) -> Geometry {
        let output = (input + pad.0 + pad.1 - kernel) / stride + 1;
        Geometry {
            batch: 1,
            cin: 1,
            cout: 1,
            groups: 1,
            input: [1, input, 1],
            output: [1, output, 1],
            kernel: [1, kernel, 1],
            stride: [1, stride, 1],
            dilation: [1; 3],
            pad: [0, pad.0, 0],
        }
    }

    #[test]
    fn the_interior_rows_read_every_tap() {
        assert_eq!(rows(8, 3, 1, (0, 0)).interior(1), 0..6);
        assert_eq!(rows(8, 3, 1, (1, 1)).interior(1), 1..7);
        // The last of 5 outputs at stride 2 reads rows 7 to 9, past the end.
        assert_eq!(rows(8, 3, 2, (1, 2)).interior(1), 1..4);
        assert!(rows(2, 3, 1, (1, 1)).interior(1).is_empty());
    }
}
