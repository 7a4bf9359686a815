//! Winograd's input and output transforms (see [`crate::winograd`]), tile by tile in
//! f64, rounded once to f32.

use super::{floats, from_f64};
use crate::op::Winograd;
use crate::winograd::Transform;
use crate::{IrError, Tensor, TensorType};

fn transform_of(w: &Winograd) -> Result<&'static Transform, IrError> {
    w.transform().ok_or_else(|| {
        IrError::invalid(format!(
            "no Winograd transform for tile {} and kernel {}",
            w.tile, w.kernel
        ))
    })
}

/// `[N, C, H, W]` to the transformed tiles `[N, t*t*C, plane]`.
pub fn input(w: &Winograd, x: &Tensor, out: &TensorType) -> Result<Tensor, IrError> {
    let f = transform_of(w)?;
    let (xv, s) = (floats(x)?, x.shape());
    let (n, c, h, wd) = (s[0], s[1], s[2], s[3]);
    let [th_n, tw_n] = w.tiles();
    // Tiles are `plane_len` apart: the positions past the last tile stay zero.
    let (t, tiles) = (f.t, w.plane_len());
    let mut y = vec![0f64; out.numel()];
    let mut d = vec![0f64; t * t];
    for b in 0..n {
        for ch in 0..c {
            let plane = &xv[(b * c + ch) * h * wd..][..h * wd];
            for th in 0..th_n {
                for tw in 0..tw_n {
                    for i in 0..t {
                        for j in 0..t {
                            let r = (th * f.m + i) as isize - w.pads[0] as isize;
                            let col = (tw * f.m + j) as isize - w.pads[1] as isize;
                            let inside =
                                (0..h as isize).contains(&r) && (0..wd as isize).contains(&col);
                            d[i * t + j] = if inside {
                                plane[r as usize * wd + col as usize] as f64
                            } else {
                                0.0
                            };
                        }
                    }
                    for (xi, v) in f.input_tile(&d).into_iter().enumerate() {
                        y[((b * t * t + xi) * c + ch) * tiles + th * tw_n + tw] = v;
                    }
                }
            }
        }
    }
    from_f64(out.shape.clone(), y)
}

/// The products `[N, t*t*M, plane]` and the bias `[M]` to `[N, M, out]` (without the
/// epilogue, which the caller applies).
pub fn output(w: &Winograd, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor, IrError> {
    let f = transform_of(w)?;
    let (p, bias) = (floats(inputs[0])?, floats(inputs[1])?);
    let (n, m) = (out.shape[0], out.shape[1]);
    let [oh, ow] = w.out;
    let [th_n, tw_n] = w.tiles();
    let (t, tiles) = (f.t, w.plane_len());
    let mut y = vec![0f64; out.numel()];
    let mut tile = vec![0f64; t * t];
    for b in 0..n {
        for ch in 0..m {
            for th in 0..th_n {
                for tw in 0..tw_n {
                    for (xi, v) in tile.iter_mut().enumerate() {
                        *v = p[((b * t * t + xi) * m + ch) * tiles + th * tw_n + tw] as f64;
                    }
                    let o = f.output_tile(&tile);
                    for i in 0..f.m.min(oh - th * f.m) {
                        for j in 0..f.m.min(ow - tw * f.m) {
                            let at = ((b * m + ch) * oh + th * f.m + i) * ow + tw * f.m + j;
                            y[at] = o[i * f.m + j] + bias[ch] as f64;
                        }
                    }
                }
            }
        }
    }
    from_f64(out.shape.clone(), y)
}
