//! Convolution and transposed convolution, 1-D to 3-D.
//!
//! Both work on a 3-D view of the spatial axes: a 1-D or 2-D problem gets leading
//! spatial axes of size 1 (kernel 1, stride 1, no padding), so one loop nest serves all.

use std::ops::Range;

use super::{floats, from_f64};
use crate::op::{Conv, ConvTranspose};
use crate::{IrError, Tensor, TensorType};

/// Spatial geometry of one axis.
#[derive(Clone, Copy)]
pub(crate) struct Axis {
    pub input: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_begin: usize,
}

/// Pads `items` at the front to three spatial axes with a trivial axis.
pub(crate) fn to_3d(mut axes: Vec<Axis>) -> [Axis; 3] {
    let unit = Axis {
        input: 1,
        output: 1,
        kernel: 1,
        stride: 1,
        dilation: 1,
        pad_begin: 0,
    };
    while axes.len() < 3 {
        axes.insert(0, unit);
    }
    [axes[0], axes[1], axes[2]]
}

/// The outputs `o` for which input index `o * stride + offset` lies in `0..input`.
pub(crate) fn valid_outputs(
    output: usize,
    input: usize,
    stride: usize,
    offset: isize,
) -> Range<usize> {
    let s = stride as isize;
    // o * s + offset >= 0  <=>  o >= ceil(-offset / s)
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    // o * s + offset <= input - 1  <=>  o <= floor((input - 1 - offset) / s)
    let top = input as isize - 1 - offset;
    let hi = if top < 0 { 0 } else { top / s + 1 };
    let lo = (lo as usize).min(output);
    lo..(hi as usize).clamp(lo, output)
}

fn axes_of(
    x: &[usize],
    out: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads: &[(usize, usize)],
) -> [Axis; 3] {
    to_3d(
        (0..kernel.len())
            .map(|i| Axis {
                input: x[2 + i],
                output: out[2 + i],
                kernel: kernel[i],
                stride: strides[i],
                dilation: dilations[i],
                pad_begin: pads[i].0,
            })
            .collect(),
    )
}

pub fn conv(c: &Conv, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let (x, w) = (floats(inputs[0])?, floats(inputs[1])?);
    let bias = inputs.get(2).map(|b| floats(b)).transpose()?;
    let xs = inputs[0].shape();
    let (n, cin, m) = (xs[0], xs[1], out.shape[1]);
    let [ad, ah, aw] = axes_of(xs, &out.shape, &c.kernel, &c.strides, &c.dilations, &c.pads);
    let (cg, mg) = (cin / c.groups, m / c.groups);
    let in_plane = ad.input * ah.input * aw.input;
    let out_plane = ad.output * ah.output * aw.output;
    let k_size = ad.kernel * ah.kernel * aw.kernel;
    let mut y = vec![0f64; n * m * out_plane];
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            let acc = &mut y[(b * m + oc) * out_plane..][..out_plane];
            acc.fill(bias.as_ref().map_or(0.0, |v| v[oc] as f64));
            for ic in 0..cg {
                let plane = &x[(b * cin + g * cg + ic) * in_plane..][..in_plane];
                let wk = &w[(oc * cg + ic) * k_size..][..k_size];
                for kd in 0..ad.kernel {
                    for kh in 0..ah.kernel {
                        for kw in 0..aw.kernel {
                            let wv = wk[(kd * ah.kernel + kh) * aw.kernel + kw] as f64;
                            accumulate(acc, plane, wv, [ad, ah, aw], [kd, kh, kw]);
                        }
                    }
                }
            }
        }
    }
    from_f64(out.shape.clone(), y)
}

/// `acc[o] += wv * plane[o * stride + k * dilation - pad]` over every output position
/// whose input position is inside the plane.
fn accumulate(acc: &mut [f64], plane: &[f32], wv: f64, a: [Axis; 3], k: [usize; 3]) {
    let off = |i: usize| (k[i] * a[i].dilation) as isize - a[i].pad_begin as isize;
    let rd = valid_outputs(a[0].output, a[0].input, a[0].stride, off(0));
    let rh = valid_outputs(a[1].output, a[1].input, a[1].stride, off(1));
    let rw = valid_outputs(a[2].output, a[2].input, a[2].stride, off(2));
    for od in rd {
        let id = (od as isize * a[0].stride as isize + off(0)) as usize;
        for oh in rh.clone() {
            let ih = (oh as isize * a[1].stride as isize + off(1)) as usize;
            let out_row = &mut acc[(od * a[1].output + oh) * a[2].output..][..a[2].output];
            let in_row = &plane[(id * a[1].input + ih) * a[2].input..][..a[2].input];
            for ow in rw.clone() {
                let iw = (ow as isize * a[2].stride as isize + off(2)) as usize;
                out_row[ow] += wv * in_row[iw] as f64;
            }
        }
    }
}

pub fn conv_transpose(
    c: &ConvTranspose,
    inputs: &[&Tensor],
    out: &TensorType,
) -> Result<Tensor, IrError> {
    let (x, w) = (floats(inputs[0])?, floats(inputs[1])?);
    let bias = inputs.get(2).map(|b| floats(b)).transpose()?;
    let xs = inputs[0].shape();
    let (n, cin, m) = (xs[0], xs[1], out.shape[1]);
    let [ad, ah, aw] = scatter_axes(c, xs, out);
    let (cg, mg) = (cin / c.groups, m / c.groups);
    let in_plane = ad.output * ah.output * aw.output;
    let out_plane = ad.input * ah.input * aw.input;
    let k_size = ad.kernel * ah.kernel * aw.kernel;
    let mut y = vec![0f64; n * m * out_plane];
    for b in 0..n {
        for oc in 0..m {
            let (g, mo) = (oc / mg, oc % mg);
            let acc = &mut y[(b * m + oc) * out_plane..][..out_plane];
            acc.fill(bias.as_ref().map_or(0.0, |v| v[oc] as f64));
            for ic in 0..cg {
                let ci = g * cg + ic;
                let plane = &x[(b * cin + ci) * in_plane..][..in_plane];
                let wk = &w[(ci * mg + mo) * k_size..][..k_size];
                for kd in 0..ad.kernel {
                    for kh in 0..ah.kernel {
                        for kw in 0..aw.kernel {
                            let wv = wk[(kd * ah.kernel + kh) * aw.kernel + kw] as f64;
                            scatter(acc, plane, wv, [ad, ah, aw], [kd, kh, kw]);
                        }
                    }
                }
            }
        }
    }
    from_f64(out.shape.clone(), y)
}

/// The columns `[N, M*K, spatial...]` of a transposed convolution summed into its
/// output (see `Op::Col2Im`), plus the bias.
pub fn col2im(c: &ConvTranspose, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let cols = floats(inputs[0])?;
    let bias = inputs.get(1).map(|b| floats(b)).transpose()?;
    let xs = inputs[0].shape();
    let (n, m) = (xs[0], out.shape[1]);
    let [ad, ah, aw] = scatter_axes(c, xs, out);
    let in_plane = ad.output * ah.output * aw.output;
    let out_plane = ad.input * ah.input * aw.input;
    let k_size = ad.kernel * ah.kernel * aw.kernel;
    let mg = m / c.groups;
    let mut y = vec![0f64; n * m * out_plane];
    for b in 0..n {
        for oc in 0..m {
            let (g, mo) = (oc / mg, oc % mg);
            let acc = &mut y[(b * m + oc) * out_plane..][..out_plane];
            acc.fill(bias.as_ref().map_or(0.0, |v| v[oc] as f64));
            for kd in 0..ad.kernel {
                for kh in 0..ah.kernel {
                    for kw in 0..aw.kernel {
                        let k = (kd * ah.kernel + kh) * aw.kernel + kw;
                        let channel = b * m * k_size + (g * k_size + k) * mg + mo;
                        let plane = &cols[channel * in_plane..][..in_plane];
                        scatter(acc, plane, 1.0, [ad, ah, aw], [kd, kh, kw]);
                    }
                }
            }
        }
    }
    from_f64(out.shape.clone(), y)
}

/// The axes of a transposed convolution's scatter from `xs` to `out`. Roles swap: the
/// scatter runs from input positions to output positions, so the "output" of each axis
/// is the op's input and vice versa.
fn scatter_axes(c: &ConvTranspose, xs: &[usize], out: &TensorType) -> [Axis; 3] {
    to_3d(
        (0..c.kernel.len())
            .map(|i| Axis {
                input: out.shape[2 + i],
                output: xs[2 + i],
                kernel: c.kernel[i],
                stride: c.strides[i],
                dilation: c.dilations[i],
                pad_begin: c.pads[i].0,
            })
            .collect(),
    )
}

/// `acc[i * stride + k * dilation - pad] += wv * plane[i]` for every input position `i`
/// (here `Axis::output`) whose target lies inside the output (here `Axis::input`).
fn scatter(acc: &mut [f64], plane: &[f32], wv: f64, a: [Axis; 3], k: [usize; 3]) {
    let off = |i: usize| (k[i] * a[i].dilation) as isize - a[i].pad_begin as isize;
    let rd = valid_outputs(a[0].output, a[0].input, a[0].stride, off(0));
    let rh = valid_outputs(a[1].output, a[1].input, a[1].stride, off(1));
    let rw = valid_outputs(a[2].output, a[2].input, a[2].stride, off(2));
    for xd in rd {
        let od = (xd as isize * a[0].stride as isize + off(0)) as usize;
        for xh in rh.clone() {
            let oh = (xh as isize * a[1].stride as isize + off(1)) as usize;
            let out_row = &mut acc[(od * a[1].input + oh) * a[2].input..][..a[2].input];
            let in_row = &plane[(xd * a[1].output + xh) * a[2].output..][..a[2].output];
            for xw in rw.clone() {
                let ow = (xw as isize * a[2].stride as isize + off(2)) as usize;
                out_row[ow] += wv * in_row[xw] as f64;
            }
        }
    }
}
