//! Resize (opset 10+) and Upsample (opsets 7-9).

use cnnc_ir::op::{CoordMode, NearestMode, Resize, ResizeMode};
use cnnc_ir::{DType, Op, Value};

use crate::error::{Result, bail, unsupported};
use crate::import::NodeCx;
use crate::ops::{axis, sizes};

/// Output dims for per-axis scales, as ONNX computes them: `floor(scale * input)` in
/// double precision.
fn scaled_sizes(input: &[usize], scales: &[f64]) -> Vec<usize> {
    input
        .iter()
        .zip(scales)
        .map(|(&d, &s)| (s * d as f64) as usize)
        .collect()
}

fn valid_scale(s: f64) -> bool {
    s.is_finite() && s > 0.0
}

fn float_scales(cx: &mut NodeCx, input: usize, rank: usize) -> Result<Option<Vec<f64>>> {
    match cx.static_input(input, "scales")? {
        None => Ok(None),
        Some(t) if t.numel() == 0 => Ok(None),
        Some(t) if t.dtype() == DType::F32 => {
            let s: Vec<f64> = t.view::<f32>()?.iter().map(|&v| v as f64).collect();
            if s.len() != rank {
                bail!("{} scales for rank {rank}", s.len());
            }
            Ok(Some(s))
        }
        Some(t) => bail!("scales must be float32, got {}", t.ty()),
    }
}

/// Upsample, and Resize before opset 11 (which has Upsample's semantics): the source
/// coordinate is `out / scale`.
fn legacy(cx: &mut NodeCx, x: Value, rank: usize) -> Result<Vec<Value>> {
    let scales = if cx.op_type() == "Upsample" && cx.opset() < 9 {
        cx.attrs
            .floats("scales")?
            .map(|s| s.iter().map(|&v| v as f64).collect::<Vec<_>>())
    } else {
        float_scales(cx, 1, rank)?
    };
    let Some(scales) = scales else {
        bail!("scales are required");
    };
    if scales.len() != rank || !scales.iter().all(|&s| valid_scale(s)) {
        bail!("scales {scales:?} must be positive, one per axis");
    }
    // Nearest rounds down when upsampling and up when downsampling (as onnxruntime
    // and the ONNX tests of that opset do); one Resize cannot do both.
    let down = scales.iter().any(|&s| s < 1.0);
    let up = scales.iter().any(|&s| s > 1.0);
    let nearest = match (down, up) {
        (true, true) => unsupported!(
            "{} nearest that upsamples some axes and downsamples others",
            cx.op_type()
        ),
        (true, false) => NearestMode::Ceil,
        _ => NearestMode::Floor,
    };
    let mode = match cx.attrs.string_or("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest(nearest),
        "linear" | "bilinear" => ResizeMode::Linear,
        other => unsupported!("{} mode '{other}'", cx.op_type()),
    };
    let sizes = scaled_sizes(&cx.ty(x).shape, &scales);
    let r = Resize {
        mode,
        coord: CoordMode::Asymmetric,
        scales,
        sizes,
        exclude_outside: false,
    };
    Ok(vec![cx.add(Op::Resize(r), &[x])?])
}

pub fn resize(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let input = cx.ty(x).shape.clone();
    let rank = input.len();
    if cx.op_type() == "Upsample" || cx.opset() < 11 {
        return legacy(cx, x, rank);
    }
    if cx.attrs.bool_or("antialias", false)? {
        unsupported!("Resize with antialias");
    }
    // Only used by tf_crop_and_resize, which is refused below.
    cx.attrs.ignore(&["extrapolation_value"]);
    let axes = match cx.attrs.ints("axes")? {
        None => (0..rank).collect(),
        Some(a) => a
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<Vec<_>>>()?,
    };
    let n = axes.len();
    let given_scales = float_scales(cx, 2, n)?;
    let given_sizes = match cx.static_ints(3, "sizes")? {
        Some(s) if !s.is_empty() => {
            if s.len() != n {
                bail!("{} sizes for {n} axes", s.len());
            }
            Some(sizes(&s, "sizes")?)
        }
        _ => None,
    };
    let policy = cx.attrs.string_or("keep_aspect_ratio_policy", "stretch")?;
    let mut scales = vec![1.0f64; rank];
    let mut out = input.clone();
    match (given_scales, given_sizes) {
        (Some(s), None) => {
            for (i, &a) in axes.iter().enumerate() {
                if !valid_scale(s[i]) {
                    bail!("scale {} must be positive", s[i]);
                }
                scales[a] = s[i];
            }
            out = scaled_sizes(&input, &scales);
        }
        (None, Some(sz)) => {
            let ratios: Vec<f64> = axes
                .iter()
                .zip(&sz)
                .map(|(&a, &s)| s as f64 / input[a] as f64)
                .collect();
            let uniform = match policy.as_str() {
                "stretch" => None,
                "not_larger" => ratios.iter().copied().reduce(f64::min),
                "not_smaller" => ratios.iter().copied().reduce(f64::max),
                other => bail!("unknown keep_aspect_ratio_policy '{other}'"),
            };
            for (i, &a) in axes.iter().enumerate() {
                match uniform {
                    None => {
                        scales[a] = ratios[i];
                        out[a] = sz[i];
                    }
                    Some(s) => {
                        scales[a] = s;
                        // Rounded half up, as the reference does.
                        out[a] = (s * input[a] as f64 + 0.5) as usize;
                    }
                }
            }
        }
        (Some(_), Some(_)) => bail!("both scales and sizes are given"),
        (None, None) => bail!("one of scales and sizes is required"),
    }
    let coord = match cx
        .attrs
        .string_or("coordinate_transformation_mode", "half_pixel")?
        .as_str()
    {
        "half_pixel" => CoordMode::HalfPixel,
        "half_pixel_symmetric" => CoordMode::HalfPixelSymmetric,
        "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
        "align_corners" => CoordMode::AlignCorners,
        "asymmetric" => CoordMode::Asymmetric,
        "tf_half_pixel_for_nn" => CoordMode::TfHalfPixelForNn,
        "tf_crop_and_resize" => unsupported!("Resize with tf_crop_and_resize"),
        other => bail!("unknown coordinate_transformation_mode '{other}'"),
    };
    let mode = match cx.attrs.string_or("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest(
            match cx
                .attrs
                .string_or("nearest_mode", "round_prefer_floor")?
                .as_str()
            {
                "round_prefer_floor" => NearestMode::RoundPreferFloor,
                "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                "floor" => NearestMode::Floor,
                "ceil" => NearestMode::Ceil,
                other => bail!("unknown nearest_mode '{other}'"),
            },
        ),
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic {
            a: cx.attrs.float_or("cubic_coeff_a", -0.75)?,
        },
        other => bail!("unknown mode '{other}'"),
    };
    // Attributes of the other modes do not change the result.
    cx.attrs.ignore(&["nearest_mode", "cubic_coeff_a"]);
    let exclude_outside = cx.attrs.bool_or("exclude_outside", false)?;
    let r = Resize {
        mode,
        coord,
        scales,
        sizes: out,
        exclude_outside,
    };
    Ok(vec![cx.add(Op::Resize(r), &[x])?])
}
