//! Transcendental functions emitted inline as polynomial and rational approximations,
//! for `f32` and `f32x4` alike, so compiled models never call libm. Each is accurate
//! to a few float32 ulps (see `tests/math.rs`); none branches.
//!
//! exp and log follow Cephes' `expf`/`logf` (range reduction by powers of two, a
//! minimax polynomial on the reduced interval); tanh and erf are the rational
//! approximations Eigen uses for float.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value};

use crate::emit::Fx;

/// The integer type of the same shape as a float lane type.
fn int_of(ty: Type) -> Type {
    if ty == F32 { I32 } else { I32X4 }
}

fn bits() -> MemFlagsData {
    MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little)
}

impl Fx<'_> {
    fn ty(&self, v: Value) -> Type {
        self.b.func.dfg.value_type(v)
    }

    fn iconst_like(&mut self, ty: Type, v: i32) -> Value {
        let c = self.b.ins().iconst(I32, v as i64);
        if ty == I32 {
            c
        } else {
            self.b.ins().splat(I32X4, c)
        }
    }

    /// Lane mask `a <cc> b`: an i8 for scalars, an all-ones/zero f32x4 for vectors.
    pub fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        let m = self.b.ins().fcmp(cc, a, b);
        if self.ty(a) == F32 {
            m
        } else {
            self.b.ins().bitcast(F32X4, bits(), m)
        }
    }

    /// `mask ? a : b` per lane, `mask` from [`Fx::fcmp`].
    pub fn sel(&mut self, mask: Value, a: Value, b: Value) -> Value {
        if self.ty(a) == F32 {
            self.b.ins().select(mask, a, b)
        } else {
            self.b.ins().bitselect(mask, a, b)
        }
    }

    /// `c0 + x*(c1 + x*(c2 + ...))` by Horner's rule; `coeffs` from c0 upwards.
    fn horner(&mut self, x: Value, coeffs: &[f32]) -> Value {
        let ty = self.ty(x);
        let mut acc = self.fconst(ty, *coeffs.last().expect("coefficients"));
        for &c in coeffs.iter().rev().skip(1) {
            let c = self.fconst(ty, c);
            acc = self.fma(acc, x, c);
        }
        acc
    }

    fn clamp(&mut self, x: Value, lo: f32, hi: f32) -> Value {
        let ty = self.ty(x);
        let (lo, hi) = (self.fconst(ty, lo), self.fconst(ty, hi));
        let x = self.b.ins().fmax(x, lo);
        self.b.ins().fmin(x, hi)
    }

    /// 2^n for an integer lane value `n` in [-126, 127], as a float.
    fn pow2i(&mut self, n: Value, ty: Type) -> Value {
        let ity = int_of(ty);
        let bias = self.iconst_like(ity, 127);
        let e = self.b.ins().iadd(n, bias);
        let e = self.b.ins().ishl_imm_u(e, 23);
        self.b.ins().bitcast(ty, bits(), e)
    }

    /// e^x. Inputs beyond ±104 saturate to the limits (inf, 0); NaN stays NaN.
    pub fn exp(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        let x = self.clamp(x, -104.0, 89.0);
        // n = round(x / ln 2), by adding and subtracting 1.5 * 2^23.
        let log2e = self.fconst(ty, std::f32::consts::LOG2_E);
        let magic = self.fconst(ty, 12_582_912.0);
        let t = self.fma(x, log2e, magic);
        let n = self.b.ins().fsub(t, magic);
        // r = x - n ln 2 in two steps (Cody-Waite) so r keeps its low bits.
        let neg_n = self.b.ins().fneg(n);
        let ln2_hi = self.fconst(ty, 0.693_359_375);
        let ln2_lo = self.fconst(ty, -2.121_944_4e-4);
        let r = self.fma(neg_n, ln2_hi, x);
        let r = self.fma(neg_n, ln2_lo, r);
        let p = self.horner(
            r,
            &[
                5.000_000_1e-1,
                1.666_666_5e-1,
                4.166_579_6e-2,
                8.333_452e-3,
                1.398_2e-3,
                1.987_569_1e-4,
            ],
        );
        let r2 = self.b.ins().fmul(r, r);
        let one = self.fconst(ty, 1.0);
        let r1 = self.b.ins().fadd(r, one);
        let p = self.fma(p, r2, r1);
        // Scale by 2^n as 2^(n/2) * 2^(n - n/2), so results near overflow and in the
        // subnormal range are exact powers of two away from p.
        let ity = int_of(ty);
        let n = self.b.ins().fcvt_to_sint_sat(ity, n);
        let half = self.b.ins().sshr_imm_u(n, 1);
        let rest = self.b.ins().isub(n, half);
        let s1 = self.pow2i(half, ty);
        let s2 = self.pow2i(rest, ty);
        let p = self.b.ins().fmul(p, s1);
        self.b.ins().fmul(p, s2)
    }

    /// Natural logarithm: -inf at 0, NaN below 0, inf at inf.
    pub fn log(&mut self, x0: Value) -> Value {
        let ty = self.ty(x0);
        let ity = int_of(ty);
        // Subnormals: scale into the normal range first.
        let min_normal = self.fconst(ty, f32::MIN_POSITIVE);
        let tiny = self.fcmp(FloatCC::LessThan, x0, min_normal);
        let scale = self.fconst(ty, 8_388_608.0);
        let scaled = self.b.ins().fmul(x0, scale);
        let x = self.sel(tiny, scaled, x0);
        let zero = self.fconst(ty, 0.0);
        let adjust_f = self.fconst(ty, -23.0);
        let adjust = self.sel(tiny, adjust_f, zero);
        // x = m * 2^e with m in [0.5, 1).
        let xi = self.b.ins().bitcast(ity, bits(), x);
        let e = self.b.ins().sshr_imm_u(xi, 23);
        let bias = self.iconst_like(ity, 126);
        let e = self.b.ins().isub(e, bias);
        let mask = self.iconst_like(ity, 0x007f_ffff);
        let half_bits = self.iconst_like(ity, 0x3f00_0000);
        let mi = self.b.ins().band(xi, mask);
        let mi = self.b.ins().bor(mi, half_bits);
        let m = self.b.ins().bitcast(ty, bits(), mi);
        let e = self.b.ins().fcvt_from_sint(ty, e);
        let e = self.b.ins().fadd(e, adjust);
        // Move m to [sqrt(1/2), sqrt(2)) - 1.
        let sqrt_half = self.fconst(ty, std::f32::consts::FRAC_1_SQRT_2);
        let small = self.fcmp(FloatCC::LessThan, m, sqrt_half);
        let one = self.fconst(ty, 1.0);
        let e_minus = self.b.ins().fsub(e, one);
        let e = self.sel(small, e_minus, e);
        let m2 = self.b.ins().fadd(m, m);
        let m_up = self.sel(small, m2, m);
        let m = self.b.ins().fsub(m_up, one);
        let z = self.b.ins().fmul(m, m);
        let p = self.horner(
            m,
            &[
                3.333_333_1e-1,
                -2.499_999_4e-1,
                2.000_071_5e-1,
                -1.666_805_8e-1,
                1.424_932_3e-1,
                -1.242_014_1e-1,
                1.167_699_9e-1,
                -1.151_461e-1,
                7.037_683_6e-2,
            ],
        );
        let mz = self.b.ins().fmul(m, z);
        let y = self.b.ins().fmul(p, mz);
        let c1 = self.fconst(ty, -2.121_944_4e-4);
        let y = self.fma(e, c1, y);
        let minus_half = self.fconst(ty, -0.5);
        let y = self.fma(z, minus_half, y);
        let r = self.b.ins().fadd(m, y);
        let c2 = self.fconst(ty, 0.693_359_375);
        let r = self.fma(e, c2, r);
        // Special values: 0 -> -inf, negative -> NaN, inf -> inf (NaN stays NaN).
        let is_zero = self.fcmp(FloatCC::Equal, x0, zero);
        let neg_inf = self.fconst(ty, f32::NEG_INFINITY);
        let r = self.sel(is_zero, neg_inf, r);
        let is_neg = self.fcmp(FloatCC::LessThan, x0, zero);
        let nan = self.fconst(ty, f32::NAN);
        let r = self.sel(is_neg, nan, r);
        let inf = self.fconst(ty, f32::INFINITY);
        let is_inf = self.fcmp(FloatCC::Equal, x0, inf);
        self.sel(is_inf, inf, r)
    }

    /// tanh, as an odd rational function on [-7.99, 7.99] (±1 beyond); `x` itself
    /// where |x| is tiny.
    pub fn tanh(&mut self, x0: Value) -> Value {
        let ty = self.ty(x0);
        let x = self.clamp(x0, -7.998_811_7, 7.998_811_7);
        let x2 = self.b.ins().fmul(x, x);
        let p = self.horner(
            x2,
            &[
                4.893_524_6e-3,
                6.372_619_3e-4,
                1.485_722_4e-5,
                5.122_297e-8,
                -8.604_671_5e-11,
                2.000_187_9e-13,
                -2.760_768_5e-16,
            ],
        );
        let p = self.b.ins().fmul(x, p);
        let q = self.horner(
            x2,
            &[4.893_525e-3, 2.268_434_6e-3, 1.185_347e-4, 1.198_258_4e-6],
        );
        let r = self.b.ins().fdiv(p, q);
        let ax = self.b.ins().fabs(x0);
        let tiny = self.fconst(ty, 4e-4);
        let is_tiny = self.fcmp(FloatCC::LessThan, ax, tiny);
        self.sel(is_tiny, x0, r)
    }

    /// erf, as an odd rational function on [-4, 4] (±1 beyond).
    pub fn erf(&mut self, x: Value) -> Value {
        let x = self.clamp(x, -4.0, 4.0);
        let x2 = self.b.ins().fmul(x, x);
        let p = self.horner(
            x2,
            &[
                -1.609_603_3e-2,
                -2.954_599_8e-3,
                -7.349_906_3e-4,
                -5.692_506_4e-5,
                -2.101_024e-6,
                2.770_681_4e-8,
                -2.726_142_3e-10,
            ],
        );
        let p = self.b.ins().fmul(x, p);
        let q = self.horner(
            x2,
            &[
                -1.426_473_9e-2,
                -7.373_329e-3,
                -1.682_827e-3,
                -2.133_740_6e-4,
                -1.456_607_2e-5,
            ],
        );
        self.b.ins().fdiv(p, q)
    }

    /// 1 / (1 + e^-x).
    pub fn sigmoid(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        let nx = self.b.ins().fneg(x);
        let e = self.exp(nx);
        let one = self.fconst(ty, 1.0);
        let d = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(one, d)
    }

    /// e^x - 1, accurate near 0 (Kahan: (u - 1) * x / log u with u = e^x).
    pub fn expm1(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        let u = self.exp(x);
        let one = self.fconst(ty, 1.0);
        let um1 = self.b.ins().fsub(u, one);
        let lu = self.log(u);
        let t = self.b.ins().fmul(um1, x);
        let near = self.b.ins().fdiv(t, lu);
        // u == 1 (x below half an ulp of 1): expm1(x) = x.
        let is_one = self.fcmp(FloatCC::Equal, u, one);
        let near = self.sel(is_one, x, near);
        let ax = self.b.ins().fabs(x);
        let half = self.fconst(ty, 0.5);
        let small = self.fcmp(FloatCC::LessThan, ax, half);
        self.sel(small, near, um1)
    }

    /// log(1 + t) for t >= 0, accurate for small t (log(u) * t / (u - 1), u = 1 + t).
    pub fn log1p_pos(&mut self, t: Value) -> Value {
        let ty = self.ty(t);
        let one = self.fconst(ty, 1.0);
        let u = self.b.ins().fadd(one, t);
        let lu = self.log(u);
        let um1 = self.b.ins().fsub(u, one);
        let num = self.b.ins().fmul(lu, t);
        let r = self.b.ins().fdiv(num, um1);
        let exact = self.fcmp(FloatCC::Equal, u, one);
        self.sel(exact, t, r)
    }

    /// ln(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
    pub fn softplus(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        let ax = self.b.ins().fabs(x);
        let nax = self.b.ins().fneg(ax);
        let e = self.exp(nax);
        let l = self.log1p_pos(e);
        let zero = self.fconst(ty, 0.0);
        let m = self.b.ins().fmax(x, zero);
        self.b.ins().fadd(m, l)
    }

    /// x^y for lanes of any sign, as C's powf for finite inputs: negative bases need
    /// an integral exponent (else NaN), y = 0 gives 1.
    pub fn pow(&mut self, x: Value, y: Value) -> Value {
        let ty = self.ty(x);
        let ity = int_of(ty);
        let ax = self.b.ins().fabs(x);
        let l = self.log(ax);
        let yl = self.b.ins().fmul(y, l);
        let r = self.exp(yl);
        // Integral exponent test and parity through a round trip to integer.
        let yi = self.b.ins().fcvt_to_sint_sat(ity, y);
        let yr = self.b.ins().fcvt_from_sint(ty, yi);
        let integral = self.fcmp(FloatCC::Equal, yr, y);
        let one_i = self.iconst_like(ity, 1);
        let odd_bit = self.b.ins().band(yi, one_i);
        let sign_bit = self.b.ins().ishl_imm_u(odd_bit, 31);
        let ri = self.b.ins().bitcast(ity, bits(), r);
        let signed = self.b.ins().bxor(ri, sign_bit);
        let signed = self.b.ins().bitcast(ty, bits(), signed);
        let nan = self.fconst(ty, f32::NAN);
        let neg_result = self.sel(integral, signed, nan);
        let zero = self.fconst(ty, 0.0);
        let negative = self.fcmp(FloatCC::LessThan, x, zero);
        let r = self.sel(negative, neg_result, r);
        let one = self.fconst(ty, 1.0);
        let y_zero = self.fcmp(FloatCC::Equal, y, zero);
        let r = self.sel(y_zero, one, r);
        let x_one = self.fcmp(FloatCC::Equal, x, one);
        self.sel(x_one, one, r)
    }
}
