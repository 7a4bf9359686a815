//! Writing a relocatable object file.

use std::io::{self, Write};

use cnnc_ir::Graph;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_object::{ObjectBuilder, ObjectModule, ObjectProduct};

use crate::program::{self, Constants, ModelInfo};
use crate::{CodegenError, Listing};

/// A compiled object file, encoded as it is written ([`ObjectCode::write_to`]): a
/// model's constants are most of it (VGG-19: 818 MB), which then go from the module's
/// section to the writer without a second buffer of the whole file.
pub struct ObjectCode(ObjectProduct);

/// Why [`ObjectCode::write_to`] failed: the writer's error, or the encoding's (a bug).
#[derive(Debug)]
pub enum WriteError {
    Io(io::Error),
    Encoding(CodegenError),
}

impl ObjectCode {
    /// Writes the object file to `out`.
    pub fn write_to(&self, out: impl Write) -> Result<(), WriteError> {
        self.0
            .object
            .write_stream(out)
            .map_err(|e| match e.downcast::<io::Error>() {
                Ok(e) => WriteError::Io(*e),
                Err(e) => WriteError::Encoding(CodegenError::Cranelift(format!(
                    "writing the object: {e}"
                ))),
            })
    }

    /// The object file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodegenError> {
        self.0
            .object
            .write()
            .map_err(|e| CodegenError::Cranelift(format!("writing the object: {e}")))
    }
}

/// Compiles `graph` to an object file (ELF, Mach-O or COFF as the ISA's triple says)
/// whose only global symbols are `{name}_run`, `{name}_run_threaded` and
/// `{name}_workspace_size`, with the constants in a read-only section.
pub fn compile_object(
    graph: &Graph,
    isa: OwnedTargetIsa,
    name: &str,
    listing: Option<&mut Listing>,
) -> Result<(ModelInfo, ObjectCode), CodegenError> {
    let builder = ObjectBuilder::new(isa, name, cranelift_module::default_libcall_names())?;
    let mut module = ObjectModule::new(builder);
    let lowered = program::lower(graph, &mut module, name, Constants::Define, false, listing)?;
    Ok((lowered.info, ObjectCode(module.finish())))
}
