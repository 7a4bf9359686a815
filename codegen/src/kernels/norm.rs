//! BatchNormalization (a per-channel scale and shift), InstanceNormalization and LRN.

use cnnc_ir::Layout;
use cnnc_ir::op::{Activation, Epilogue, Lrn};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I8X16};
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES, bitcast_flags};

impl Fx<'_> {
    /// `dst[i] = activation((src[i] - mean) * k + b)` for `n` floats (`mean` 0 when
    /// absent).
    /// Subtracting the mean first keeps results near `b` exact where `x * k` and
    /// `mean * k` nearly cancel.
    fn scale_shift(
        &mut self,
        src: Value,
        dst: Value,
        n: usize,
        mean: Option<Value>,
        (k, b): (Value, Value),
        activation: Option<Activation>,
    ) {
        let (kv, bv) = (self.b.ins().splat(F32X4, k), self.b.ins().splat(F32X4, b));
        let mv = mean.map(|m| self.b.ins().splat(F32X4, m));
        self.for_n((n / LANES) as u64, |fx, i| {
            let s = fx.addr(src, i, 16, 0);
            let d = fx.addr(dst, i, 16, 0);
            let mut x = fx.load(F32X4, s, 0);
            if let Some(m) = mv {
                x = fx.b.ins().fsub(x, m);
            }
            let mut y = fx.fma(x, kv, bv);
            if let Some(a) = activation {
                y = fx.activate(a, y, None);
            }
            fx.store(y, d, 0);
        });
        for j in n / LANES * LANES..n {
            let mut x = self.load(F32, src, (4 * j) as i32);
            if let Some(m) = mean {
                x = self.b.ins().fsub(x, m);
            }
            let mut y = self.fma(x, k, b);
            if let Some(a) = activation {
                y = self.activate(a, y, None);
            }
            self.store(y, dst, (4 * j) as i32);
        }
    }
}

pub fn batch_norm(cx: &mut KernelCx, epsilon: f32) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let c = xs[1];
    let plane: usize = xs[2..].iter().product();
    let planes = xs[0] * c;
    // Constant statistics fold into one scale and shift per channel, computed in f64.
    let folded = (1..5)
        .map(|i| {
            cx.inputs[i]
                .constant
                .map(|t| t.view::<f32>().map(|v| v.to_vec()))
        })
        .collect::<Option<Result<Vec<_>, _>>>();
    let params = match folded {
        Some(p) => {
            let p = p?;
            let (scale, bias, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
            let k: Vec<f64> = (0..c)
                .map(|i| scale[i] as f64 / (var[i] as f64 + epsilon as f64).sqrt())
                .collect();
            let mut table: Vec<f32> = k.iter().map(|&k| k as f32).collect();
            table.extend((0..c).map(|i| (bias[i] as f64 - mean[i] as f64 * k[i]) as f32));
            Err(cx.table(table))
        }
        None => Ok((1..5).map(|i| cx.input(i)).collect::<Vec<_>>()),
    };
    let (x, y) = (cx.input(0), cx.output(0));
    let tasks = tasks_for(planes, planes * plane);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, p| {
            let ch = fx.b.ins().urem_imm_u(p, c as i64);
            let (mean, k, b) = match &params {
                Err(table) => {
                    let ka = fx.addr(ptrs[*table], ch, 4, 0);
                    let k = fx.load(F32, ka, 0);
                    let b = fx.load(F32, ka, (4 * c) as i32);
                    (None, k, b)
                }
                Ok(args) => {
                    let load = |fx: &mut Fx, k: usize| {
                        let at = fx.addr(ptrs[args[k]], ch, 4, 0);
                        fx.load(F32, at, 0)
                    };
                    let (scale, bias, mean, var) =
                        (load(fx, 0), load(fx, 1), load(fx, 2), load(fx, 3));
                    let eps = fx.f32(epsilon);
                    let v = fx.b.ins().fadd(var, eps);
                    let sd = fx.b.ins().sqrt(v);
                    let k = fx.b.ins().fdiv(scale, sd);
                    (Some(mean), k, bias)
                }
            };
            let src = fx.addr(ptrs[x], p, 4 * plane as i64, 0);
            let dst = fx.addr(ptrs[y], p, 4 * plane as i64, 0);
            fx.scale_shift(src, dst, plane, mean, (k, b), None);
        });
        Ok(())
    })
}

pub fn instance_norm(cx: &mut KernelCx, epsilon: f32) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let c = xs[1];
    let plane: usize = xs[2..].iter().product();
    let planes = xs[0] * c;
    let (x, scale, bias, y) = (cx.input(0), cx.input(1), cx.input(2), cx.output(0));
    let tasks = tasks_for(planes, planes * plane * 3);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, p| {
            let src = fx.addr(ptrs[x], p, 4 * plane as i64, 0);
            let dst = fx.addr(ptrs[y], p, 4 * plane as i64, 0);
            let n = fx.f32(plane as f32);
            let sum = fx.reduce_plane(src, plane, false);
            let mean = fx.b.ins().fdiv(sum, n);
            // Variance as the mean squared deviation (second pass, no cancellation).
            let mv = fx.b.ins().splat(F32X4, mean);
            let zero = fx.splat_const(0.0);
            let acc = fx.for_n_carry((plane / LANES) as u64, &[zero], |fx, i, acc| {
                let at = fx.addr(src, i, 16, 0);
                let v = fx.load(F32X4, at, 0);
                let d = fx.b.ins().fsub(v, mv);
                vec![fx.fma(d, d, acc[0])]
            })[0];
            let mut ss = fx.hsum(acc);
            for j in plane / LANES * LANES..plane {
                let v = fx.load(F32, src, (4 * j) as i32);
                let d = fx.b.ins().fsub(v, mean);
                ss = fx.fma(d, d, ss);
            }
            let var = fx.b.ins().fdiv(ss, n);
            let eps = fx.f32(epsilon);
            let v = fx.b.ins().fadd(var, eps);
            let sd = fx.b.ins().sqrt(v);
            let ch = fx.b.ins().urem_imm_u(p, c as i64);
            let sa = fx.addr(ptrs[scale], ch, 4, 0);
            let s = fx.load(F32, sa, 0);
            let ba = fx.addr(ptrs[bias], ch, 4, 0);
            let b = fx.load(F32, ba, 0);
            let k = fx.b.ins().fdiv(s, sd);
            fx.scale_shift(src, dst, plane, Some(mean), (k, b), None);
        });
        Ok(())
    })
}

/// `base^(q/4)` for `q` in 1..=8, from square roots (correctly rounded) and
/// products: a few ulps like `exp(q/4 log base)`, in 2-4 operations instead of about
/// 60.
fn pow_quarters(fx: &mut Fx, base: Value, q: u32) -> Value {
    let root = fx.b.ins().sqrt(base);
    let fourth = fx.b.ins().sqrt(root);
    let mut factors = vec![base; (q / 4) as usize];
    match q % 4 {
        1 => factors.push(fourth),
        2 => factors.push(root),
        3 => factors.extend([root, fourth]),
        _ => {}
    }
    let first = factors[0];
    factors[1..]
        .iter()
        .fold(first, |acc, &f| fx.b.ins().fmul(acc, f))
}

/// `x * (bias + alpha / size * sq) ^ -beta` for the window's sum of squares `sq`.
fn lrn_of(fx: &mut Fx, l: &Lrn, ty: Type, sq: Value, x: Value) -> Value {
    let (k, bias) = (
        fx.fconst(ty, l.alpha / l.size as f32),
        fx.fconst(ty, l.bias),
    );
    let base = fx.fma(sq, k, bias);
    let quarters = Some(l.beta * 4.0)
        .filter(|q| q.fract() == 0.0 && (1.0..=8.0).contains(q))
        .map(|q| q as u32);
    if let Some(q) = quarters {
        let d = pow_quarters(fx, base, q);
        return fx.b.ins().fdiv(x, d);
    }
    let lb = fx.log(base);
    let nb = fx.fconst(ty, -l.beta);
    let e = fx.b.ins().fmul(lb, nb);
    let f = fx.exp(e);
    fx.b.ins().fmul(x, f)
}

/// LRN on channels blocked by four (NCHW4c), a vector of a block's channels per pixel.
/// The window at offset `d` of the four channels is the block `d` channels on, or for
/// `d` not a whole block, four lanes across two neighbouring blocks (one shuffle):
/// three loads and four shuffles per vector at size 5, where the plain kernel loads
/// five planes, and no reorders around it (Inception v1's LRNs sit between blocked
/// pools and convolutions). Blocks outside the tensor count as zero, and so do the
/// padding lanes of a last block the channels do not fill, which are zero: a reorder
/// writes them so, and the ops that keep a blocked layout have whole blocks. The
/// blocks whose windows stay inside skip the guards.
fn lrn_blocked(cx: &mut KernelCx, l: &Lrn) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let (c, plane): (usize, usize) = (xs[1], xs[2..].iter().product());
    let cb = c.div_ceil(LANES);
    let units = xs[0] * cb;
    let (x, y) = (cx.input(0), cx.output(0));
    let (below, above) = ((l.size - 1) / 2, (l.size - 1).div_ceil(2));
    let offsets: Vec<i64> = (-(below as i64)..=above as i64).collect();
    // Blocks the windows of a block's lanes reach, relative to it.
    let (qmin, qmax) = (
        (-(below as i64)).div_euclid(LANES as i64),
        (LANES as i64 - 1 + above as i64).div_euclid(LANES as i64),
    );
    let tasks = tasks_for(units, units * plane * LANES * l.size);
    let l = l.clone();
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, units, tasks);
        fx.for_range(lo, hi, |fx, u| {
            let b = fx.b.ins().urem_imm_u(u, cb as i64);
            let src = fx.addr(ptrs[x], u, 16 * plane as i64, 0);
            let dst = fx.addr(ptrs[y], u, 16 * plane as i64, 0);
            let body = |fx: &mut Fx, guarded: bool| {
                fx.for_n(plane as u64, |fx, i| {
                    let at = fx.addr(src, i, 16, 0);
                    let blocks: Vec<Value> = (qmin..=qmax)
                        .map(|q| {
                            let there = fx.b.ins().iadd_imm_s(at, (16 * plane) as i64 * q);
                            // The block itself is always inside.
                            if !guarded || q == 0 {
                                return fx.load(I8X16, there, 0);
                            }
                            let bq = fx.b.ins().iadd_imm_s(b, q);
                            let inside =
                                fx.b.ins()
                                    .icmp_imm_u(IntCC::UnsignedLessThan, bq, cb as i64);
                            let safe = fx.b.ins().select(inside, there, at);
                            let v = fx.load(I8X16, safe, 0);
                            let zero = fx.splat_const(0.0);
                            let zero = fx.b.ins().bitcast(I8X16, bitcast_flags(), zero);
                            fx.b.ins().select(inside, v, zero)
                        })
                        .collect();
                    let mut sq = fx.splat_const(0.0);
                    for &d in &offsets {
                        let (q, r) = (d.div_euclid(LANES as i64), d.rem_euclid(LANES as i64));
                        let k = (q - qmin) as usize;
                        let v = if r == 0 {
                            blocks[k]
                        } else {
                            let r = r as u8;
                            fx.shuffle32(blocks[k], blocks[k + 1], [r, r + 1, r + 2, r + 3])
                        };
                        let v = fx.b.ins().bitcast(F32X4, bitcast_flags(), v);
                        sq = fx.fma(v, v, sq);
                    }
                    let own = blocks[(-qmin) as usize];
                    let xv = fx.b.ins().bitcast(F32X4, bitcast_flags(), own);
                    let r = lrn_of(fx, &l, F32X4, sq, xv);
                    let da = fx.addr(dst, i, 16, 0);
                    fx.store(r, da, 0);
                });
            };
            // Blocks whose every reached block is inside skip the guards.
            let span = (qmax - qmin) as usize;
            if cb > span {
                let from = fx.b.ins().iadd_imm_s(b, qmin);
                let inside =
                    fx.b.ins()
                        .icmp_imm_u(IntCC::UnsignedLessThan, from, (cb - span) as i64);
                fx.if_else(inside, |fx| body(fx, false), |fx| body(fx, true));
            } else {
                body(fx, true);
            }
        });
        Ok(())
    })
}

/// `y = x * (bias + alpha / size * sum of x^2 over nearby channels) ^ -beta`,
/// vectorized over positions within a plane; the planes of channels whose window
/// reaches outside [0, c) guard their loads, the others do not. A `beta` of whole
/// quarters (0.75 in AlexNet, GoogLeNet and ZFNet) divides by the power from square
/// roots ([`pow_quarters`]); any other multiplies by `exp(-beta log base)`.
pub fn lrn(cx: &mut KernelCx, l: &Lrn) -> Result<(), CodegenError> {
    if cx.inputs[0].ty.layout != Layout::Plain {
        return lrn_blocked(cx, l);
    }
    let xs = cx.inputs[0].ty.shape.clone();
    let c = xs[1];
    let plane: usize = xs[2..].iter().product();
    let planes = xs[0] * c;
    let (x, y) = (cx.input(0), cx.output(0));
    let (below, above) = ((l.size - 1) / 2, (l.size - 1).div_ceil(2));
    let tasks = tasks_for(planes, planes * plane * l.size);
    let l = l.clone();
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, p| {
            let ch = fx.b.ins().urem_imm_u(p, c as i64);
            let src = fx.addr(ptrs[x], p, 4 * plane as i64, 0);
            let dst = fx.addr(ptrs[y], p, 4 * plane as i64, 0);
            // The window's channels relative to `ch`; `guarded` near the first and
            // last channel, where planes outside [0, c) contribute zero.
            let at = |fx: &mut Fx, ty, j: Value, guarded: bool| -> Value {
                let mut sum = fx.fconst(ty, 0.0);
                for dc in -(below as i64)..=(above as i64) {
                    let plane_at = fx.addr(
                        src,
                        j,
                        if ty == F32 { 4 } else { 16 },
                        4 * (dc * plane as i64),
                    );
                    let v = if guarded {
                        let cc = fx.b.ins().iadd_imm_s(ch, dc);
                        let inside = fx.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, cc, c as i64);
                        // Guard the address too: a plane outside the tensor is not read.
                        let safe = fx.b.ins().select(inside, plane_at, src);
                        let v = fx.load(ty, safe, 0);
                        let zero = fx.fconst(ty, 0.0);
                        fx.b.ins().select(inside, v, zero)
                    } else {
                        fx.load(ty, plane_at, 0)
                    };
                    sum = fx.fma(v, v, sum);
                }
                sum
            };
            let body = |fx: &mut Fx, guarded: bool| {
                fx.for_n((plane / LANES) as u64, |fx, i| {
                    let sq = at(fx, F32X4, i, guarded);
                    let xa = fx.addr(src, i, 16, 0);
                    let xv = fx.load(F32X4, xa, 0);
                    let r = lrn_of(fx, &l, F32X4, sq, xv);
                    let da = fx.addr(dst, i, 16, 0);
                    fx.store(r, da, 0);
                });
                for j in plane / LANES * LANES..plane {
                    let jv = fx.iconst(j as i64);
                    let sq = at(fx, F32, jv, guarded);
                    let xv = fx.load(F32, src, (4 * j) as i32);
                    let r = lrn_of(fx, &l, F32, sq, xv);
                    fx.store(r, dst, (4 * j) as i32);
                }
            };
            // Channels whose whole window is inside [0, c) without the guards.
            if c > below + above {
                let from = fx.b.ins().iadd_imm_s(ch, -(below as i64));
                let inside = fx.b.ins().icmp_imm_u(
                    IntCC::UnsignedLessThan,
                    from,
                    (c - below - above) as i64,
                );
                fx.if_else(inside, |fx| body(fx, false), |fx| body(fx, true));
            } else {
                body(fx, true);
            }
        });
        Ok(())
    })
}

/// `x * scale[c] + shift[c]` per channel.
/// `x * scale[c] + shift[c]` per channel, then the epilogue's activation (a cheap
/// one: see `Op::ScaleShift`).
pub fn scale_shift(cx: &mut KernelCx, e: &Epilogue) -> Result<(), CodegenError> {
    let activation = e.activation;
    if cx.inputs[0].ty.layout != Layout::Plain {
        return per_block(cx, true, activation);
    }
    let xs = cx.inputs[0].ty.shape.clone();
    let c = xs[1];
    let plane: usize = xs[2..].iter().product();
    let planes = xs[0] * c;
    let (x, scale, shift, y) = (cx.input(0), cx.input(1), cx.input(2), cx.output(0));
    let tasks = tasks_for(planes, planes * plane);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, p| {
            let ch = fx.b.ins().urem_imm_u(p, c as i64);
            let ka = fx.addr(ptrs[scale], ch, 4, 0);
            let k = fx.load(F32, ka, 0);
            let ba = fx.addr(ptrs[shift], ch, 4, 0);
            let b = fx.load(F32, ba, 0);
            let src = fx.addr(ptrs[x], p, 4 * plane as i64, 0);
            let dst = fx.addr(ptrs[y], p, 4 * plane as i64, 0);
            fx.scale_shift(src, dst, plane, None, (k, b), activation);
        });
        Ok(())
    })
}

/// On blocked tensors: per image and channel block, `x * scale + shift` with the
/// block's vectors of the plain `[C]` scale and shift (`affine`), or `x * gate` with
/// the block's vector of the blocked `[N, C, 1...]` gate, which is stored like a plain
/// `[N, C]` (one pixel of whole blocks).
fn per_block(
    cx: &mut KernelCx,
    affine: bool,
    activation: Option<Activation>,
) -> Result<(), CodegenError> {
    let xs = cx.inputs[0].ty.shape.clone();
    let plane: usize = xs[2..].iter().product();
    let blocks = xs[0] * xs[1] / LANES;
    let channel_blocks = xs[1] / LANES;
    let (x, p1, y) = (cx.input(0), cx.input(1), cx.output(0));
    let p2 = affine.then(|| cx.input(2));
    let tasks = tasks_for(blocks, blocks * plane * LANES);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, blocks, tasks);
        fx.for_range(lo, hi, |fx, nb| {
            let (k, b) = if affine {
                let cb = fx.b.ins().urem_imm_u(nb, channel_blocks as i64);
                let ka = fx.addr(ptrs[p1], cb, 16, 0);
                let ba = fx.addr(ptrs[p2.expect("affine")], cb, 16, 0);
                (fx.load(F32X4, ka, 0), Some(fx.load(F32X4, ba, 0)))
            } else {
                let ga = fx.addr(ptrs[p1], nb, 16, 0);
                (fx.load(F32X4, ga, 0), None)
            };
            let src = fx.addr(ptrs[x], nb, 16 * plane as i64, 0);
            let dst = fx.addr(ptrs[y], nb, 16 * plane as i64, 0);
            fx.for_n(plane as u64, |fx, i| {
                let s = fx.addr(src, i, 16, 0);
                let v = fx.load(F32X4, s, 0);
                let mut r = match b {
                    Some(b) => fx.fma(v, k, b),
                    None => fx.b.ins().fmul(v, k),
                };
                if let Some(a) = activation {
                    r = fx.activate(a, r, None);
                }
                let d = fx.addr(dst, i, 16, 0);
                fx.store(r, d, 0);
            });
        });
        Ok(())
    })
}

/// `x[n, c, ...] * gate[n, c]`: one multiplier per plane.
pub fn channel_scale(cx: &mut KernelCx) -> Result<(), CodegenError> {
    if cx.inputs[0].ty.layout != Layout::Plain {
        return per_block(cx, false, None);
    }
    let xs = cx.inputs[0].ty.shape.clone();
    let plane: usize = xs[2..].iter().product();
    let planes = xs[0] * xs[1];
    let (x, gate, y) = (cx.input(0), cx.input(1), cx.output(0));
    let tasks = tasks_for(planes, planes * plane);
    cx.launch(tasks, |fx, task, ptrs| {
        let (lo, hi) = fx.task_range(task, planes, tasks);
        fx.for_range(lo, hi, |fx, p| {
            let ga = fx.addr(ptrs[gate], p, 4, 0);
            let g = fx.load(F32, ga, 0);
            let gv = fx.b.ins().splat(F32X4, g);
            let src = fx.addr(ptrs[x], p, 4 * plane as i64, 0);
            let dst = fx.addr(ptrs[y], p, 4 * plane as i64, 0);
            fx.for_n((plane / LANES) as u64, |fx, i| {
                let s = fx.addr(src, i, 16, 0);
                let v = fx.load(F32X4, s, 0);
                let r = fx.b.ins().fmul(v, gv);
                let d = fx.addr(dst, i, 16, 0);
                fx.store(r, d, 0);
            });
            for j in plane / LANES * LANES..plane {
                let v = fx.load(F32, src, (4 * j) as i32);
                let r = fx.b.ins().fmul(v, g);
                fx.store(r, dst, (4 * j) as i32);
            }
        });
        Ok(())
    })
}
