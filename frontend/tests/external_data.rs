//! Initializers stored in external files: read relative to the model's folder, sliced by
//! offset and length, and refused when the location leads outside the folder.

use std::path::Path;

use cnnc_frontend::builder::*;
use cnnc_frontend::proto::{DATA_LOCATION_EXTERNAL, StringStringEntryProto, TensorProto};
use cnnc_frontend::{ImportOptions, OnnxModel, import};
use cnnc_ir::{Tensor, interp};

fn external(
    name: &str,
    dims: &[i64],
    location: &str,
    offset: Option<usize>,
    length: Option<usize>,
) -> TensorProto {
    let mut entries = vec![("location", location.to_string())];
    entries.extend(offset.map(|o| ("offset", o.to_string())));
    entries.extend(length.map(|l| ("length", l.to_string())));
    TensorProto {
        dims: dims.to_vec(),
        data_type: cnnc_frontend::proto::data_type::FLOAT,
        name: name.into(),
        data_location: DATA_LOCATION_EXTERNAL,
        external_data: entries
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.into(),
                value: v,
            })
            .collect(),
        ..Default::default()
    }
}

/// `y = x + w` with `w` given by `tensor`.
fn add_model(dir: &Path, tensor: TensorProto) -> std::path::PathBuf {
    let g = graph(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![input("x", &[4])],
        vec![output("y")],
        vec![tensor],
    );
    let path = dir.join("model.onnx");
    std::fs::write(&path, model(g, 13)).unwrap();
    path
}

fn run(path: &Path) -> Result<Vec<f32>, cnnc_frontend::ImportError> {
    let graph = import(&OnnxModel::open(path)?, &ImportOptions::default())?;
    let x = Tensor::from_vec(vec![4], vec![10.0f32, 20.0, 30.0, 40.0]).unwrap();
    let y = interp::run(&graph, &[x]).unwrap();
    Ok(y[0].view::<f32>().unwrap().to_vec())
}

fn write_weights(dir: &Path, name: &str, prefix: usize, values: &[f32]) {
    let mut bytes = vec![0xAAu8; prefix];
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&[0x55; 7]);
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn reads_offset_and_length() {
    let dir = tempfile::tempdir().unwrap();
    // An odd offset: the data is not aligned in the file and must be copied once.
    write_weights(dir.path(), "weights.bin", 13, &[1.0, 2.0, 3.0, 4.0]);
    let path = add_model(
        dir.path(),
        external("w", &[4], "weights.bin", Some(13), Some(16)),
    );
    assert_eq!(run(&path).unwrap(), vec![11.0, 22.0, 33.0, 44.0]);
}

#[test]
fn reads_aligned_data_in_a_subfolder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    write_weights(
        &dir.path().join("data"),
        "w.bin",
        64,
        &[-1.0, -2.0, -3.0, -4.0],
    );
    let path = add_model(
        dir.path(),
        external("w", &[4], "data/w.bin", Some(64), Some(16)),
    );
    assert_eq!(run(&path).unwrap(), vec![9.0, 18.0, 27.0, 36.0]);
}

#[test]
fn length_defaults_to_the_rest_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = [5.0f32, 6.0, 7.0, 8.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.path().join("w.bin"), bytes).unwrap();
    let path = add_model(dir.path(), external("w", &[4], "w.bin", None, None));
    assert_eq!(run(&path).unwrap(), vec![15.0, 26.0, 37.0, 48.0]);
}

#[test]
fn data_beyond_the_end_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_weights(dir.path(), "w.bin", 0, &[1.0, 2.0]);
    let path = add_model(dir.path(), external("w", &[4], "w.bin", Some(4), Some(16)));
    let e = run(&path).unwrap_err();
    assert!(e.message.contains("beyond the end"), "{e}");
    assert!(e.to_string().contains("model.onnx"), "{e}");
}

#[test]
fn length_must_match_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    write_weights(dir.path(), "w.bin", 0, &[1.0, 2.0, 3.0, 4.0]);
    let path = add_model(dir.path(), external("w", &[4], "w.bin", Some(0), Some(12)));
    let e = run(&path).unwrap_err();
    assert!(
        e.message.contains("'w'") && e.message.contains("bytes"),
        "{e}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = add_model(dir.path(), external("w", &[4], "absent.bin", None, None));
    let e = run(&path).unwrap_err();
    assert!(e.to_string().contains("absent.bin"), "{e}");
}

#[test]
fn parent_and_absolute_locations_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    write_weights(outer.path(), "secret.bin", 0, &[1.0, 2.0, 3.0, 4.0]);
    let dir = outer.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for location in [
        "../secret.bin",
        outer.path().join("secret.bin").to_str().unwrap(),
        "sub/../../secret.bin",
    ] {
        let path = add_model(&dir, external("w", &[4], location, None, None));
        let e = run(&path).unwrap_err();
        assert!(
            e.message.contains("inside the model's folder"),
            "{location}: {e}"
        );
    }
}

#[cfg(unix)]
#[test]
fn symlink_out_of_the_folder_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    write_weights(outer.path(), "secret.bin", 0, &[1.0, 2.0, 3.0, 4.0]);
    let dir = outer.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.bin"), dir.join("link.bin")).unwrap();
    let path = add_model(&dir, external("w", &[4], "link.bin", None, None));
    let e = run(&path).unwrap_err();
    assert!(e.message.contains("outside the model's folder"), "{e}");
}

#[test]
fn model_from_memory_cannot_use_external_data() {
    let g = graph(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![input("x", &[4])],
        vec![output("y")],
        vec![external("w", &[4], "w.bin", None, None)],
    );
    let m = OnnxModel::from_bytes(model(g, 13)).unwrap();
    let e = import(&m, &ImportOptions::default()).unwrap_err();
    assert!(e.message.contains("model's folder"), "{e}");
}
