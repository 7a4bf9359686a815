//! The `cnnc` binary: output format, exit codes, one-line errors.

use std::path::Path;
use std::process::{Command, Output};

use cnnc_frontend::builder::*;
use prost::Message;

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A test case `y = relu(x)` whose expected output is `want`.
fn relu_case(dir: &Path, want: [f32; 4]) {
    let g = graph(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![input("x", &[4])],
        vec![output("y")],
        vec![],
    );
    std::fs::write(dir.join("model.onnx"), model(g, 13)).unwrap();
    let set = dir.join("test_data_set_0");
    std::fs::create_dir_all(&set).unwrap();
    std::fs::write(
        set.join("input_0.pb"),
        tensor_f32("x", &[4], &[-1.0, 2.0, -3.0, 4.0]).encode_to_vec(),
    )
    .unwrap();
    std::fs::write(
        set.join("output_0.pb"),
        tensor_f32("y", &[4], &want).encode_to_vec(),
    )
    .unwrap();
}

#[test]
fn verify_reports_each_case_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::create_dir(&good).unwrap();
    std::fs::create_dir(&bad).unwrap();
    relu_case(&good, [0.0, 2.0, 0.0, 4.0]);
    relu_case(&bad, [0.0, 2.0, 0.0, 4.5]);

    let out = cnnc(&["verify", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("good: pass"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 0 failed, 0 unsupported")
    );

    // A folder of cases expands to its cases; a wrong output fails with the element.
    let out = cnnc(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("bad: FAIL") && stdout.contains("[3] = 4, expected 4.5"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("1 passed, 1 failed, 0 unsupported")
    );

    // A looser tolerance accepts it.
    let out = cnnc(&["verify", "--rtol", "0.2", bad.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));

    // The compiling backends take the passes' options: any level, a stop after a pass;
    // a pass the level does not run is a usage error before any case runs, and so are
    // the options with the reference interpreter, which runs no passes.
    let good = good.to_str().unwrap();
    for args in [["-O", "0"], ["-O", "s"], ["--after", "fold_pad"]] {
        let out = cnnc(&[&["verify", "--backend", "jit"], &args[..], &[good]].concat());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stdout));
    }
    let args = [
        "verify",
        "--backend",
        "jit",
        "-Os",
        "--after",
        "winograd",
        good,
    ];
    let out = cnnc(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no pass 'winograd' at -Os"),
        "{}",
        text(&out.stderr)
    );
    let out = cnnc(&["verify", "-Os", good]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("jit and aot"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unsupported_cases_are_reported_and_fail_only_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    let g = graph(
        vec![node("Frobnicate", &["x"], &["y"], vec![])],
        vec![input("x", &[4])],
        vec![output("y")],
        vec![],
    );
    std::fs::write(dir.path().join("model.onnx"), model(g, 13)).unwrap();
    let set = dir.path().join("test_data_set_0");
    std::fs::create_dir(&set).unwrap();
    std::fs::write(
        set.join("input_0.pb"),
        tensor_f32("x", &[4], &[1.0; 4]).encode_to_vec(),
    )
    .unwrap();
    std::fs::write(
        set.join("output_0.pb"),
        tensor_f32("y", &[4], &[1.0; 4]).encode_to_vec(),
    )
    .unwrap();
    let case = dir.path().to_str().unwrap();

    let out = cnnc(&["verify", case]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("unsupported: node 'Frobnicate_y' (Frobnicate): operator Frobnicate"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("0 passed, 0 failed, 1 unsupported")
    );

    assert_eq!(cnnc(&["verify", "--strict", case]).status.code(), Some(1));
}

#[test]
fn malformed_model_is_a_failed_case() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.onnx"), b"garbage").unwrap();
    std::fs::create_dir(dir.path().join("test_data_set_0")).unwrap();
    let out = cnnc(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("FAIL"), "{}", text(&out.stdout));
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let out = cnnc(&["verify", "/nonexistent/case"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("cnnc: ") && stderr.contains("/nonexistent/case"),
        "{stderr}"
    );

    let out = cnnc(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
}

fn lenet_path() -> String {
    format!("{}/examples/lenet/model.onnx", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn compile_writes_object_header_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("le-net.o");
    let out = cnnc(&[&lenet_path(), "-o", obj.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(obj.is_file());
    // The name is the file stem made a C identifier.
    let header = std::fs::read_to_string(dir.path().join("le_net.h")).unwrap();
    assert!(
        header.contains("int32_t le_net_run(const float *const *inputs"),
        "{header}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("le_net.json")).unwrap())
            .unwrap();
    assert_eq!(json["name"], "le_net");
    assert_eq!(
        json["inputs"][0]["shape"],
        serde_json::json!([1, 1, 28, 28])
    );
    assert!(json["workspace_size"].as_u64().unwrap() > 0);

    let h = dir.path().join("include/net.h");
    std::fs::create_dir(dir.path().join("include")).unwrap();
    let out = cnnc(&[
        &lenet_path(),
        "-o",
        obj.to_str().unwrap(),
        "--name",
        "net",
        "--header",
        h.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(h)
            .unwrap()
            .contains("net_run_threaded")
    );
}

#[test]
fn emit_prints_ir_clif_and_asm() {
    let ir = text(&cnnc(&[&lenet_path(), "--emit", "ir"]).stdout);
    assert!(
        ir.starts_with("graph(%image: f32[1,1,28,28])") && ir.contains("conv("),
        "{ir}"
    );
    let clif = text(&cnnc(&[&lenet_path(), "--emit", "clif"]).stdout);
    assert!(
        clif.contains("function") && clif.contains("model_run_threaded"),
        "{}",
        &clif[..200.min(clif.len())]
    );
    let asm = text(&cnnc(&[&lenet_path(), "--emit", "asm"]).stdout);
    assert!(asm.contains("ret"), "{}", &asm[..200.min(asm.len())]);
    let out = cnnc(&[&lenet_path()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    // The reader goes away before the listing (hundreds of KiB) is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args([&lenet_path(), "--emit", "asm"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn run_reads_and_writes_npy() {
    let dir = tempfile::tempdir().unwrap();
    let x = cnnc::Tensor::from_vec(
        vec![1, 1, 28, 28],
        (0..784).map(|i| (i % 17) as f32 / 17.0).collect(),
    )
    .unwrap();
    let input = dir.path().join("x.npy");
    cnnc::npy::write(&input, &x).unwrap();
    let outdir = dir.path().join("out");
    let out = cnnc(&[
        "run",
        &lenet_path(),
        "--input",
        input.to_str().unwrap(),
        "--output-dir",
        outdir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let y = cnnc::npy::read(&outdir.join("probabilities.npy")).unwrap();
    assert_eq!(y.shape(), &[1, 10]);
    let named = format!("image={}", input.display());
    assert!(
        cnnc(&[
            "run",
            &lenet_path(),
            "--input",
            &named,
            "--output-dir",
            outdir.to_str().unwrap(),
            "--threads",
            "2"
        ])
        .status
        .success()
    );

    let wrong = dir.path().join("wrong.npy");
    cnnc::npy::write(
        &wrong,
        &cnnc::Tensor::from_vec(vec![1, 28, 28], vec![0f32; 784]).unwrap(),
    )
    .unwrap();
    let out = cnnc(&["run", &lenet_path(), "--input", wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("'image'") && stderr.contains("[1, 1, 28, 28]"),
        "{stderr}"
    );
    let out = cnnc(&[
        "run",
        &lenet_path(),
        "--input",
        &format!("nope={}", input.display()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("'nope' is not an input"));
}

#[test]
fn bench_reports_json() {
    let out = cnnc(&[
        "bench",
        &lenet_path(),
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
        "--threads",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    for key in ["median_ms", "min_ms", "max_ms", "compile_ms"] {
        assert!(j[key].as_f64().unwrap() > 0.0, "{key} in {j}");
    }
    assert_eq!(j["threads"], 2);
    // Piped, nothing but the result is printed.
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

#[test]
fn bench_measures_the_fma_peak_when_asked() {
    let args = ["bench", &lenet_path(), "--iters", "2", "--warmup", "0"];
    let out = cnnc(&[&args[..], &["--json", "--fma-peak"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    // Any x86-64 core with FMA does at least one 4-lane FMA per nanosecond.
    let peak = j["fma_peak_gflops"].as_f64().unwrap();
    assert!(peak > 8.0 && peak.is_finite(), "{j}");
    let out = cnnc(&[&args[..], &["--fma-peak"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last = text(&out.stdout).lines().last().unwrap().to_string();
    assert!(
        last.starts_with("128-bit FMA peak: ") && last.ends_with(" GFLOP/s on one core"),
        "{last}"
    );
    // With the per-layer table, each layer's share of the peak.
    let out = cnnc(&[&args[..], &["--fma-peak", "--per-layer"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.lines().next().unwrap().ends_with("% peak"),
        "{report}"
    );
    let conv = report.lines().find(|l| l.starts_with("c1 ")).unwrap();
    let share: f64 = conv.split_whitespace().last().unwrap().parse().unwrap();
    assert!(share > 0.0 && share.is_finite(), "{conv}");
    // Without the flag the JSON has no peak.
    let out = cnnc(&[&args[..], &["--json"]].concat());
    let j: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert!(j.get("fma_peak_gflops").is_none(), "{j}");
}

#[test]
fn inspect_time_adds_each_ops_median() {
    let out = cnnc(&["inspect", &lenet_path(), "--time", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.lines().next().unwrap().ends_with("ms"), "{report}");
    let conv = report.lines().find(|l| l.starts_with("c1 ")).unwrap();
    let ms: f64 = conv.split_whitespace().last().unwrap().parse().unwrap();
    assert!(ms >= 0.0, "{conv}");
    // A reshape is a view: no code, no time.
    let view = report.lines().find(|l| l.starts_with("f ")).unwrap();
    assert!(view.ends_with(" -"), "{view}");
}

#[test]
fn bench_per_layer_times_every_step() {
    let args = ["bench", &lenet_path(), "--iters", "3", "--warmup", "1"];
    let out = cnnc(&[&args[..], &["--per-layer"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let header = report.lines().next().unwrap();
    for column in ["node", "op", "ms", "%", "MACs", "GFLOP/s"] {
        assert!(header.contains(column), "{header}");
    }
    let conv = report.lines().find(|l| l.starts_with("c1 ")).unwrap();
    assert!(conv.contains("conv") && conv.contains("117600"), "{conv}");
    assert!(report.contains("per op (sum of medians"), "{report}");
    // JSON: one entry per step, in run order, the first layer first.
    let out = cnnc(&[&args[..], &["--per-layer", "--json", "--threads", "2"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers[0]["name"], "c1", "{j}");
    assert_eq!(layers[0]["macs"], 117600);
    assert!(
        layers
            .iter()
            .all(|l| l["median_ms"].as_f64().unwrap() >= 0.0)
    );
    assert!(layers.iter().any(|l| l["op"] == "softmax"));
}

#[test]
fn verify_with_every_backend() {
    let case = format!("{}/examples/lenet", env!("CARGO_MANIFEST_DIR"));
    for backend in ["ref", "jit", "aot"] {
        let out = cnnc(&["verify", "--backend", backend, &case]);
        assert!(out.status.success(), "{backend}: {}", text(&out.stdout));
        assert_eq!(
            text(&out.stdout).lines().last(),
            Some("1 passed, 0 failed, 0 unsupported")
        );
    }
}

#[test]
fn inspect_shows_ops_tiles_totals_passes_and_ir() {
    let out = cnnc(&["inspect", &lenet_path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let header = report.lines().next().unwrap();
    for column in ["node", "op", "output", "layout", "tile", "MACs", "bytes"] {
        assert!(header.contains(column), "{header}");
    }
    let conv = report.lines().find(|l| l.starts_with("c1 ")).unwrap();
    assert!(conv.contains("conv") && conv.contains("117600"), "{conv}");
    assert!(conv.split_whitespace().any(|w| w.contains("/k")), "{conv}");
    assert!(
        report.contains("ops (reshapes excluded): 12 imported, 10 after passes"),
        "{report}"
    );
    assert!(report.contains("multiply-adds: 416520"), "{report}");
    assert!(report.contains("arena: ") && report.contains("peak live: "));
    assert!(report.contains("fuse_activation") && report.contains("4 changes"));
    assert!(report.contains("graph(%image: f32[1,1,28,28])"));
}

#[test]
fn after_and_opt_level_choose_the_passes() {
    // Before fusion the relus are ops of their own; after it, epilogues.
    let ir = |args: &[&str]| {
        let mut all = vec![lenet_path()];
        all.extend(args.iter().map(|s| s.to_string()));
        all.extend(["--emit".into(), "ir".into()]);
        let all: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        let out = cnnc(&all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let before = ir(&["--after", "depthwise"]);
    assert!(before.contains("= relu(") && !before.contains("act=relu"));
    let after = ir(&["--after", "fuse_activation"]);
    assert!(!after.contains("= relu(") && after.contains("act=relu"));
    assert!(!after.contains("tile="));
    assert!(ir(&[]).contains("tile="));
    assert!(ir(&["-O", "0"]).contains("= relu("));
    // -Os runs every pass but those that grow the constants.
    assert!(ir(&["-Os"]).contains("tile="));
    let out = cnnc(&[&lenet_path(), "-Os", "--after", "winograd", "--emit", "ir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no pass 'winograd' at -Os"),
        "{}",
        text(&out.stderr)
    );

    // A model still runs, stopped anywhere.
    let out = cnnc(&[
        "bench",
        &lenet_path(),
        "--iters",
        "1",
        "--after",
        "fold_pad",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = cnnc(&["inspect", &lenet_path(), "--after", "fuse_everything"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no pass 'fuse_everything'") && stderr.contains("fold_batch_norm"),
        "{stderr}"
    );
}
