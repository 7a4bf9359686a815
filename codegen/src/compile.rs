//! Compiling the generated functions. Cranelift compiles each function on its own and
//! that is most of code generation's time, so the functions are built first, queued,
//! and compiled together on every core. They are then defined in the order they were
//! queued, so the module and any listing are the same as if compiled one by one.
//!
//! A function can also be queued *as written* ([`Order::AsWritten`]): compiled
//! without the optimizer, whose egraph re-places every pure instruction next to its
//! first use and so undoes an order chosen on purpose (see [`Fx::interleaved`]).
//!
//! [`Fx::interleaved`]: crate::emit::Fx::interleaved

use std::num::NonZero;
use std::sync::atomic::{AtomicUsize, Ordering};

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{ExternalName, Function};
use cranelift_codegen::isa::{self, OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, FinalizedRelocTarget};
use cranelift_module::{FuncId, Module, ModuleReloc};

use crate::{CodegenError, Listing, ListingKind};

/// Functions built and waiting to be compiled.
#[derive(Default)]
pub struct Queue {
    funcs: Vec<(FuncId, Function, Order)>,
}

/// How a queued function's instructions are ordered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// As the optimizer places them.
    Optimized,
    /// As the generator emitted them: compiled without the optimizer.
    AsWritten,
}

/// One function's machine code, ready to be defined in the module.
struct Compiled {
    bytes: Vec<u8>,
    alignment: u64,
    relocs: Vec<ModuleReloc>,
    /// Its CLIF or disassembly, when a listing was asked for.
    text: Option<String>,
}

impl Queue {
    /// Queues the function built in `ctx` as `id`, leaving `ctx` ready for the next.
    pub fn push(&mut self, module: &dyn Module, id: FuncId, ctx: &mut Context) {
        self.push_ordered(module, id, ctx, Order::Optimized);
    }

    /// Like [`Queue::push`], compiled with the optimizer or as written (see [`Order`]).
    pub fn push_ordered(
        &mut self,
        module: &dyn Module,
        id: FuncId,
        ctx: &mut Context,
        order: Order,
    ) {
        let func = std::mem::replace(&mut ctx.func, Function::new());
        self.funcs.push((id, func, order));
        module.clear_context(ctx);
    }

    /// Compiles every queued function and defines it in `module`, appending each one's
    /// CLIF or disassembly to `listing`. Refuses any call to a library routine:
    /// generated code must be self-contained.
    pub fn compile(
        self,
        module: &mut dyn Module,
        mut listing: Option<&mut Listing>,
    ) -> Result<(), CodegenError> {
        let kind = listing.as_ref().map(|l| l.kind);
        let results = {
            let isa = module.isa();
            let as_written = if self.funcs.iter().any(|f| f.2 == Order::AsWritten) {
                Some(unoptimized(isa)?)
            } else {
                None
            };
            let next = AtomicUsize::new(0);
            let mut results: Vec<Option<Result<Compiled, CodegenError>>> =
                (0..self.funcs.len()).map(|_| None).collect();
            let threads = std::thread::available_parallelism()
                .map_or(1, NonZero::get)
                .min(self.funcs.len());
            // Each thread takes the next function until none is left (their sizes
            // differ by a hundred times), and returns what it compiled by index.
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            let mut done = Vec::new();
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                let Some((id, func, order)) = self.funcs.get(i) else {
                                    return done;
                                };
                                let isa = match (order, &as_written) {
                                    (Order::AsWritten, Some(a)) => &**a,
                                    _ => isa,
                                };
                                done.push((i, compile_one(isa, *id, func, kind)));
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    let done = worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    for (i, r) in done {
                        results[i] = Some(r);
                    }
                }
            });
            results
        };
        for ((id, ..), result) in self.funcs.iter().zip(results) {
            let c = result.expect("every queued function was compiled")?;
            if let (Some(l), Some(text)) = (listing.as_deref_mut(), &c.text) {
                let name = module
                    .declarations()
                    .get_function_decl(*id)
                    .linkage_name(*id);
                l.text.push_str(&format!("; {name}\n{text}\n"));
            }
            module
                .define_function_bytes(*id, c.alignment, &c.bytes, &c.relocs)
                .map_err(|e| CodegenError::Cranelift(format!("{e:?}")))?;
        }
        Ok(())
    }
}

/// `isa` with the optimizer off (`opt_level=none`), every other setting the same.
fn unoptimized(isa: &dyn TargetIsa) -> Result<OwnedTargetIsa, CodegenError> {
    let error = |e: String| CodegenError::Target(format!("unoptimized {}: {e}", isa.triple()));
    let mut builder = isa::lookup(isa.triple().clone()).map_err(|e| error(e.to_string()))?;
    for v in isa.isa_flags() {
        builder
            .set(v.name, &v.value_string())
            .map_err(|e| error(e.to_string()))?;
    }
    let mut flags = settings::builder();
    for v in isa.flags().iter() {
        flags
            .set(v.name, &v.value_string())
            .map_err(|e| error(e.to_string()))?;
    }
    flags
        .set("opt_level", "none")
        .map_err(|e| error(e.to_string()))?;
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| error(e.to_string()))
}

fn compile_one(
    isa: &dyn TargetIsa,
    id: FuncId,
    func: &Function,
    listing: Option<ListingKind>,
) -> Result<Compiled, CodegenError> {
    let clif = (listing == Some(ListingKind::Clif)).then(|| func.display().to_string());
    let mut ctx = Context::for_function(func.clone());
    ctx.set_disasm(listing == Some(ListingKind::Asm));
    ctx.compile(isa, &mut ControlPlane::default())
        .map_err(|e| CodegenError::Cranelift(format!("{:?}", e.inner)))?;
    let code = ctx.compiled_code().expect("just compiled");
    let mut relocs = Vec::with_capacity(code.buffer.relocs().len());
    for reloc in code.buffer.relocs() {
        if let FinalizedRelocTarget::ExternalName(ExternalName::LibCall(lc)) = &reloc.target {
            return Err(CodegenError::Cranelift(format!(
                "generated code would call the library routine {lc}"
            )));
        }
        relocs.push(ModuleReloc::from_mach_reloc(reloc, &ctx.func, id));
    }
    let text = match listing {
        Some(ListingKind::Clif) => clif,
        Some(ListingKind::Asm) => Some(code.vcode.clone().unwrap_or_default()),
        None => None,
    };
    Ok(Compiled {
        bytes: code.code_buffer().to_vec(),
        alignment: code.buffer.alignment as u64,
        relocs,
        text,
    })
}
