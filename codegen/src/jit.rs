//! Compiling into this process's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cnnc_ir::Graph;
use cnnc_runtime::{Executable, abi};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_jit::{ArenaMemoryProvider, JITBuilder, JITModule};

use crate::const_memory::ConstMemory;
use crate::program::{self, Constants, ModelInfo};
use crate::{CodegenError, Listing};

/// Virtual address space reserved for a model's code, so that calls between its
/// functions stay within direct-branch range.
const CODE_RESERVE: usize = 1 << 30;

/// Compiles `graph` for the host and loads it. The constant data stays in an aligned
/// buffer owned by the returned executable. With `profile`, the executable also has
/// the profiled entry point (a hook after every step).
pub fn compile_jit(
    graph: &Graph,
    isa: OwnedTargetIsa,
    name: &str,
    profile: bool,
    listing: Option<&mut Listing>,
) -> Result<(ModelInfo, Executable), CodegenError> {
    let constants_at = Arc::new(AtomicUsize::new(0));
    let symbol = format!("{name}_constants");
    let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
    {
        let at = Arc::clone(&constants_at);
        builder.symbol_lookup_fn(Box::new(move |s| {
            (s == symbol).then(|| at.load(Ordering::Acquire) as *const u8)
        }));
    }
    let arena = ArenaMemoryProvider::new_with_size(CODE_RESERVE)
        .map_err(|e| CodegenError::Internal(format!("reserving code memory: {e}")))?;
    builder.memory_provider(Box::new(arena));
    let mut module = JITModule::new(builder);
    let lowered = program::lower(
        graph,
        &mut module,
        name,
        Constants::Import,
        profile,
        listing,
    )?;
    let constants = lowered
        .constants
        .ok_or_else(|| CodegenError::Internal("no constant data for the JIT".into()))?;
    constants_at.store(constants.as_ptr() as usize, Ordering::Release);
    module.finalize_definitions()?;
    let code = module.get_finalized_function(lowered.entry);
    let profiled = lowered.profiled.map(|id| module.get_finalized_function(id));
    // SAFETY: `entry` was declared with the signature of `abi::RunFn`.
    let run = unsafe { std::mem::transmute::<*const u8, abi::RunFn>(code) };
    let owner = Box::new(Owner {
        module: Some(module),
        _constants: constants,
    });
    // SAFETY: the owner keeps the code and its constant data alive.
    let mut exe = unsafe { Executable::new(run, lowered.info.workspace_size, owner) };
    if let Some(code) = profiled {
        // SAFETY: the profiled entry was declared with the signature of
        // `abi::ProfiledRunFn` and lives in the same code as `run`.
        exe = unsafe {
            exe.with_profiled(std::mem::transmute::<*const u8, abi::ProfiledRunFn>(code))
        };
    }
    Ok((lowered.info, exe))
}

/// Keeps JIT code and the data it references alive, and frees the code with it.
struct Owner {
    module: Option<JITModule>,
    _constants: ConstMemory,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the owner goes with the `Executable`, so no entry point of the
            // module can be running or be called again.
            unsafe { module.free_memory() };
        }
    }
}

// The module is only dropped, never used, once finalized.
unsafe impl Send for Owner {}
