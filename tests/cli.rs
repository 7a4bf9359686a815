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
