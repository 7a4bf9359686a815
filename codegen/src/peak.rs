//! The host's 128-bit FMA peak, measured with code from our own generator: a loop of
//! [`CHAINS`] independent `f32x4` `fma` chains held in registers. It is the per-core
//! ceiling of the kernels (the same ISA settings, the same instruction), so benchmarks
//! report their throughput as a fraction of it.

use std::time::{Duration, Instant};

use cranelift_codegen::Context;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32X4, I64};
use cranelift_codegen::ir::{AbiParam, BlockArg, InstBuilder, UserFuncName};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module};

use crate::target::{self, Features, Linking};
use crate::{CodegenError, emit};

/// Independent accumulators: enough to cover FMA latency times pipes (4 x 2 on
/// current x86 cores) with room to spare, few enough to stay in the 16 vector
/// registers beside the two operands.
pub const CHAINS: usize = 12;

/// Flops of one loop iteration: every chain does 4 lanes of multiply and add.
const FLOPS_PER_ITER: u64 = CHAINS as u64 * 4 * 2;

/// `fn(iters, acc, coef)`: `acc` holds `CHAINS` f32x4 accumulators, updated in place
/// `iters` times as `acc = acc * coef[0..4] + coef[4..8]`.
type PeakFn = unsafe extern "C" fn(i64, *mut f32, *const f32);

/// A JIT-compiled FMA loop.
pub struct FmaPeak {
    run: PeakFn,
    module: Option<JITModule>,
}

impl FmaPeak {
    /// Compiles the loop for the host, with the ISA the kernels use.
    pub fn new() -> Result<Self, CodegenError> {
        Ok(Self::compile(false)?.0)
    }

    /// Compiles, with the disassembly when `disasm`.
    fn compile(disasm: bool) -> Result<(Self, Option<String>), CodegenError> {
        let isa = target::isa(None, None, Linking::Jit)?;
        if !Features::of(&*isa).fma {
            return Err(CodegenError::Unsupported(
                "the host has no fused multiply-add".into(),
            ));
        }
        let mut module = JITModule::new(JITBuilder::with_isa(
            isa,
            cranelift_module::default_libcall_names(),
        ));
        let mut ctx = module.make_context();
        let ptr = module.target_config().pointer_type();
        ctx.func.signature.params.extend([
            AbiParam::new(I64),
            AbiParam::new(ptr),
            AbiParam::new(ptr),
        ]);
        let id = module.declare_function("fma_peak", Linkage::Local, &ctx.func.signature)?;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        build(
            &mut ctx,
            &mut FunctionBuilderContext::new(),
            module.target_config(),
        );
        ctx.set_disasm(disasm);
        module.define_function(id, &mut ctx)?;
        let listing = disasm
            .then(|| ctx.compiled_code().and_then(|c| c.vcode.clone()))
            .flatten();
        module.finalize_definitions()?;
        let code = module.get_finalized_function(id);
        // SAFETY: `fma_peak` was declared with the signature of `PeakFn`.
        let run = unsafe { std::mem::transmute::<*const u8, PeakFn>(code) };
        Ok((
            FmaPeak {
                run,
                module: Some(module),
            },
            listing,
        ))
    }

    /// Runs `iters` iterations: each accumulator becomes `acc * mul + add`, `iters`
    /// times over.
    pub fn run(&self, iters: u64, acc: &mut [[f32; 4]; CHAINS], mul: f32, add: f32) {
        let coef = [mul, mul, mul, mul, add, add, add, add];
        // SAFETY: `acc` holds the CHAINS x 4 floats and `coef` the 8 the code reads.
        unsafe {
            (self.run)(
                iters.min(i64::MAX as u64) as i64,
                acc.as_mut_ptr().cast(),
                coef.as_ptr(),
            )
        };
    }

    /// Seconds of the fastest of `runs` runs of `iters` iterations.
    fn best_seconds(&self, iters: u64, runs: usize) -> f64 {
        // `acc * 0.5 + 1` converges to 2: no overflow, no subnormals, any length.
        let mut acc = [[0.0; 4]; CHAINS];
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                self.run(iters, &mut acc, 0.5, 1.0);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// The measured peak in GFLOP/s on the calling thread: the best of 21 runs of
    /// about 5 ms each, after growing the run to that length (which also warms up the
    /// core's clock). Short runs, many of them: on a shared machine some fall between
    /// the time slices of other processes.
    pub fn gflops(&self) -> f64 {
        let mut iters = 1 << 14;
        while self.best_seconds(iters, 1) < Duration::from_millis(5).as_secs_f64() {
            iters *= 2;
        }
        (iters * FLOPS_PER_ITER) as f64 / self.best_seconds(iters, 21) / 1e9
    }
}

impl Drop for FmaPeak {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `run` goes with `self`, so the code can no longer be called.
            unsafe { module.free_memory() };
        }
    }
}

/// The loop: load the accumulators and coefficients, `fma` every chain once per
/// iteration, store the accumulators back (so no chain is dead code).
fn build(ctx: &mut Context, fctx: &mut FunctionBuilderContext, config: TargetFrontendConfig) {
    let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = b.create_block();
    let body = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.append_block_param(body, I64);
    for _ in 0..CHAINS {
        b.append_block_param(body, F32X4);
        b.append_block_param(exit, F32X4);
    }

    b.switch_to_block(entry);
    let &[iters, acc, coef] = b.block_params(entry) else {
        unreachable!("three parameters were declared")
    };
    let flags = emit::mem();
    let mul = b.ins().load(F32X4, flags, coef, 0);
    let add = b.ins().load(F32X4, flags, coef, 16);
    let init: Vec<BlockArg> = (0..CHAINS)
        .map(|i| BlockArg::Value(b.ins().load(F32X4, flags, acc, 16 * i as i32)))
        .collect();
    let any = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, iters, 0);
    let mut into_body = vec![BlockArg::Value(iters)];
    into_body.extend(&init);
    b.ins().brif(any, body, &into_body, exit, &init);

    b.switch_to_block(body);
    let params = b.block_params(body).to_vec();
    let left = b.ins().iadd_imm_s(params[0], -1);
    let next: Vec<BlockArg> = params[1..]
        .iter()
        .map(|&a| BlockArg::Value(b.ins().fma(a, mul, add)))
        .collect();
    let mut again = vec![BlockArg::Value(left)];
    again.extend(&next);
    b.ins().brif(left, body, &again, exit, &next);

    b.switch_to_block(exit);
    for (i, &v) in b.block_params(exit).to_vec().iter().enumerate() {
        b.ins().store(flags, v, acc, 16 * i as i32);
    }
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(config);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_every_chain() {
        let peak = FmaPeak::new().unwrap();
        let mut acc: [[f32; 4]; CHAINS] = std::array::from_fn(|i| [i as f32; 4]);
        // Exact in f32: small integers plus quarters.
        peak.run(1000, &mut acc, 1.0, 0.25);
        for (i, a) in acc.iter().enumerate() {
            assert_eq!(*a, [i as f32 + 250.0; 4], "chain {i}");
        }
        // No iterations leaves the accumulators as they were.
        peak.run(0, &mut acc, 3.0, 1.0);
        assert_eq!(acc[1], [251.0; 4]);
    }

    #[test]
    fn measures_a_finite_peak() {
        let g = FmaPeak::new().unwrap().gflops();
        assert!(g.is_finite() && g > 0.1, "{g} GFLOP/s");
    }

    /// The loop body must be the chains' FMAs on registers plus the counter and the
    /// branch: no spills, no reloads of the coefficients.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn loop_is_register_fmas() {
        let (_, asm) = FmaPeak::compile(true).unwrap();
        let asm = asm.unwrap();
        let body: Vec<&str> = asm
            .split("block")
            .find(|b| b.contains("vfmadd"))
            .unwrap()
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let fmas: Vec<&&str> = body.iter().filter(|l| l.starts_with("vfmadd")).collect();
        assert_eq!(fmas.len(), CHAINS, "{asm}");
        assert!(fmas.iter().all(|l| !l.contains('(')), "{asm}");
        // Decrement, test, branch.
        assert!(body.len() <= CHAINS + 3, "{asm}");
    }
}
