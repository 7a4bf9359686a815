//! Conv and ConvTranspose.

use cnnc_ir::op::{Conv, ConvTranspose, Epilogue};
use cnnc_ir::{Op, Value};

use crate::error::{ImportError, Result, bail};
use crate::import::NodeCx;
use crate::ops::window::{pad_pairs, per_axis, window};
use crate::ops::{positive, sizes};

/// The kernel dims: the weight's trailing dims, which `kernel_shape` may restate.
fn kernel(cx: &NodeCx, w: Value, x: Value) -> Result<Vec<usize>> {
    let (xt, wt) = (cx.ty(x), cx.ty(w));
    if xt.rank() < 3 || wt.rank() != xt.rank() {
        bail!("expects input and weight of the same rank >= 3, got {xt} and {wt}");
    }
    let from_weight = wt.shape[2..].to_vec();
    if from_weight.contains(&0) {
        bail!("weight {wt} has an empty kernel");
    }
    if let Some(k) = cx.attrs.ints("kernel_shape")?
        && sizes(&k, "kernel_shape")? != from_weight
    {
        bail!("kernel_shape {k:?} does not match the weight {wt}");
    }
    Ok(from_weight)
}

pub fn conv(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let kernel = kernel(cx, w, x)?;
    let input = cx.ty(x).shape[2..].to_vec();
    let win = window(cx, &kernel, &input)?;
    let groups = positive(cx.attrs.int_or("group", 1)?, "group")?;
    let op = Op::Conv(Conv {
        kernel,
        strides: win.strides,
        dilations: win.dilations,
        pads: win.pads,
        groups,
        epilogue: Epilogue::default(),
    });
    Ok(vec![cx.add(op, &cx.inputs())?])
}

pub fn conv_transpose(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let kernel = kernel(cx, w, x)?;
    let input = cx.ty(x).shape[2..].to_vec();
    let n = kernel.len();
    let strides = per_axis(cx, "strides", n)?;
    let dilations = per_axis(cx, "dilations", n)?;
    let groups = positive(cx.attrs.int_or("group", 1)?, "group")?;
    let mut output_padding = match cx.attrs.ints("output_padding")? {
        None => vec![0; n],
        Some(p) if p.len() == n => sizes(&p, "output_padding")?,
        Some(p) => bail!(
            "'output_padding' has {} entries for {n} spatial axes",
            p.len()
        ),
    };
    let auto_pad = cx.attrs.string_or("auto_pad", "NOTSET")?;
    let explicit = cx.attrs.ints("pads")?;
    let output_shape = match cx.attrs.ints("output_shape")? {
        // Some exporters include the batch and channel dims.
        Some(s) if s.len() == n + 2 => Some(sizes(&s[2..], "output_shape")?),
        Some(s) if s.len() == n => Some(sizes(&s, "output_shape")?),
        Some(s) => bail!("'output_shape' {s:?} does not fit {n} spatial axes"),
        None if auto_pad.starts_with("SAME") => {
            Some(input.iter().zip(&strides).map(|(i, s)| i * s).collect())
        }
        None => None,
    };
    if !matches!(
        auto_pad.as_str(),
        "NOTSET" | "VALID" | "SAME_UPPER" | "SAME_LOWER"
    ) {
        bail!("unknown auto_pad '{auto_pad}'");
    }
    if auto_pad != "NOTSET" && explicit.is_some() {
        bail!("'pads' given together with auto_pad {auto_pad}");
    }
    let pads = match output_shape {
        // The padding that yields `output_shape`, split as auto_pad says (the odd one
        // at the start unless SAME_UPPER).
        Some(out) => (0..n)
            .map(|i| {
                let full = (kernel[i] - 1)
                    .checked_mul(dilations[i])
                    .and_then(|k| {
                        strides[i]
                            .checked_mul(input[i].saturating_sub(1))?
                            .checked_add(k + 1)
                    })
                    .and_then(|v| v.checked_add(output_padding[i]))
                    .ok_or_else(|| ImportError::invalid("output size overflows"))?;
                if out[i] >= full {
                    // A larger output gets zeros at the end.
                    output_padding[i] += out[i] - full;
                    return Ok((0, 0));
                }
                let total = full - out[i];
                let small = total / 2;
                Ok(if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                })
            })
            .collect::<Result<_>>()?,
        None => match explicit {
            None => vec![(0, 0); n],
            Some(p) if p.len() == 2 * n => pad_pairs(&sizes(&p, "pads")?),
            Some(p) => bail!("'pads' has {} entries for {n} spatial axes", p.len()),
        },
    };
    let op = Op::ConvTranspose(ConvTranspose {
        kernel,
        strides,
        dilations,
        pads,
        output_padding,
        groups,
        epilogue: Epilogue::default(),
    });
    Ok(vec![cx.add(op, &cx.inputs())?])
}
