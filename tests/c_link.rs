//! Object files as a C programmer uses them: self-contained, linkable with `cc`, the
//! header valid C and C++, several models in one program, the threaded entry point
//! driven by the runtime's static library, and other targets' object formats.

use std::path::PathBuf;
use std::process::Command;

use cnnc::{Compiler, ListingKind, Model, Tensor, aot};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lenet() -> Model {
    Model::load(root().join("examples/lenet/model.onnx")).unwrap()
}

fn expected() -> (Tensor, Tensor) {
    let set = root().join("examples/lenet/test_data_set_0");
    let input = cnnc_frontend::read_tensor_file(&set.join("input_0.pb"))
        .unwrap()
        .1;
    let output = cnnc_frontend::read_tensor_file(&set.join("output_0.pb"))
        .unwrap()
        .1;
    (input, output)
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.view::<f32>().unwrap(), b.view::<f32>().unwrap());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-6))
        .fold(0.0, f32::max)
}

#[test]
fn object_has_no_undefined_symbols_and_exports_only_its_entry_points() {
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("net.o");
    Compiler::new().write_object(&lenet(), &obj).unwrap();
    let undefined = sh(Command::new("nm").arg("-u").arg(&obj));
    assert!(
        undefined.trim().is_empty(),
        "undefined symbols: {undefined}"
    );
    let globals = sh(Command::new("nm").args(["-g", "--defined-only"]).arg(&obj));
    let mut names: Vec<&str> = globals
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    names.sort();
    assert_eq!(names, ["net_run", "net_run_threaded", "net_workspace_size"]);
    // The weights are read-only data, 64-byte aligned.
    let sections = sh(Command::new("objdump").arg("-h").arg(&obj));
    let rodata = sections
        .lines()
        .find(|l| l.contains(".rodata"))
        .expect("a .rodata section");
    assert!(rodata.contains("2**6"), "{rodata}");
    assert!(dir.path().join("net.h").is_file() && dir.path().join("net.json").is_file());
}

#[test]
fn header_compiles_as_c_and_cpp() {
    let dir = tempfile::tempdir().unwrap();
    Compiler::new()
        .write_object(&lenet(), dir.path().join("net.o"))
        .unwrap();
    let src = dir.path().join("use.c");
    std::fs::write(
        &src,
        "#include \"net.h\"\n#include \"net.h\"\nint main(void) { float x[net_INPUT_0_SIZE]; (void)x; return (int)net_workspace_size() < 0; }\n",
    )
    .unwrap();
    for (compiler, lang) in [(aot::cc(), "c"), ("c++".to_string(), "c++")] {
        sh(Command::new(compiler).current_dir(dir.path()).args([
            "-fsyntax-only",
            "-Wall",
            "-Werror",
            "-pedantic",
            "-x",
            lang,
            "use.c",
        ]));
    }
}

#[test]
fn linked_c_program_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let (exe, info) = aot::build(&Compiler::new(), &lenet(), dir.path()).unwrap();
    let (input, want) = expected();
    let got = aot::run(&exe, &info, &[input]).unwrap();
    assert!(max_rel(&got[0], &want) < 1e-4, "{:?} vs {:?}", got[0], want);
}

#[test]
fn two_models_link_into_one_program() {
    let dir = tempfile::tempdir().unwrap();
    let m = lenet();
    Compiler::new()
        .name("first")
        .write_object(&m, dir.path().join("a.o"))
        .unwrap();
    Compiler::new()
        .name("second")
        .write_object(&m, dir.path().join("b.o"))
        .unwrap();
    std::fs::write(
        dir.path().join("main.c"),
        "#include \"a.h\"\n#include \"b.h\"\nint main(void) { return first_workspace_size() != second_workspace_size(); }\n",
    )
    .unwrap();
    sh(Command::new(aot::cc())
        .current_dir(dir.path())
        .args(["main.c", "a.o", "b.o", "-o", "main"]));
    sh(&mut Command::new(dir.path().join("main")));
}

/// Builds the runtime's static library into its own target folder (so as not to wait
/// on the lock of the build running this test).
fn runtime_staticlib() -> PathBuf {
    let target = root().join("target/staticlib-test");
    sh(Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "build",
            "--quiet",
            "-p",
            "cnnc-runtime",
            "--lib",
            "--target-dir",
        ])
        .arg(&target));
    target.join("debug/libcnnc_runtime.a")
}

#[test]
fn threaded_entry_point_with_the_runtime_pool_gives_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    Compiler::new()
        .write_object(&lenet(), dir.path().join("net.o"))
        .unwrap();
    let (input, _) = expected();
    let bytes: Vec<u8> = input
        .view::<f32>()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.path().join("image.f32"), bytes).unwrap();
    std::fs::write(
        dir.path().join("main.c"),
        r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"
#include "cnnc_runtime.h"
int main(void) {
    static float x[net_INPUT_0_SIZE], a[net_OUTPUT_0_SIZE], b[net_OUTPUT_0_SIZE];
    FILE *f = fopen("image.f32", "rb");
    if (!f || fread(x, sizeof x, 1, f) != 1) return 3;
    void *ws = aligned_alloc(64, (net_WORKSPACE_SIZE + 63) / 64 * 64 + 64);
    const float *in[] = {x};
    float *out_a[] = {a}, *out_b[] = {b};
    if (net_run(in, out_a, ws)) return 4;
    cnnc_pool *pool = cnnc_pool_new(2);
    for (int i = 0; i < 3; i++)
        if (net_run_threaded(in, out_b, ws, cnnc_pool_parallel_for, pool)) return 5;
    cnnc_pool_free(pool);
    if (memcmp(a, b, sizeof a)) return 6;
    if (net_run(NULL, out_a, ws) != 1 || net_run(in, out_a, NULL) != 2) return 7;
    printf("%f\n", a[0]);
    return 0;
}
"#,
    )
    .unwrap();
    let lib = runtime_staticlib();
    sh(Command::new(aot::cc())
        .current_dir(dir.path())
        .arg("-I")
        .arg(root().join("runtime/include"))
        .args(["main.c", "net.o"])
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o", "main"]));
    sh(Command::new(dir.path().join("main")).current_dir(dir.path()));
}

fn object_bytes(triple: &str, cpu: Option<&str>) -> Vec<u8> {
    let mut c = Compiler::new().target(triple).unwrap();
    if let Some(cpu) = cpu {
        c = c.cpu(cpu);
    }
    c.object(&lenet(), "net").unwrap().bytes().unwrap()
}

#[test]
fn other_targets_get_their_object_formats() {
    let elf = object_bytes("aarch64-unknown-linux-gnu", None);
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 0xb7, "EM_AARCH64");
    let macho = object_bytes("x86_64-apple-darwin", None);
    assert_eq!(
        u32::from_le_bytes(macho[..4].try_into().unwrap()),
        0xfeed_facf
    );
    let coff = object_bytes("x86_64-pc-windows-msvc", None);
    assert_eq!(u16::from_le_bytes([coff[0], coff[1]]), 0x8664);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn fma_is_used_where_the_cpu_has_it_and_never_called() {
    let m = lenet();
    let v3 = Compiler::new()
        .cpu("x86-64-v3")
        .listing(&m, ListingKind::Asm)
        .unwrap();
    assert!(v3.contains("vfmadd"), "no vfmadd for x86-64-v3");
    let v2 = Compiler::new()
        .cpu("x86-64-v2")
        .listing(&m, ListingKind::Asm)
        .unwrap();
    assert!(!v2.contains("fma"), "fma on a CPU without it");
    // Without FMA the object still needs no library (no fmaf calls).
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("v2.o");
    Compiler::new()
        .cpu("x86-64-v2")
        .write_object(&m, &obj)
        .unwrap();
    assert!(sh(Command::new("nm").arg("-u").arg(&obj)).trim().is_empty());
    // And it still computes the same answer.
    let c = Compiler::new().cpu("x86-64-v2");
    let (exe, info) = aot::build(&c, &m, dir.path()).unwrap();
    let (input, want) = expected();
    assert!(max_rel(&aot::run(&exe, &info, &[input]).unwrap()[0], &want) < 1e-4);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn costly_activations_without_fma_match_the_onnx_results() {
    // The span functions of SiLU-like activations are compiled apart (as written), on
    // the same CPU: without FMA each multiply-add is two instructions in every chain.
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/onnx-conformance/node");
    let dir = tempfile::tempdir().unwrap();
    for case in [
        "test_sigmoid",
        "test_tanh",
        "test_mish",
        "test_softplus",
        "test_elu",
    ] {
        let m = Model::load(cases.join(case).join("model.onnx")).unwrap();
        let read = |name: &str| {
            let path = cases.join(case).join("test_data_set_0").join(name);
            cnnc_frontend::read_tensor_file(&path).unwrap().1
        };
        let c = Compiler::new().cpu("x86-64-v2").name(case);
        let v2 = c.listing(&m, ListingKind::Asm).unwrap();
        assert!(v2.contains("_act_"), "{case}: no span function");
        assert!(!v2.contains("fma"), "{case}: fma on a CPU without it");
        let (exe, info) = aot::build(&c, &m, dir.path()).unwrap();
        let got = aot::run(&exe, &info, &[read("input_0.pb")]).unwrap();
        let want = read("output_0.pb");
        assert!(max_rel(&got[0], &want) < 1e-4, "{case}");
    }
}

#[test]
fn unknown_targets_and_cpus_are_errors() {
    assert!(Compiler::new().target("nonsense-triple").is_err());
    let e = Compiler::new()
        .cpu("not-a-cpu")
        .object(&lenet(), "net")
        .err()
        .expect("an error");
    assert!(e.to_string().contains("not-a-cpu"), "{e}");
    assert!(e.is_user_error());
}

#[test]
fn a_written_object_is_its_bytes_and_a_failed_write_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let obj = Compiler::new().object(&lenet(), "net").unwrap();
    let path = dir.path().join("net.o");
    obj.write(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), obj.bytes().unwrap());
    let missing = dir.path().join("no-such-dir/net.o");
    let e = obj.write(&missing).expect_err("an error");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    // A device that takes no bytes: the error comes from the streaming write.
    if cfg!(target_os = "linux") {
        let e = obj.write("/dev/full").expect_err("an error");
        assert!(e.to_string().contains("/dev/full"), "{e}");
        assert!(std::path::Path::new("/dev/full").exists());
    }
}
