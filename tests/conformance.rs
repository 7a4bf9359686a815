//! The ONNX conformance cases in `../shared/onnx-conformance` through every backend
//! (reference interpreter, JIT, object file linked by `cc`): every in-scope case
//! passes, no case fails, and every unsupported case is out of scope (non-float32 data,
//! training-mode ops, MaxPool indices, Resize with antialias or tf_crop_and_resize,
//! wrap padding).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cnnc::Compiler;
use cnnc::verify::{Backend, Outcome, Tolerance, expand_cases, verify_case};

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/onnx-conformance");
    assert!(
        root.is_dir(),
        "{} is missing: the conformance data must sit beside the checkout",
        root.display()
    );
    root
}

fn in_scope() -> HashSet<PathBuf> {
    let root = root();
    std::fs::read_to_string(root.join("inscope.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| root.join(l.trim()))
        .collect()
}

/// Runs the cases under `folder` and panics listing every problem.
fn check(folder: &str, backend: Backend) {
    let scope = in_scope();
    let cases = expand_cases(&[root().join(folder)]).unwrap();
    assert!(!cases.is_empty());
    let mut problems = Vec::new();
    for case in &cases {
        match verify_case(case, backend, Tolerance::default(), &Compiler::new()) {
            Outcome::Pass => {}
            Outcome::Fail(why) => problems.push(format!("{}: FAIL: {why}", case.display())),
            Outcome::Unsupported(why) if scope.contains(case) => problems.push(format!(
                "{}: in scope but unsupported: {why}",
                case.display()
            )),
            Outcome::Unsupported(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} cases:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

macro_rules! backend {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn node() {
                check("node", $backend);
            }

            #[test]
            fn pytorch_converted() {
                check("pytorch-converted", $backend);
            }

            #[test]
            fn pytorch_operator() {
                check("pytorch-operator", $backend);
            }

            models!(
                $backend,
                bvlc_alexnet,
                densenet121,
                densenet121_random,
                inception_v1,
                inception_v2,
                resnet50,
                shufflenet,
                shufflenet_random,
                squeezenet,
                squeezenet_random,
                vgg19,
                zfnet512
            );
        }
    };
}

macro_rules! models {
    ($backend:expr, $($name:ident),*) => {$(
        #[test]
        fn $name() {
            check(concat!("models/", stringify!($name)), $backend);
        }
    )*};
}

backend!(reference, Backend::Ref);
backend!(jit, Backend::Jit);
backend!(aot, Backend::Aot);

#[test]
fn every_in_scope_case_is_covered_above() {
    let root = root();
    for case in in_scope() {
        let rel = case.strip_prefix(&root).unwrap();
        let folder = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        assert!(
            ["node", "pytorch-converted", "pytorch-operator", "models"].contains(&folder),
            "{}",
            rel.display()
        );
        assert!(
            case.join("model.onnx").is_file(),
            "{} has no model",
            case.display()
        );
    }
}
