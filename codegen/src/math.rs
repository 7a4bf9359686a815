//! Transcendental functions emitted inline as polynomial and rational approximations,
//! for `f32` and `f32x4` alike, so compiled models never call libm. Each is accurate
//! to a few float32 ulps (see `tests/math.rs`); none branches.
//!
//! exp and log follow Cephes' `expf`/`logf` (range reduction by powers of two, a
//! polynomial on the reduced interval: Cephes' own for log, a shorter fit for exp);
//! tanh and erf are the rational approximations Eigen uses for float.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4};
use cranelift_codegen::ir::{InstBuilder, Type, Value};

use crate::emit::{Fx, bitcast_flags};

/// 1.5 * 2^23: added to a float of magnitude below 2^22, rounds it to an integer.
const MAGIC: f32 = 12_582_912.0;
/// ln 2 in two parts (Cody-Waite): `n * LN2_HI` is exact for the `n` of an f32 exponent.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `e^r = 1 + r (1 + r q(r))` on `|r| <= ln(2) / 2`: the coefficients of `q`, lowest
/// first. A degree-4 fit (Lawson's weighted least squares towards the minimax of the
/// relative error of `e^r`, on Chebyshev nodes, rounded to f32) is within 3.7e-9 of
/// `e^r`, 0.06 ulp: float32 rounding, not the polynomial, makes the error. Cephes'
/// degree-5 `q` is a thousand times closer for two more multiply-adds.
const EXP_COEFFS: [f32; 5] = [
    0.499_999_94,
    0.166_665_21,
    4.166_839e-2,
    8.368_745e-3,
    1.381_454e-3,
];

/// The integer type of the same shape as a float lane type.
fn int_of(ty: Type) -> Type {
    if ty == F32 { I32 } else { I32X4 }
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
            self.b.ins().bitcast(F32X4, bitcast_flags(), m)
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

    /// `x` limited to `[lo, hi]`; NaN stays NaN. Compares and selects, which x86 does
    /// in one `maxps` and one `minps`: the NaN-exact lowering of fmax/fmin is eight
    /// instructions each.
    pub fn clamp(&mut self, x: Value, lo: f32, hi: f32) -> Value {
        let ty = self.ty(x);
        let (lo, hi) = (self.fconst(ty, lo), self.fconst(ty, hi));
        let below = self.fcmp(FloatCC::LessThan, x, lo);
        let x = self.sel(below, lo, x);
        let above = self.fcmp(FloatCC::LessThan, hi, x);
        self.sel(above, hi, x)
    }

    /// `max(m, x)`, NaN where either is: a running maximum that keeps NaN. For vectors a
    /// compare and select, which x86 does in one `maxps` (keeping `m` where either is
    /// NaN), with the lanes where `x` is NaN then set to all ones (a NaN): three
    /// instructions, where the NaN-exact lowering of `fmax` takes eight.
    pub fn max_nan(&mut self, m: Value, x: Value) -> Value {
        if self.ty(m) == F32 {
            return self.b.ins().fmax(m, x);
        }
        let bigger = self.fcmp(FloatCC::LessThan, m, x);
        let max = self.sel(bigger, x, m);
        let nan = self.fcmp(FloatCC::Unordered, x, x);
        self.b.ins().bor(max, nan)
    }

    /// 2^n for an integer lane value `n` in [-126, 127], as a float.
    fn pow2i(&mut self, n: Value, ty: Type) -> Value {
        let ity = int_of(ty);
        let bias = self.iconst_like(ity, 127);
        let e = self.b.ins().iadd(n, bias);
        let e = self.b.ins().ishl_imm_u(e, 23);
        self.b.ins().bitcast(ty, bitcast_flags(), e)
    }

    /// e^x. Inputs beyond ±104 saturate to the limits (inf, 0); NaN stays NaN.
    pub fn exp(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        let x = self.clamp(x, -104.0, 89.0);
        // n = round(x / ln 2), by adding and subtracting 1.5 * 2^23; the sum's low bits
        // are n as an integer (its ulp is 1).
        let log2e = self.fconst(ty, std::f32::consts::LOG2_E);
        let magic = self.fconst(ty, MAGIC);
        let t = self.fma(x, log2e, magic);
        let n = self.b.ins().fsub(t, magic);
        // r = x - n ln 2 in two steps (Cody-Waite) so r keeps its low bits.
        let neg_n = self.b.ins().fneg(n);
        let ln2_hi = self.fconst(ty, LN2_HI);
        let ln2_lo = self.fconst(ty, LN2_LO);
        let r = self.fma(neg_n, ln2_hi, x);
        let r = self.fma(neg_n, ln2_lo, r);
        let q = self.horner(r, &EXP_COEFFS);
        let one = self.fconst(ty, 1.0);
        let a = self.fma(q, r, one);
        let p = self.fma(a, r, one);
        // Scale by 2^n as 2^(n/2) * 2^(n - n/2), so results near overflow and in the
        // subnormal range are exact powers of two away from p.
        let ity = int_of(ty);
        let t = self.b.ins().bitcast(ity, bitcast_flags(), t);
        let magic = self.iconst_like(ity, MAGIC.to_bits() as i32);
        let n = self.b.ins().isub(t, magic);
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
        let xi = self.b.ins().bitcast(ity, bitcast_flags(), x);
        let e = self.b.ins().sshr_imm_u(xi, 23);
        let bias = self.iconst_like(ity, 126);
        let e = self.b.ins().isub(e, bias);
        let mask = self.iconst_like(ity, 0x007f_ffff);
        let half_bits = self.iconst_like(ity, 0x3f00_0000);
        let mi = self.b.ins().band(xi, mask);
        let mi = self.b.ins().bor(mi, half_bits);
        let m = self.b.ins().bitcast(ty, bitcast_flags(), mi);
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
                3.333_333e-1,
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
        let c1 = self.fconst(ty, LN2_LO);
        let y = self.fma(e, c1, y);
        let minus_half = self.fconst(ty, -0.5);
        let y = self.fma(z, minus_half, y);
        let r = self.b.ins().fadd(m, y);
        let c2 = self.fconst(ty, LN2_HI);
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
        let r = self.sel(is_inf, inf, r);
        let is_nan = self.fcmp(FloatCC::Unordered, x0, x0);
        self.sel(is_nan, x0, r)
    }

    /// tanh: an odd rational function for |x| < 0.625 (`x` itself where tiny), and
    /// `1 - 2 / (e^2|x| + 1)` with the sign of x beyond, where the result is near ±1
    /// and the rational form loses ulps.
    pub fn tanh(&mut self, x0: Value) -> Value {
        let ty = self.ty(x0);
        let x = self.clamp(x0, -0.625, 0.625);
        let x2 = self.b.ins().fmul(x, x);
        let p = self.horner(
            x2,
            &[
                4.893_524_6e-3,
                6.372_619_3e-4,
                1.485_722_4e-5,
                5.122_297e-8,
                -8.604_672e-11,
                2.000_188e-13,
                -2.760_768_5e-16,
            ],
        );
        let p = self.b.ins().fmul(x, p);
        let q = self.horner(
            x2,
            &[4.893_525e-3, 2.268_434_6e-3, 1.185_347e-4, 1.198_258_4e-6],
        );
        let near = self.b.ins().fdiv(p, q);
        let ax = self.b.ins().fabs(x0);
        let tiny = self.fconst(ty, 4e-4);
        let is_tiny = self.fcmp(FloatCC::LessThan, ax, tiny);
        let near = self.sel(is_tiny, x0, near);
        let two = self.fconst(ty, 2.0);
        let ax2 = self.b.ins().fmul(ax, two);
        let e = self.exp(ax2);
        let one = self.fconst(ty, 1.0);
        let d = self.b.ins().fadd(e, one);
        let q = self.b.ins().fdiv(two, d);
        let far = self.b.ins().fsub(one, q);
        let far = self.with_sign_of(far, x0);
        let limit = self.fconst(ty, 0.625);
        let is_near = self.fcmp(FloatCC::LessThan, ax, limit);
        self.sel(is_near, near, far)
    }

    /// `mag` (non-negative) with the sign bit of `sign`.
    fn with_sign_of(&mut self, mag: Value, sign: Value) -> Value {
        let ty = self.ty(mag);
        let ity = int_of(ty);
        let s = self.b.ins().bitcast(ity, bitcast_flags(), sign);
        let m = self.iconst_like(ity, i32::MIN);
        let s = self.b.ins().band(s, m);
        let v = self.b.ins().bitcast(ity, bitcast_flags(), mag);
        let v = self.b.ins().bor(v, s);
        self.b.ins().bitcast(ty, bitcast_flags(), v)
    }

    /// erf, as an odd rational function, ±1 where that is the float32 result.
    pub fn erf(&mut self, x0: Value) -> Value {
        let ty = self.ty(x0);
        let x = self.clamp(x0, -4.0, 4.0);
        let x2 = self.b.ins().fmul(x, x);
        let p = self.horner(
            x2,
            &[
                -1.609_603_3e-2,
                -2.954_6e-3,
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
        let r = self.b.ins().fdiv(p, q);
        // Beyond |x| = 3.83 erf rounds to ±1 in float32; the rational form stops short.
        let ax = self.b.ins().fabs(x0);
        let edge = self.fconst(ty, 3.832);
        let saturated = self.fcmp(FloatCC::GreaterThanOrEqual, ax, edge);
        let one = self.fconst(ty, 1.0);
        let one = self.with_sign_of(one, x0);
        self.sel(saturated, one, r)
    }

    /// erfc(x) = 1 - erf(x), accurate in relative terms in the tail, where
    /// `1 - erf(x)` cancels: the Chebyshev fit `t exp(-z^2 + P(t))`, `t = 1/(1 + z/2)`,
    /// `z = |x|` (fractional error below 1.2e-7), and `2 - erfc(-x)` for negative x.
    pub fn erfc(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        // erfc(10) is below the smallest float32; clamping keeps inf out of the split.
        let ax = self.b.ins().fabs(x);
        let ten = self.fconst(ty, 10.0);
        let z = self.b.ins().fmin(ax, ten);
        let half = self.fconst(ty, 0.5);
        let one = self.fconst(ty, 1.0);
        let d = self.fma(z, half, one);
        let t = self.b.ins().fdiv(one, d);
        let p = self.horner(
            t,
            &[
                -1.265_512_2,
                1.000_023_7,
                0.374_091_96,
                0.096_784_18,
                -0.186_288_06,
                0.278_868_07,
                -1.135_204,
                1.488_515_9,
                -0.822_152_23,
                0.170_872_77,
            ],
        );
        // exp(-z^2) exactly rounded matters in the tail: split z^2 = zz + err exactly
        // (z into 12-bit halves, Dekker) and take exp(-zz) * exp(P(t) - err).
        let ity = int_of(ty);
        let mask = self.iconst_like(ity, -4096);
        let zi = self.b.ins().bitcast(ity, bitcast_flags(), z);
        let hi = self.b.ins().band(zi, mask);
        let hi = self.b.ins().bitcast(ty, bitcast_flags(), hi);
        let lo = self.b.ins().fsub(z, hi);
        let zz = self.b.ins().fmul(z, z);
        let hh = self.b.ins().fmul(hi, hi);
        let err = self.b.ins().fsub(hh, zz);
        let hl = self.b.ins().fmul(hi, lo);
        let err = self.b.ins().fadd(err, hl);
        let err = self.b.ins().fadd(err, hl);
        let ll = self.b.ins().fmul(lo, lo);
        let err = self.b.ins().fadd(err, ll);
        let nzz = self.b.ins().fneg(zz);
        let e1 = self.exp(nzz);
        let small = self.b.ins().fsub(p, err);
        let e2 = self.exp(small);
        let e = self.b.ins().fmul(e1, e2);
        let r = self.b.ins().fmul(t, e);
        // From 10 on erfc is below every float32: exactly 0 (so inf * erfc is NaN, as
        // with an exact erfc).
        let zero_r = self.fconst(ty, 0.0);
        let gone = self.fcmp(FloatCC::GreaterThanOrEqual, ax, ten);
        let r = self.sel(gone, zero_r, r);
        let two = self.fconst(ty, 2.0);
        let flipped = self.b.ins().fsub(two, r);
        let zero = self.fconst(ty, 0.0);
        let negative = self.fcmp(FloatCC::LessThan, x, zero);
        self.sel(negative, flipped, r)
    }

    /// 1 / (1 + e^-x).
    pub fn sigmoid(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        let d = self.one_plus_exp_neg(x);
        let one = self.fconst(ty, 1.0);
        self.b.ins().fdiv(one, d)
    }

    /// SiLU, `x sigmoid(x)`, as `x / (1 + e^-x)`: one rounding fewer than multiplying.
    pub fn silu(&mut self, x: Value) -> Value {
        let d = self.one_plus_exp_neg(x);
        self.silu_of(x, d)
    }

    /// SiLU of `x` from its [`Fx::one_plus_exp_neg`] `d` (the span function computes
    /// `d` in chains and loads `x` again for this).
    pub(crate) fn silu_of(&mut self, x: Value, d: Value) -> Value {
        self.b.ins().fdiv(x, d)
    }

    /// `1 + e^-x`, the denominator of the logistic functions: [`Fx::exp`] of `-x`, bit
    /// for bit, in 10 fewer operations (a third of it). The negation folds into the
    /// constants (`r = -s` with the odd coefficients negated). Only `1 + e^-x` is
    /// needed, so `e^-x` below 2^-125 may be clamped there (1 absorbs either), and
    /// `e^-x` then stays a normal float: one power of two scales it, by computing `2p`
    /// (doubled coefficients, exact) times `2^(n-1)`, which overflows to inf exactly
    /// where `e^-x` does.
    pub(crate) fn one_plus_exp_neg(&mut self, x: Value) -> Value {
        let ty = self.ty(x);
        let x = self.clamp(x, -89.0, 86.5);
        // n = round(-x / ln 2) as in `exp`.
        let neg_log2e = self.fconst(ty, -std::f32::consts::LOG2_E);
        let magic = self.fconst(ty, MAGIC);
        let t = self.fma(x, neg_log2e, magic);
        let n = self.b.ins().fsub(t, magic);
        // s = x + n ln 2 = -r, r = -x - n ln 2 the reduced argument of `exp`.
        let ln2_hi = self.fconst(ty, LN2_HI);
        let ln2_lo = self.fconst(ty, LN2_LO);
        let s = self.fma(n, ln2_hi, x);
        let s = self.fma(n, ln2_lo, s);
        // 2 q(r) in s: exp's coefficients doubled (exactly), the odd ones negated.
        let coeffs: Vec<f32> = EXP_COEFFS
            .iter()
            .enumerate()
            .map(|(i, &c)| if i % 2 == 1 { -2.0 * c } else { 2.0 * c })
            .collect();
        let q = self.horner(s, &coeffs);
        // 2 e^r = 2 + s (-2 + s 2q): `exp`'s steps times -2 and 2, exactly.
        let (two, minus_two) = (self.fconst(ty, 2.0), self.fconst(ty, -2.0));
        let a = self.fma(q, s, minus_two);
        let p = self.fma(a, s, two);
        // 2^(n-1): the exponent field n - 1 + 127, from the bits of t = n + MAGIC.
        let ity = int_of(ty);
        let t = self.b.ins().bitcast(ity, bitcast_flags(), t);
        let bias = self.iconst_like(ity, MAGIC.to_bits() as i32 - 126);
        let e = self.b.ins().isub(t, bias);
        let e = self.b.ins().ishl_imm_u(e, 23);
        let scale = self.b.ins().bitcast(ty, bitcast_flags(), e);
        // 1 + 2p 2^(n-1) in one FMA: the product is exact (a normal float, or beyond the
        // largest where e^-x overflows), so its one rounding is the addition's.
        let one = self.fconst(ty, 1.0);
        self.fma(p, scale, one)
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
        let ri = self.b.ins().bitcast(ity, bitcast_flags(), r);
        let signed = self.b.ins().bxor(ri, sign_bit);
        let signed = self.b.ins().bitcast(ty, bitcast_flags(), signed);
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

#[cfg(test)]
mod tests {
    //! Accuracy in float32 ulps against f64 references, on the f32x4 and the scalar
    //! form of each function.

    use cranelift_codegen::ir::types::{F32, F32X4, I64};
    use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, Value};
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
    use cranelift_jit::{JITBuilder, JITModule};
    use cranelift_module::{Linkage, Module};

    use crate::emit::Fx;
    use crate::target::{self, Features, Linking};

    type Apply = fn(&mut Fx, Value, Value) -> Value;

    /// JIT-compiles `out[i] = f(x[i], y[i])`, once with f32x4 lanes and once with
    /// scalars, runs both and returns both results.
    fn eval2(f: Apply, xs: &[f32], ys: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let isa = target::isa(None, None, Linking::Jit).unwrap();
        let features = Features::of(&*isa);
        let mut module = JITModule::new(JITBuilder::with_isa(
            isa,
            cranelift_module::default_libcall_names(),
        ));
        let mut sig = Signature::new(module.isa().default_call_conv());
        for _ in 0..4 {
            sig.params.push(AbiParam::new(I64));
        }
        let id = module.declare_function("f", Linkage::Local, &sig).unwrap();
        let mut ctx = module.make_context();
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        let n = xs.len();
        assert_eq!(n % 4, 0);
        assert_eq!(ys.len(), n);
        let config = module.target_config();
        let mut fctx = FunctionBuilderContext::new();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let p = b.block_params(entry).to_vec();
            let mut fx = Fx { b, features };
            for (ty, size, out) in [(F32X4, 16, p[2]), (F32, 4, p[3])] {
                fx.for_n((n * 4 / size) as u64, |fx, i| {
                    let xa = fx.addr(p[0], i, size as i64, 0);
                    let ya = fx.addr(p[1], i, size as i64, 0);
                    let (x, y) = (fx.load(ty, xa, 0), fx.load(ty, ya, 0));
                    let r = f(fx, x, y);
                    let d = fx.addr(out, i, size as i64, 0);
                    fx.store(r, d, 0);
                });
            }
            fx.b.ins().return_(&[]);
            fx.b.seal_all_blocks();
            fx.b.finalize(config);
        }
        let mut queue = crate::compile::Queue::default();
        queue.push(&module, id, &mut ctx);
        queue.compile(&mut module, None).unwrap();
        module.finalize_definitions().unwrap();
        let code = module.get_finalized_function(id);
        // SAFETY: the function was declared with four pointer arguments.
        let func = unsafe {
            std::mem::transmute::<
                *const u8,
                extern "C" fn(*const f32, *const f32, *mut f32, *mut f32),
            >(code)
        };
        let (mut v, mut s) = (vec![0f32; n], vec![0f32; n]);
        func(xs.as_ptr(), ys.as_ptr(), v.as_mut_ptr(), s.as_mut_ptr());
        (v, s)
    }

    fn eval(f: Apply, xs: &[f32]) -> Vec<f32> {
        let (v, s) = eval2(f, xs, xs);
        for (i, (a, b)) in v.iter().zip(&s).enumerate() {
            let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(
                same,
                "vector and scalar forms differ at {}: {a} and {b}",
                xs[i]
            );
        }
        v
    }

    /// Distance in units in the last place of `want` rounded to f32.
    fn ulps(got: f32, want: f64) -> f64 {
        if (got.is_nan() && want.is_nan()) || got as f64 == want {
            return 0.0;
        }
        let w = (want as f32).abs();
        let ulp = if w == 0.0 {
            f32::from_bits(1)
        } else {
            f32::from_bits(w.to_bits() + 1) - w
        };
        (got as f64 - want).abs() / ulp as f64
    }

    /// Worst ulp error of `f` against `reference` over `xs`.
    fn worst(f: Apply, reference: fn(f64) -> f64, xs: &[f32]) -> f64 {
        let v = eval(f, xs);
        let (mut w, mut at) = (0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&v) {
            let e = ulps(y, reference(x as f64));
            assert!(e.is_finite(), "{x}: got {y}, want {}", reference(x as f64));
            if e > w {
                (w, at) = (e, x);
            }
        }
        eprintln!("worst {w:.2} ulps at {at}");
        w
    }

    /// `n` points spread geometrically over [lo, hi] (and their negatives), plus zero;
    /// padded to a multiple of four.
    fn sweep(lo: f64, hi: f64, n: usize, negative: bool) -> Vec<f32> {
        let mut xs: Vec<f32> = (0..n)
            .map(|i| (lo * (hi / lo).powf(i as f64 / (n - 1) as f64)) as f32)
            .collect();
        if negative {
            let neg: Vec<f32> = xs.iter().map(|x| -x).collect();
            xs.extend(neg);
        }
        xs.push(0.0);
        pad4(xs)
    }

    fn pad4(mut xs: Vec<f32>) -> Vec<f32> {
        while !xs.len().is_multiple_of(4) {
            xs.push(1.0);
        }
        xs
    }

    fn linear(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
            .collect()
    }

    #[test]
    fn exp_is_within_two_ulps() {
        let mut xs = linear(-87.0, 88.5, 40_000);
        xs.extend(sweep(1e-8, 1.0, 4000, true));
        let w = worst(|fx, x, _| fx.exp(x), f64::exp, &pad4(xs));
        assert!(w <= 2.0, "exp: {w} ulps");
        let v = eval(|fx, x, _| fx.exp(x), &[100.0, -200.0, f32::NAN, -90.0]);
        assert_eq!(v[0], f32::INFINITY);
        assert_eq!(v[1], 0.0);
        assert!(v[2].is_nan());
        assert!(
            (v[3] as f64 - (-90f64).exp()).abs() < 1e-44,
            "subnormal result {}",
            v[3]
        );
    }

    #[test]
    fn log_is_within_two_ulps() {
        let mut xs = sweep(1e-37, 1e37, 40_000, false);
        xs.extend(linear(0.5, 2.0, 8000));
        xs.retain(|&x| x > 0.0);
        let w = worst(|fx, x, _| fx.log(x), f64::ln, &pad4(xs));
        assert!(w <= 2.0, "log: {w} ulps");
        let v = eval(|fx, x, _| fx.log(x), &[0.0, -1.0, f32::INFINITY, 1e-40]);
        assert_eq!(v[0], f32::NEG_INFINITY);
        assert!(v[1].is_nan());
        assert_eq!(v[2], f32::INFINITY);
        assert!(
            ulps(v[3], (1e-40f32 as f64).ln()) <= 2.0,
            "subnormal input: {}",
            v[3]
        );
    }

    #[test]
    fn tanh_is_within_four_ulps() {
        let w = worst(
            |fx, x, _| fx.tanh(x),
            f64::tanh,
            &sweep(1e-6, 20.0, 40_000, true),
        );
        // Measured 3.9 ulps near x = 0.125 (the rational part).
        assert!(w <= 4.5, "tanh: {w} ulps");
    }

    #[test]
    fn erf_is_within_six_ulps() {
        // The worst error (5.4 ulps) is near x = 3.9, where erf is within 1e-7 of 1.
        let w = worst(
            |fx, x, _| fx.erf(x),
            libm::erf,
            &sweep(1e-6, 6.0, 40_000, true),
        );
        assert!(w <= 6.0, "erf: {w} ulps");
    }

    #[test]
    fn erfc_is_within_eight_ulps() {
        // Relative to erfc itself, down to 1e-38 in the tail.
        let mut xs = sweep(1e-6, 9.0, 40_000, false);
        xs.extend(linear(-4.0, 0.0, 4000));
        let w = worst(|fx, x, _| fx.erfc(x), libm::erfc, &pad4(xs));
        assert!(w <= 8.0, "erfc: {w} ulps");
    }

    #[test]
    fn sigmoid_is_within_four_ulps() {
        let w = worst(
            |fx, x, _| fx.sigmoid(x),
            |x| 1.0 / (1.0 + (-x).exp()),
            &sweep(1e-6, 80.0, 40_000, true),
        );
        assert!(w <= 4.0, "sigmoid: {w} ulps");
    }

    #[test]
    fn silu_is_within_four_ulps() {
        let w = worst(
            |fx, x, _| fx.silu(x),
            |x| x / (1.0 + (-x).exp()),
            &sweep(1e-6, 80.0, 40_000, true),
        );
        assert!(w <= 4.0, "silu: {w} ulps");
        let v = eval(
            |fx, x, _| fx.silu(x),
            &[f32::INFINITY, -200.0, f32::NAN, 0.0],
        );
        assert_eq!(v[0], f32::INFINITY);
        assert_eq!(v[1], 0.0);
        assert!(v[2].is_nan());
        assert_eq!(v[3], 0.0);
    }

    /// The logistic functions' shortcut for `1 + e^-x` changes no bit of `1 + exp(-x)`,
    /// across both clamps, the overflow of `e^-x`, infinities and NaN.
    #[test]
    fn logistic_denominator_is_one_plus_exp_bit_for_bit() {
        let mut xs = linear(-120.0, 120.0, 60_000);
        xs.extend(sweep(1e-9, 1.0, 4000, true));
        xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0]);
        let want = eval(
            |fx, x, _| {
                let ty = fx.ty(x);
                let nx = fx.b.ins().fneg(x);
                let e = fx.exp(nx);
                let one = fx.fconst(ty, 1.0);
                fx.b.ins().fadd(one, e)
            },
            &xs,
        );
        let got = eval(|fx, x, _| fx.one_plus_exp_neg(x), &xs);
        for ((x, g), w) in xs.iter().zip(got).zip(want) {
            let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
            assert!(same, "1 + e^-{x}: {g}, want {w}");
        }
    }

    #[test]
    fn expm1_is_within_four_ulps() {
        let w = worst(
            |fx, x, _| fx.expm1(x),
            f64::exp_m1,
            &sweep(1e-9, 80.0, 40_000, true),
        );
        assert!(w <= 4.0, "expm1: {w} ulps");
    }

    #[test]
    fn softplus_is_within_four_ulps() {
        let w = worst(
            |fx, x, _| fx.softplus(x),
            |x| x.max(0.0) + (-x.abs()).exp().ln_1p(),
            &sweep(1e-6, 90.0, 40_000, true),
        );
        assert!(w <= 4.0, "softplus: {w} ulps");
    }

    #[test]
    fn pow_follows_powf() {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for &b in &[
            0.0f32, 1e-3, 0.5, 1.0, 1.5, 2.0, 10.0, 123.0, -0.5, -2.0, -3.0,
        ] {
            for &e in &[0.0f32, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, 1.7, -0.3, 5.0, 7.25] {
                xs.push(b);
                ys.push(e);
            }
        }
        while xs.len() % 4 != 0 {
            xs.push(1.0);
            ys.push(1.0);
        }
        let (v, s) = eval2(|fx, x, y| fx.pow(x, y), &xs, &ys);
        for i in 0..xs.len() {
            let want = (xs[i] as f64).powf(ys[i] as f64);
            assert_eq!(v[i].to_bits(), s[i].to_bits());
            // e^(y ln x) in float32 carries log's error times |y ln x| into the result.
            let amplification = (ys[i] as f64 * (xs[i] as f64).abs().ln()).abs();
            let bound = 2.0
                + if amplification.is_finite() {
                    amplification
                } else {
                    0.0
                };
            let e = ulps(v[i], want);
            assert!(
                e <= bound,
                "pow({}, {}) = {}, want {want} ({e:.1} ulps > {bound:.1})",
                xs[i],
                ys[i],
                v[i]
            );
        }
    }
}
