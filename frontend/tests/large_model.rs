//! A model of several hundred MB loads without a copy of its weights.
//!
//! Its own test binary, so the process's memory counters see only this test.

use cnnc_frontend::builder::*;
use cnnc_frontend::{ImportOptions, OnnxModel, import};
use cnnc_ir::{Op, Tensor, interp};

const ELEMENTS: usize = 80 * 1024 * 1024; // 320 MiB of f32

fn weight(i: usize) -> f32 {
    (i % 1000) as f32 * 0.5 - 7.0
}

/// Anonymous (heap) memory of this process in bytes; memory-mapped file pages are not
/// counted, they are the file itself.
fn rss_anon() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

#[test]
#[cfg(target_os = "linux")]
fn several_hundred_mb_model_loads_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.onnx");
    {
        let values: Vec<f32> = (0..ELEMENTS).map(weight).collect();
        let w = tensor_f32("w", &[ELEMENTS as i64], &values);
        drop(values);
        let idx = tensor_i64("idx", &[3], &[0, 12_345_678, ELEMENTS as i64 - 1]);
        let g = graph(
            vec![
                node("Gather", &["w", "idx"], &["g"], vec![]),
                node("Add", &["g", "x"], &["y"], vec![]),
            ],
            vec![input("x", &[3])],
            vec![output("y")],
            vec![w, idx],
        );
        std::fs::write(&path, model(g, 13)).unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(size > ELEMENTS * 4);

    let before = rss_anon();
    let m = OnnxModel::open(&path).unwrap();
    let graph = import(&m, &ImportOptions::default()).unwrap();
    let grown = rss_anon().saturating_sub(before);
    // The tensor shares the map, aligned in the file or not.
    assert!(
        grown < ELEMENTS * 4 / 8,
        "import grew the heap by {grown} bytes for {} bytes of weights",
        ELEMENTS * 4
    );

    let w = graph
        .node_ids()
        .find_map(|id| match &graph.node(id).op {
            Op::Const(t) if t.numel() == ELEMENTS => Some(t.clone()),
            _ => None,
        })
        .expect("the weight is a constant");
    let view = w.view::<f32>().unwrap();
    for i in [0, 1, 999, 1000, ELEMENTS / 2, ELEMENTS - 1] {
        assert_eq!(view[i], weight(i), "element {i}");
    }

    let x = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap();
    let y = interp::run(&graph, &[x]).unwrap();
    let expect = [
        weight(0) + 1.0,
        weight(12_345_678) + 2.0,
        weight(ELEMENTS - 1) + 3.0,
    ];
    assert_eq!(y[0].view::<f32>().unwrap().as_ref(), &expect);
}
