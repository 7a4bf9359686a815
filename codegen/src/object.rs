//! Writing a relocatable object file.

use cnnc_ir::Graph;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_object::{ObjectBuilder, ObjectModule};

use crate::program::{self, Constants, ModelInfo};
use crate::{CodegenError, Listing};

/// Compiles `graph` to an object file (ELF, Mach-O or COFF as the ISA's triple says)
/// whose only global symbols are `{name}_run`, `{name}_run_threaded` and
/// `{name}_workspace_size`, with the constants in a read-only section.
pub fn compile_object(
    graph: &Graph,
    isa: OwnedTargetIsa,
    name: &str,
    listing: Option<&mut Listing>,
) -> Result<(ModelInfo, Vec<u8>), CodegenError> {
    let builder = ObjectBuilder::new(isa, name, cranelift_module::default_libcall_names())?;
    let mut module = ObjectModule::new(builder);
    let lowered = program::lower(graph, &mut module, name, Constants::Define, false, listing)?;
    let bytes = module
        .finish()
        .emit()
        .map_err(|e| CodegenError::Cranelift(format!("writing the object: {e}")))?;
    Ok((lowered.info, bytes))
}
