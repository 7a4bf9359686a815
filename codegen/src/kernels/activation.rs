//! Costly activations (SiLU, sigmoid, tanh, GELU, ...: see [`is_cheap_activation`])
//! over spans of vectors, in a function of their own that kernels call: the direct
//! convolution and the depthwise ones on each output row they finish (still in L1),
//! the matrix product on the rows of each cache block it finishes, the Winograd
//! output transform on each row of tiles, elementwise ops on each contiguous run.
//!
//! Each is a chain of 15-30 dependent operations per vector. Emitted inline, the
//! optimizer places every chain's operations together, and the CPU's scheduler fills
//! with the later operations of a few chains, all waiting on their predecessors.
//! Here [`Fx::interleaved`] runs four chains side by side, and the function is
//! compiled as written so that the interleaving stays. Measured on Zen 5 against the
//! inline code: sigmoid over 96x112x112 floats 0.574 -> 0.482 ms (7.1 cycles a
//! vector, about the FMA pipes' time for its 9 FMAs, multiply and clamp), exp and tanh
//! 10-13% faster (2 chains: 5-10%; 8 spill: slower than inline); a 1x1 SiLU
//! convolution 16 -> 96 at 112x112 1.42 -> 1.28 ms; EfficientNet-B0 18.5 -> 17.2 ms,
//! its depthwise convolutions 2.82 -> 2.25 ms.

use cnnc_ir::op::Activation;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32X4, I64};
use cranelift_codegen::ir::{
    AbiParam, ExtFuncData, ExternalName, InstBuilder, Signature, UserExternalName, Value,
};
use cranelift_codegen::isa::CallConv;
use cranelift_module::{FuncId, FuncOrDataId, Module};

use super::KernelCx;
use super::elementwise::is_cheap_activation;
use crate::CodegenError;
use crate::compile::Order;
use crate::emit::Fx;

/// Vectors whose chains run side by side: with four, each chain's few live values
/// and the constants fit the 16 vector registers.
const CHAINS: usize = 4;

/// `fn(src, dst, count)`: `a` applied to the `count` vectors at `src`, written to
/// `dst` (the same address, or a span that does not overlap it).
fn span_signature(call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.extend([AbiParam::new(I64); 3]);
    sig
}

/// The span function of `a` (see [`span_signature`]), emitted on first use and
/// shared by every kernel of the model after that.
pub fn span_function(cx: &mut KernelCx, a: Activation) -> Result<FuncId, CodegenError> {
    let name = format!("{}_act_{}", cx.prefix, symbol(a));
    if let Some(FuncOrDataId::Func(id)) = cx.module.get_name(&name) {
        return Ok(id);
    }
    let sig = span_signature(cx.module.isa().default_call_conv());
    cx.define(&name, sig, Order::AsWritten, |fx, params| {
        let [src, dst, count] = params else {
            unreachable!("three parameters")
        };
        span_body(fx, a, (*src, *dst, *count));
        Ok(())
    })
}

/// `a` on `count` vectors from `src` to `dst`: groups of [`CHAINS`], then the rest.
fn span_body(fx: &mut Fx, a: Activation, (src, dst, count): (Value, Value, Value)) {
    // `n` vectors from `at` vectors on, their chains side by side.
    let run = |fx: &mut Fx, at: Value, n: usize| {
        let (s, d) = (fx.addr(src, at, 16, 0), fx.addr(dst, at, 16, 0));
        let xs: Vec<_> = (0..n).map(|k| fx.load(F32X4, s, 16 * k as i32)).collect();
        let ys = match a {
            // SiLU (`Fx::silu`) divides x by its chain's result: x is loaded again for the
            // division instead of living through the chains, where four of them spill.
            Activation::Silu => {
                let denominators = fx.interleaved(n, |fx, k| fx.one_plus_exp_neg(xs[k]));
                let divide = |(k, d)| {
                    let x = fx.load(F32X4, s, 16 * k as i32);
                    fx.silu_of(x, d)
                };
                denominators.into_iter().enumerate().map(divide).collect()
            }
            _ => fx.interleaved(n, |fx, k| fx.activate(a, xs[k], None)),
        };
        for (k, y) in ys.into_iter().enumerate() {
            fx.store(y, d, 16 * k as i32);
        }
    };
    let groups = fx.b.ins().ushr_imm_u(count, CHAINS.ilog2() as i64);
    let zero = fx.iconst(0);
    fx.for_range(zero, groups, |fx, g| {
        let at = fx.b.ins().imul_imm_s(g, CHAINS as i64);
        run(fx, at, CHAINS);
    });
    // The last one to three vectors side by side too: rows of 5 to 7 vectors (a
    // depthwise convolution at 7x7, a matrix product's tiles) are common.
    let done = fx.b.ins().imul_imm_s(groups, CHAINS as i64);
    let rest = fx.b.ins().isub(count, done);
    for n in 1..CHAINS {
        let is = fx.b.ins().icmp_imm_s(IntCC::Equal, rest, n as i64);
        fx.if_then(is, |fx| run(fx, done, n));
    }
}

/// The span function of `activation` when it is costly (see [`is_cheap_activation`]),
/// for a kernel to run on what it stores instead of applying it inline.
pub fn costly_span(
    cx: &mut KernelCx,
    activation: Option<Activation>,
) -> Result<Option<FuncId>, CodegenError> {
    match activation {
        Some(a) if !is_cheap_activation(a) => Ok(Some(span_function(cx, a)?)),
        _ => Ok(None),
    }
}

/// A symbol-safe spelling of `a`, its parameters included (floats print exactly).
fn symbol(a: Activation) -> String {
    format!("{a:?}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl Fx<'_> {
    /// Calls span function `f` (see [`span_function`]) on the `count` vectors at `src`,
    /// writing `dst`.
    pub fn call_span(&mut self, f: FuncId, src: Value, dst: Value, count: Value) {
        let sig = span_signature(self.b.func.signature.call_conv);
        let signature = self.b.import_signature(sig);
        let name = self
            .b
            .func
            .declare_imported_user_function(UserExternalName::new(0, f.as_u32()));
        let callee = self.b.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature,
            // Defined in the same module: a direct, PC-relative call.
            colocated: true,
            patchable: false,
        });
        self.b.ins().call(callee, &[src, dst, count]);
    }
}
