//! Elementwise ops with numpy broadcasting: activations and math (unary), arithmetic,
//! comparisons, Where and Cast.
//!
//! The iteration space is coalesced so the innermost loop is as long as possible;
//! when every operand is float32 and walks the inner dim contiguously (or holds one
//! value along it) the inner loop runs four lanes at a time, unrolled, with a scalar
//! tail. Boolean operands (comparison results) take the scalar path.

use cnnc_ir::op::{Activation, Binary, Unary};
use cnnc_ir::{DType, Op, Scalar};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, I8, I32};
use cranelift_codegen::ir::{InstBuilder, Type, Value};
use cranelift_module::FuncId;

use super::activation::span_function;
use super::nest::Nest;
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::{Fx, LANES};

/// The operation, with what is known about constant operands.
#[derive(Clone, Copy)]
enum Elem {
    Unary(Unary),
    /// A costly unary op, run over contiguous vectors by its span function (see
    /// [`super::activation`]).
    Costly(Unary, FuncId),
    Binary(Binary),
    /// `x ^ c` for a constant scalar exponent.
    PowConst(f32),
    Where,
    Cast(DType),
}

fn unsupported(what: String) -> CodegenError {
    CodegenError::Unsupported(what)
}

/// Whether activation `a` is a few operations on at most two constants, cheap enough
/// to apply to a register tile's accumulators in place. The others (SiLU, sigmoid,
/// tanh, ...) take a dozen constants: applied to a tile of accumulators in one block,
/// their constants are shared by every accumulator and live beside them, and the
/// allocator spills accumulators, even in the tile's main loop.
pub fn is_cheap_activation(a: Activation) -> bool {
    match a {
        Activation::PRelu => true,
        Activation::Silu => false,
        Activation::Unary(u) => matches!(
            u,
            Unary::Relu
                | Unary::LeakyRelu { .. }
                | Unary::HardSigmoid { .. }
                | Unary::Clip { .. }
                | Unary::Abs
                | Unary::Neg
        ),
    }
}

impl Fx<'_> {
    /// A unary activation or math function on an f32 or f32x4 lane value.
    pub fn unary(&mut self, u: Unary, x: Value) -> Value {
        let ty = self.b.func.dfg.value_type(x);
        match u {
            // Compares and selects, not fmax/fmin, whose NaN-exact x86 lowering is
            // eight instructions; NaN compares false and passes through.
            Unary::Relu => {
                let z = self.fconst(ty, 0.0);
                let neg = self.fcmp(FloatCC::LessThan, x, z);
                self.sel(neg, z, x)
            }
            Unary::LeakyRelu { alpha } => {
                let a = self.fconst(ty, alpha);
                let ax = self.b.ins().fmul(x, a);
                let z = self.fconst(ty, 0.0);
                let neg = self.fcmp(FloatCC::LessThan, x, z);
                self.sel(neg, ax, x)
            }
            Unary::Elu { alpha } => {
                let e = self.expm1(x);
                let a = self.fconst(ty, alpha);
                let ae = self.b.ins().fmul(e, a);
                let z = self.fconst(ty, 0.0);
                let neg = self.fcmp(FloatCC::LessThan, x, z);
                self.sel(neg, ae, x)
            }
            Unary::Selu { alpha, gamma } => {
                let e = self.expm1(x);
                let a = self.fconst(ty, alpha);
                let ae = self.b.ins().fmul(e, a);
                let z = self.fconst(ty, 0.0);
                let pos = self.fcmp(FloatCC::GreaterThan, x, z);
                let y = self.sel(pos, x, ae);
                let g = self.fconst(ty, gamma);
                self.b.ins().fmul(y, g)
            }
            Unary::Sigmoid => self.sigmoid(x),
            Unary::HardSigmoid { alpha, beta } => {
                let (a, b) = (self.fconst(ty, alpha), self.fconst(ty, beta));
                let y = self.fma(x, a, b);
                self.clamp(y, 0.0, 1.0)
            }
            Unary::HardSwish => {
                let (a, b) = (self.fconst(ty, 1.0 / 6.0), self.fconst(ty, 0.5));
                let y = self.fma(x, a, b);
                let y = self.clamp(y, 0.0, 1.0);
                self.b.ins().fmul(x, y)
            }
            Unary::Tanh => self.tanh(x),
            Unary::Softplus => self.softplus(x),
            Unary::Softsign => {
                let a = self.b.ins().fabs(x);
                let one = self.fconst(ty, 1.0);
                let d = self.b.ins().fadd(a, one);
                self.b.ins().fdiv(x, d)
            }
            Unary::Mish => {
                let s = self.softplus(x);
                let t = self.tanh(s);
                self.b.ins().fmul(x, t)
            }
            // x * Phi(x) through erfc and a sigmoid, so the negative side (where
            // 1 + erf and 1 + tanh cancel) keeps its relative accuracy.
            Unary::Gelu { tanh: false } => {
                let k = self.fconst(ty, -std::f32::consts::FRAC_1_SQRT_2);
                let s = self.b.ins().fmul(x, k);
                let e = self.erfc(s);
                let half = self.fconst(ty, 0.5);
                let hx = self.b.ins().fmul(x, half);
                self.b.ins().fmul(hx, e)
            }
            Unary::Gelu { tanh: true } => {
                // 0.5 (1 + tanh(u)) = sigmoid(2u).
                let c = self.fconst(ty, 0.044_715);
                let x2 = self.b.ins().fmul(x, x);
                let x3 = self.b.ins().fmul(x2, x);
                let inner = self.fma(x3, c, x);
                let k = self.fconst(ty, 2.0 * (2.0f64 / std::f64::consts::PI).sqrt() as f32);
                let s = self.b.ins().fmul(inner, k);
                let p = self.sigmoid(s);
                self.b.ins().fmul(x, p)
            }
            Unary::Erf => self.erf(x),
            Unary::Exp => self.exp(x),
            Unary::Sqrt => self.b.ins().sqrt(x),
            Unary::Abs => self.b.ins().fabs(x),
            Unary::Neg => self.b.ins().fneg(x),
            Unary::Clip { min, max } => {
                let (lo, hi) = (self.fconst(ty, min), self.fconst(ty, max));
                let below = self.fcmp(FloatCC::LessThan, x, lo);
                let y = self.sel(below, lo, x);
                let above = self.fcmp(FloatCC::GreaterThan, y, hi);
                self.sel(above, hi, y)
            }
        }
    }

    /// A fused activation on lane values; `slope` is PRelu's (splatted for vectors).
    pub fn activate(&mut self, a: Activation, y: Value, slope: Option<Value>) -> Value {
        match a {
            Activation::Unary(u) => self.unary(u, y),
            Activation::PRelu => self.binary(Binary::PRelu, y, slope.expect("prelu has a slope")),
            Activation::Silu => self.silu(y),
        }
    }

    /// A float32 binary op on lane values.
    pub fn binary(&mut self, op: Binary, a: Value, b: Value) -> Value {
        match op {
            Binary::Add => self.b.ins().fadd(a, b),
            Binary::Sub => self.b.ins().fsub(a, b),
            Binary::Mul => self.b.ins().fmul(a, b),
            Binary::Div => self.b.ins().fdiv(a, b),
            Binary::Pow => self.pow(a, b),
            Binary::Max => self.b.ins().fmax(a, b),
            Binary::Min => self.b.ins().fmin(a, b),
            Binary::PRelu => {
                let ty = self.b.func.dfg.value_type(a);
                let z = self.fconst(ty, 0.0);
                let neg = self.fcmp(FloatCC::LessThan, a, z);
                let p = self.b.ins().fmul(a, b);
                self.sel(neg, p, a)
            }
            Binary::Equal | Binary::Less | Binary::Greater => {
                unreachable!("comparisons are scalar")
            }
        }
    }

    /// `x ^ c` for a constant exponent: exact products for small integers, `sqrt` for
    /// one half, the general formula otherwise.
    fn pow_const(&mut self, x: Value, c: f32) -> Value {
        let ty = self.b.func.dfg.value_type(x);
        if c == 0.5 {
            return self.b.ins().sqrt(x);
        }
        if c == c.trunc() && c.abs() <= 16.0 && c != 0.0 {
            // Square-and-multiply on |c|, then a reciprocal for negative exponents.
            let mut n = c.abs() as u32;
            let mut base = x;
            let mut acc: Option<Value> = None;
            while n > 0 {
                if n & 1 == 1 {
                    acc = Some(match acc {
                        None => base,
                        Some(a) => self.b.ins().fmul(a, base),
                    });
                }
                n >>= 1;
                if n > 0 {
                    base = self.b.ins().fmul(base, base);
                }
            }
            let p = acc.expect("non-zero exponent");
            if c > 0.0 {
                return p;
            }
            let one = self.fconst(ty, 1.0);
            return self.b.ins().fdiv(one, p);
        }
        let y = self.fconst(ty, c);
        self.pow(x, y)
    }
}

/// Applies `e` to float32 lane values (scalar or vector).
fn apply_f32(fx: &mut Fx, e: Elem, v: &[Value]) -> Value {
    match e {
        Elem::Unary(u) | Elem::Costly(u, _) => fx.unary(u, v[0]),
        Elem::Binary(b) => fx.binary(b, v[0], v[1]),
        Elem::PowConst(c) => fx.pow_const(v[0], c),
        Elem::Cast(_) => v[0],
        Elem::Where => unreachable!("where has a bool operand"),
    }
}

fn lane_type(d: DType) -> Type {
    if d == DType::Bool { I8 } else { F32 }
}

/// Applies `e` to scalars of any supported type (f32 as F32, bool as I8 0/1).
fn apply_scalar(fx: &mut Fx, e: Elem, v: &[Value], types: &[DType]) -> Value {
    match e {
        Elem::Binary(b @ (Binary::Equal | Binary::Less | Binary::Greater)) => {
            if types[0] == DType::Bool {
                fx.b.ins().icmp(IntCC::Equal, v[0], v[1])
            } else {
                let cc = match b {
                    Binary::Equal => FloatCC::Equal,
                    Binary::Less => FloatCC::LessThan,
                    _ => FloatCC::GreaterThan,
                };
                fx.b.ins().fcmp(cc, v[0], v[1])
            }
        }
        Elem::Where => {
            let c = fx.b.ins().icmp_imm_s(IntCC::NotEqual, v[0], 0);
            fx.b.ins().select(c, v[1], v[2])
        }
        Elem::Cast(to) => match (types[0], to) {
            (DType::F32, DType::Bool) => {
                let z = fx.f32(0.0);
                fx.b.ins().fcmp(FloatCC::NotEqual, v[0], z)
            }
            (DType::Bool, DType::F32) => {
                let w = fx.b.ins().uextend(I32, v[0]);
                fx.b.ins().fcvt_from_uint(F32, w)
            }
            _ => v[0],
        },
        _ => apply_f32(fx, e, v),
    }
}

pub fn emit(cx: &mut KernelCx, op: &Op) -> Result<(), CodegenError> {
    let out_ty = cx.outputs[0].1.clone();
    let in_types: Vec<DType> = cx.inputs.iter().map(|o| o.ty.dtype).collect();
    for &d in in_types.iter().chain([&out_ty.dtype]) {
        if !matches!(d, DType::F32 | DType::Bool) {
            return Err(unsupported(format!(
                "{} on {d} data at run time",
                op.name()
            )));
        }
    }
    let mut elem = match op {
        Op::Unary(u) if !is_cheap_activation(Activation::Unary(*u)) => {
            Elem::Costly(*u, span_function(cx, Activation::Unary(*u))?)
        }
        Op::Unary(u) => Elem::Unary(*u),
        Op::Binary(b) => Elem::Binary(*b),
        Op::Where => Elem::Where,
        Op::Cast { to } => Elem::Cast(*to),
        _ => unreachable!("dispatched"),
    };
    let mut n_in = cx.inputs.len();
    // A constant scalar exponent specializes Pow and is not read at run time.
    if let Elem::Binary(Binary::Pow) = elem
        && let Some(Scalar::F32(c)) = cx.inputs[1]
            .constant
            .filter(|t| t.numel() == 1)
            .and_then(|t| t.get(0))
    {
        elem = Elem::PowConst(c);
        n_in = 1;
    }
    let shapes: Vec<Vec<usize>> = cx.inputs[..n_in]
        .iter()
        .map(|o| o.ty.shape.clone())
        .collect();
    let shape_refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
    let nest = Nest::broadcast(&out_ty.shape, &shape_refs);
    let out = cx.output(0);
    let ins: Vec<usize> = (0..n_in).map(|i| cx.input(i)).collect();
    let all_f32 = in_types[..n_in].iter().all(|&d| d == DType::F32) && out_ty.dtype == DType::F32;
    let inner = nest.dims.len() - 1;
    let vector = all_f32
        && nest.strides[1..]
            .iter()
            .all(|s| s[inner] == 0 || s[inner] == 1);
    let mut types = vec![out_ty.dtype];
    types.extend(&in_types[..n_in]);
    let outer_units = if nest.dims.len() > 1 {
        nest.dims[0]
    } else {
        nest.dims[0] / 64
    };
    let tasks = tasks_for(outer_units, nest.total());
    cx.launch(tasks, |fx, task, ptrs| {
        let mut args = vec![ptrs[out]];
        args.extend(ins.iter().map(|&k| ptrs[k]));
        let zero = fx.iconst(0);
        let base = vec![zero; args.len()];
        if nest.dims.len() == 1 {
            // One contiguous run: tasks split it in multiples of the vector width.
            let n = nest.dims[0];
            let (lo, hi) = if tasks == 1 {
                (fx.iconst(0), fx.iconst(n as i64))
            } else {
                let chunks = n / LANES;
                let (lo, hi) = fx.task_range(task, chunks, tasks);
                let lo = fx.b.ins().imul_imm_s(lo, LANES as i64);
                let hi = fx.b.ins().imul_imm_s(hi, LANES as i64);
                // The last task also takes the remainder.
                let last =
                    fx.b.ins()
                        .icmp_imm_s(IntCC::Equal, task, (tasks - 1) as i64);
                let end = fx.iconst(n as i64);
                let hi = fx.b.ins().select(last, end, hi);
                (lo, hi)
            };
            inner_loop(
                fx,
                elem,
                &args,
                &base,
                &nest.strides,
                0,
                lo,
                hi,
                vector,
                &types,
            );
            return Ok(());
        }
        let outer = (tasks > 1).then(|| fx.task_range(task, nest.dims[0], tasks));
        let n = nest.dims[inner];
        let strides = nest.strides.clone();
        fx.for_nest(
            &nest.dims[..inner],
            &strides,
            &base,
            outer,
            &mut |fx, offs| {
                let lo = fx.iconst(0);
                let hi = fx.iconst(n as i64);
                inner_loop(
                    fx, elem, &args, offs, &strides, inner, lo, hi, vector, &types,
                );
            },
        );
        Ok(())
    })
}

/// The innermost loop over `lo..hi` of dim `d`; `offs` are the operands' element
/// offsets at index 0 of this dim.
#[allow(clippy::too_many_arguments)]
fn inner_loop(
    fx: &mut Fx,
    e: Elem,
    args: &[Value],
    offs: &[Value],
    strides: &[Vec<isize>],
    d: usize,
    lo: Value,
    hi: Value,
    vector: bool,
    types: &[DType],
) {
    let sizes: Vec<i64> = types.iter().map(|t| t.size() as i64).collect();
    // Address of operand k at index i of the inner dim.
    let addr = |fx: &mut Fx, k: usize, i: Value| {
        let idx = match strides[k][d] {
            0 => offs[k],
            1 => fx.b.ins().iadd(offs[k], i),
            s => {
                let m = fx.b.ins().imul_imm_s(i, s as i64);
                fx.b.ins().iadd(offs[k], m)
            }
        };
        fx.addr(args[k], idx, sizes[k], 0)
    };
    let scalar_at = |fx: &mut Fx, i: Value| {
        let vals: Vec<Value> = (1..args.len())
            .map(|k| {
                let a = addr(fx, k, i);
                fx.load(lane_type(types[k]), a, 0)
            })
            .collect();
        let r = apply_scalar(fx, e, &vals, &types[1..]);
        let a = addr(fx, 0, i);
        fx.store(r, a, 0);
    };
    if !vector {
        fx.for_range(lo, hi, |fx, i| scalar_at(fx, i));
        return;
    }
    if let Elem::Costly(_, span) = e
        && strides[1][d] == 1
    {
        let len = fx.b.ins().isub(hi, lo);
        let vectors = fx.b.ins().ushr_imm_u(len, LANES.ilog2() as i64);
        let (src, dst) = (addr(fx, 1, lo), addr(fx, 0, lo));
        fx.call_span(span, src, dst, vectors);
        let done = fx.b.ins().imul_imm_s(vectors, LANES as i64);
        let done = fx.b.ins().iadd(lo, done);
        fx.for_range(done, hi, |fx, i| scalar_at(fx, i));
        return;
    }
    // Operands that hold one value along this dim are loaded and splatted once.
    let fixed: Vec<Option<Value>> = (1..args.len())
        .map(|k| {
            (strides[k][d] == 0).then(|| {
                let a = addr(fx, k, lo);
                let s = fx.load(F32, a, 0);
                fx.b.ins().splat(F32X4, s)
            })
        })
        .collect();
    const UNROLL: i64 = 4;
    let block = UNROLL * LANES as i64;
    let vec_at = |fx: &mut Fx, i: Value, unroll: i64| {
        for u in 0..unroll {
            let off = (u * LANES as i64 * 4) as i32;
            let vals: Vec<Value> = (1..args.len())
                .map(|k| match fixed[k - 1] {
                    Some(v) => v,
                    None => {
                        let a = addr(fx, k, i);
                        fx.load(F32X4, a, off)
                    }
                })
                .collect();
            let r = apply_f32(fx, e, &vals);
            let a = addr(fx, 0, i);
            fx.store(r, a, off);
        }
    };
    // Blocks of 16, then of 4, then single elements.
    let len = fx.b.ins().isub(hi, lo);
    let n_blocks = fx.b.ins().udiv_imm_u(len, block);
    let end_blocks = fx.b.ins().imul_imm_s(n_blocks, block);
    let end_blocks = fx.b.ins().iadd(lo, end_blocks);
    let rest = fx.b.ins().isub(hi, end_blocks);
    let n_vecs = fx.b.ins().udiv_imm_u(rest, LANES as i64);
    let end_vecs = fx.b.ins().imul_imm_s(n_vecs, LANES as i64);
    let end_vecs = fx.b.ins().iadd(end_blocks, end_vecs);
    let zero = fx.iconst(0);
    fx.for_range(zero, n_blocks, |fx, j| {
        let i = fx.b.ins().imul_imm_s(j, block);
        let i = fx.b.ins().iadd(i, lo);
        vec_at(fx, i, UNROLL);
    });
    fx.for_range(zero, n_vecs, |fx, j| {
        let i = fx.b.ins().imul_imm_s(j, LANES as i64);
        let i = fx.b.ins().iadd(i, end_blocks);
        vec_at(fx, i, 1);
    });
    fx.for_range(end_vecs, hi, |fx, i| scalar_at(fx, i));
}
