//! Winograd's input and output transforms (the matrix products between them are a
//! grouped pointwise convolution, see `cnnc_passes`' `winograd` pass). On a blocked
//! tensor a vector holds one channel block, on a plain one a scalar one channel; the
//! code is the same with that element.
//!
//! A tile is transformed in two passes of the matrix, over its columns and then over
//! its rows, through a small stack buffer (the whole `t x t` tile would not fit the
//! registers). The transform matrices are constants: zero entries cost nothing, ±1 an
//! add. Padding costs no branch per element: the tiles that read padding are emitted
//! one by one with their valid rows and columns known (the left and right tiles of a
//! row, every tile of the top and bottom rows that reach padding), the interior
//! tiles of a row by a loop.

use cnnc_ir::op::Winograd;
use cnnc_ir::winograd::Transform;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I64};
use cranelift_codegen::ir::{InstBuilder, StackSlot, StackSlotData, StackSlotKind, Type, Value};

use super::conv::epilogue_args;
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

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

impl Fx<'_> {
    /// `y = L x` for a `rows x x.len()` matrix `L` of constants, `None` for a value
    /// known to be zero.
    fn apply(
        &mut self,
        ty: Type,
        l: &[f64],
        rows: usize,
        x: &[Option<Value>],
    ) -> Vec<Option<Value>> {
        let cols = x.len();
        (0..rows)
            .map(|r| {
                let mut acc: Option<Value> = None;
                for (c, xc) in x.iter().enumerate() {
                    let (k, Some(xc)) = (l[r * cols + c], *xc) else {
                        continue;
                    };
                    acc = Some(match (acc, k) {
                        (_, 0.0) => continue,
                        (None, 1.0) => xc,
                        (None, -1.0) => self.b.ins().fneg(xc),
                        (None, k) => {
                            let k = self.fconst(ty, k as f32);
                            self.b.ins().fmul(xc, k)
                        }
                        (Some(a), 1.0) => self.b.ins().fadd(a, xc),
                        (Some(a), -1.0) => self.b.ins().fsub(a, xc),
                        (Some(a), k) => {
                            let k = self.fconst(ty, k as f32);
                            self.fma(xc, k, a)
                        }
                    });
                }
                acc
            })
            .collect()
    }

    /// `L X Lᵀ` of a `x.len() x x.len()` tile `x` (row-major, `None` for zeros): the
    /// columns through `L` into `slot`, then its rows. Returns `rows x rows` values.
    fn sandwich(
        &mut self,
        ty: Type,
        slot: StackSlot,
        l: &[f64],
        rows: usize,
        x: &[Option<Value>],
        cols: usize,
    ) -> Vec<Option<Value>> {
        let size = ty.bytes() as i32;
        let mut written = vec![false; rows * cols];
        for j in 0..cols {
            let col: Vec<Option<Value>> = (0..cols).map(|i| x[i * cols + j]).collect();
            for (i, v) in self.apply(ty, l, rows, &col).into_iter().enumerate() {
                if let Some(v) = v {
                    self.b
                        .ins()
                        .stack_store(I64, v, slot, (i * cols + j) as i32 * size);
                    written[i * cols + j] = true;
                }
            }
        }
        let mut out = Vec::with_capacity(rows * rows);
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
            out.extend(self.apply(ty, l, rows, &row));
        }
        out
    }

    fn tile_slot(&mut self, ty: Type, t: usize) -> StackSlot {
        self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            ty.bytes() * (t * t) as u32,
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

/// The input transform: one unit of work per image, channel group and row of tiles.
pub fn input(cx: &mut KernelCx, w: &Winograd) -> Result<(), CodegenError> {
    let f = transform_of(w)?;
    let xs = cx.inputs[0].ty.shape.clone();
    let blocked = cx.inputs[0].ty.layout != cnnc_ir::Layout::Plain;
    let (ty, es, groups) = element(blocked, xs[1]);
    let (n, h, wd) = (xs[0], xs[2], xs[3]);
    let (t, m) = (f.t, f.m);
    let [th_n, tw_n] = w.tiles();
    let tiles = th_n * tw_n;
    let [pad_r, pad_c] = w.pads.map(|p| p as isize);
    // Tiles reaching padding: whole rows above and below, single tiles left and right.
    let border = |k: usize, pad: isize, len: usize| {
        let first = (k * m) as isize - pad;
        first < 0 || first + t as isize > len as isize
    };
    let border_rows: Vec<usize> = (0..th_n).filter(|&k| border(k, pad_r, h)).collect();
    let border_cols: Vec<usize> = (0..tw_n).filter(|&k| border(k, pad_c, wd)).collect();
    let inner_cols = (0..tw_n)
        .filter(|k| !border_cols.contains(k))
        .collect::<Vec<_>>();
    let (lo, hi) = match (inner_cols.first(), inner_cols.last()) {
        (Some(&a), Some(&b)) if b + 1 - a == inner_cols.len() => (a, b + 1),
        _ => (0, 0),
    };
    let loose: Vec<usize> = (0..tw_n).filter(|&k| k < lo || k >= hi).collect();
    let units = n * groups * th_n;
    let (x, v) = (cx.input(0), cx.output(0));
    let tasks = tasks_for(units, units * tw_n * t * t * 8);
    let plane = (h * wd) as i64 * es;
    let xi_stride = (groups * tiles) as i64 * es;
    let row_bytes = wd as i64 * es;
    cx.launch(tasks, |fx, task, ptrs| {
        let slot = fx.tile_slot(ty, t);
        let (u0, u1) = fx.task_range(task, units, tasks);
        fx.for_range(u0, u1, |fx, u| {
            let th = fx.b.ins().urem_imm_u(u, th_n as i64);
            let q = fx.b.ins().udiv_imm_u(u, th_n as i64);
            let g = fx.b.ins().urem_imm_u(q, groups as i64);
            let img = fx.b.ins().udiv_imm_u(q, groups as i64);
            let xg = fx.addr(ptrs[x], q, plane, 0);
            // The group's transformed tiles: image `img`, position 0, group `g`.
            let vi = fx.b.ins().imul_imm_s(img, (t * t * groups) as i64);
            let vi = fx.b.ins().iadd(vi, g);
            let vg = fx.addr(ptrs[v], vi, tiles as i64 * es, 0);
            let v_row = fx.addr(vg, th, (tw_n as i64) * es, 0);
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
                let tile =
                    |fx: &mut Fx, first_col: Value, valid: &dyn Fn(usize) -> bool, at: Value| {
                        let d: Vec<Option<Value>> = (0..t * t)
                            .map(|k| {
                                let (i, j) = (k / t, k % t);
                                match rows[i] {
                                    Some(r) if valid(j) => {
                                        let a = fx.b.ins().iadd(r, first_col);
                                        Some(fx.load(ty, a, (j as i64 * es) as i32))
                                    }
                                    _ => None,
                                }
                            })
                            .collect();
                        let out = fx.sandwich(ty, slot, f.bt, t, &d, t);
                        for (xi, val) in out.into_iter().enumerate() {
                            let val = val.unwrap_or_else(|| fx.fconst(ty, 0.0));
                            let a = fx.add(at, xi as i64 * xi_stride);
                            fx.store(val, a, 0);
                        }
                    };
                if hi > lo {
                    let (a, b) = (fx.iconst(lo as i64), fx.iconst(hi as i64));
                    fx.for_range(a, b, |fx, tw| {
                        let first = fx.b.ins().imul_imm_s(tw, m as i64 * es);
                        let first = fx.add(first, -(pad_c as i64) * es);
                        let at = fx.addr(v_row, tw, es, 0);
                        tile(fx, first, &|_| true, at);
                    });
                }
                for &tw in &loose {
                    let c0 = (tw * m) as isize - pad_c;
                    let first = fx.iconst(c0 as i64 * es);
                    let at = fx.add(v_row, tw as i64 * es);
                    tile(
                        fx,
                        first,
                        &|j| (0..wd as isize).contains(&(c0 + j as isize)),
                        at,
                    );
                }
            };
            dispatch(fx, th, &border_rows, &mut row);
        });
        Ok(())
    })
}

/// The output transform with bias and epilogue: one unit of work per image, channel
/// group and row of tiles.
pub fn output(cx: &mut KernelCx, w: &Winograd) -> Result<(), CodegenError> {
    let f = transform_of(w)?;
    let ys = cx.outputs[0].1.shape.clone();
    let blocked = cx.outputs[0].1.layout != cnnc_ir::Layout::Plain;
    let (ty, es, groups) = element(blocked, ys[1]);
    let (n, oh, ow) = (ys[0], ys[2], ys[3]);
    let (t, m) = (f.t, f.m);
    let [th_n, tw_n] = w.tiles();
    let tiles = th_n * tw_n;
    let (p, y, bias) = (cx.input(0), cx.output(0), cx.input(1));
    let extra = epilogue_args(cx, &w.epilogue, ys[1])?;
    let activation = w.epilogue.activation;
    let units = n * groups * th_n;
    let tasks = tasks_for(units, units * tw_n * t * t * 8);
    let plane = (oh * ow) as i64 * es;
    let xi_stride = (groups * tiles) as i64 * es;
    let row_bytes = ow as i64 * es;
    let partial_row = (oh % m != 0).then_some(th_n - 1);
    let full_cols = ow / m;
    cx.launch(tasks, |fx, task, ptrs| {
        let slot = fx.tile_slot(ty, t);
        let (u0, u1) = fx.task_range(task, units, tasks);
        fx.for_range(u0, u1, |fx, u| {
            let th = fx.b.ins().urem_imm_u(u, th_n as i64);
            let q = fx.b.ins().udiv_imm_u(u, th_n as i64);
            let g = fx.b.ins().urem_imm_u(q, groups as i64);
            let img = fx.b.ins().udiv_imm_u(q, groups as i64);
            let pi = fx.b.ins().imul_imm_s(img, (t * t * groups) as i64);
            let pi = fx.b.ins().iadd(pi, g);
            let pg = fx.addr(ptrs[p], pi, tiles as i64 * es, 0);
            let p_row = fx.addr(pg, th, tw_n as i64 * es, 0);
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
                // The tile at `tw` (first output column `col` bytes in), `cols` valid
                // columns.
                let tile = |fx: &mut Fx, tw: Value, col: Value, cols: usize| {
                    let at = fx.addr(p_row, tw, es, 0);
                    let d: Vec<Option<Value>> = (0..t * t)
                        .map(|xi| {
                            let a = fx.add(at, xi as i64 * xi_stride);
                            Some(fx.load(ty, a, 0))
                        })
                        .collect();
                    let out = fx.sandwich(ty, slot, f.at, m, &d, t);
                    let ya = fx.b.ins().iadd(y_row, col);
                    let ra = r_row.map(|r| fx.b.ins().iadd(r, col));
                    for i in 0..rows {
                        for j in 0..cols {
                            let off = (i as i64 * row_bytes + j as i64 * es) as i32;
                            let o = out[i * m + j].expect("every output reads the products");
                            let mut v = fx.b.ins().fadd(o, b);
                            if let Some(r) = ra {
                                let r = fx.load(ty, r, off);
                                v = fx.b.ins().fadd(v, r);
                            }
                            if let Some(a) = activation {
                                v = fx.activate(a, v, slope);
                            }
                            fx.store(v, ya, off);
                        }
                    }
                };
                if full_cols > 0 {
                    fx.for_n(full_cols as u64, |fx, tw| {
                        let col = fx.b.ins().imul_imm_s(tw, m as i64 * es);
                        tile(fx, tw, col, m);
                    });
                }
                if full_cols < tw_n {
                    let tw = fx.iconst(full_cols as i64);
                    let col = fx.iconst((full_cols * m) as i64 * es);
                    tile(fx, tw, col, ow - full_cols * m);
                }
            };
            dispatch(fx, th, partial_row.as_slice(), &mut row);
        });
        Ok(())
    })
}
