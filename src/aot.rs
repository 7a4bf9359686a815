//! Running a model the way a C programmer would: compile it to an object file, link it
//! into a small C driver with the system C compiler (`$CC`, default `cc`), run the
//! executable on the inputs. `cnnc verify --backend aot` and the link tests use this.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compiler::write;
use crate::ir::Tensor;
use crate::{Compiler, Error, Model, ModelInfo};

/// The C driver for `info`: reads each input from a raw file named on the command line,
/// runs `NAME_run`, writes each output to a raw file.
pub fn driver_source(info: &ModelInfo, header: &str) -> String {
    let n = &info.name;
    let (ni, no) = (info.inputs.len(), info.outputs.len());
    let mut c = String::new();
    let _ = writeln!(
        c,
        "#include <stdio.h>\n#include <stdlib.h>\n#include \"{header}\"\n"
    );
    c.push_str(
        "static void *load(const char *path, size_t bytes) {\n\
         \x20   FILE *f = fopen(path, \"rb\");\n\
         \x20   void *p = malloc(bytes ? bytes : 1);\n\
         \x20   if (!f || !p || fread(p, 1, bytes, f) != bytes) { fprintf(stderr, \"cannot read %s\\n\", path); exit(3); }\n\
         \x20   fclose(f);\n\
         \x20   return p;\n\
         }\n\n\
         static void save(const char *path, const void *p, size_t bytes) {\n\
         \x20   FILE *f = fopen(path, \"wb\");\n\
         \x20   if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f)) { fprintf(stderr, \"cannot write %s\\n\", path); exit(4); }\n\
         }\n\n",
    );
    let _ = writeln!(c, "int main(int argc, char **argv) {{");
    let _ = writeln!(
        c,
        "    if (argc != {}) {{ fprintf(stderr, \"usage: driver INPUTS... OUTPUTS...\\n\"); return 2; }}",
        1 + ni + no
    );
    let _ = writeln!(
        c,
        "    const float *inputs[{}];\n    float *outputs[{}];",
        ni.max(1),
        no.max(1)
    );
    for i in 0..ni {
        let _ = writeln!(
            c,
            "    inputs[{i}] = load(argv[{}], {n}_INPUT_{i}_SIZE * sizeof({n}_INPUT_{i}_type));",
            1 + i
        );
    }
    for j in 0..no {
        let _ = writeln!(
            c,
            "    outputs[{j}] = malloc({n}_OUTPUT_{j}_SIZE * sizeof({n}_OUTPUT_{j}_type) + 1);"
        );
    }
    let _ = writeln!(
        c,
        "    void *workspace = aligned_alloc(64, ({n}_WORKSPACE_SIZE + 63) / 64 * 64 + 64);"
    );
    let _ = writeln!(c, "    int rc = {n}_run(inputs, outputs, workspace);");
    let _ = writeln!(
        c,
        "    if (rc != 0) {{ fprintf(stderr, \"{n}_run returned %d\\n\", rc); return 10 + rc; }}"
    );
    for j in 0..no {
        let _ = writeln!(
            c,
            "    save(argv[{}], outputs[{j}], {n}_OUTPUT_{j}_SIZE * sizeof({n}_OUTPUT_{j}_type));",
            1 + ni + j
        );
    }
    let _ = writeln!(c, "    return 0;\n}}");
    c
}

fn run_command(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let out = cmd
        .output()
        .map_err(|e| Error::Usage(format!("cannot run {what}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The system C compiler.
pub fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Compiles `model` into `dir/model.o`, links the driver, and returns the executable.
pub fn build(
    compiler: &Compiler,
    model: &Model,
    dir: &Path,
) -> Result<(PathBuf, ModelInfo), Error> {
    let obj = compiler.object(model, "model")?;
    obj.write(dir.join("model.o"))?;
    write(&dir.join("model.h"), obj.header.as_bytes())?;
    write(
        &dir.join("driver.c"),
        driver_source(&obj.info, "model.h").as_bytes(),
    )?;
    let exe = dir.join("driver");
    run_command(
        Command::new(cc())
            .current_dir(dir)
            .args(["-O1", "-o", "driver", "driver.c", "model.o"]),
        "the C compiler",
    )?;
    Ok((exe, obj.info))
}

/// Runs a driver from [`build`] on `inputs`.
pub fn run(exe: &Path, info: &ModelInfo, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
    let dir = exe.parent().expect("the driver is in a folder");
    let mut args = Vec::new();
    for (i, t) in inputs.iter().enumerate() {
        let p = dir.join(format!("input_{i}.bin"));
        write(&p, bytemuck::cast_slice::<f32, u8>(&t.view::<f32>()?))?;
        args.push(p);
    }
    let outs: Vec<PathBuf> = (0..info.outputs.len())
        .map(|j| dir.join(format!("output_{j}.bin")))
        .collect();
    args.extend(outs.iter().cloned());
    run_command(Command::new(exe).args(&args), "the linked model")?;
    info.outputs
        .iter()
        .zip(&outs)
        .map(|(t, p)| {
            let bytes = std::fs::read(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            Ok(Tensor::from_bytes(t.dtype, t.shape.clone(), bytes.into())?)
        })
        .collect()
}
