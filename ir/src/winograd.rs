//! Winograd's minimal filtering F(m x m, r x r) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016): an `m x m` tile of an `r x r` stride-1
//! correlation from a `t x t` input tile (`t = m + r - 1`) with `t * t` multiplies
//! instead of `r * r * m * m`:
//!
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`
//!
//! Across channels the elementwise product becomes `t * t` independent matrix
//! products (one per position of the transformed tile), which is where the time goes.
//! The interpolation points are 0, ±1, ±2 (t = 6: F(4x4, 3x3), F(3x3, 4x4) and
//! F(2x2, 5x5), which share `Bᵀ`), 0, ±1 (F(2x2, 3x3)) and 0, ±1, ±2, ±1/2 (t = 8:
//! F(6x6, 3x3) and F(4x4, 5x5), sharing theirs), with the point at infinity: the usual
//! choices, whose error for float32 stays within a few 1e-6 relative (the 8x8 tiles'
//! about twice the 6x6 ones'). The 4x4 kernels are those of strided stems split into
//! their phases (`space_to_depth`), which also makes 3x3 ones of 5x5/2 convolutions.
//! F(1x1, 1x1), the identity, saves nothing: it takes pointwise convolutions through
//! the same steps to the plain products' kernel (`Winograd::plain_products`).

/// The transform matrices of one F(m x m, r x r), row-major.
#[derive(Debug)]
pub struct Transform {
    /// Output tile side.
    pub m: usize,
    /// Kernel side.
    pub r: usize,
    /// Input tile side, `m + r - 1`.
    pub t: usize,
    /// `Bᵀ`, `t x t`.
    pub bt: &'static [f64],
    /// `G`, `t x r`.
    pub g: &'static [f64],
    /// `Aᵀ`, `m x t`.
    pub at: &'static [f64],
}

#[rustfmt::skip]
const F2: Transform = Transform {
    m: 2,
    r: 3,
    t: 4,
    bt: &[
        1.0,  0.0, -1.0,  0.0,
        0.0,  1.0,  1.0,  0.0,
        0.0, -1.0,  1.0,  0.0,
        0.0,  1.0,  0.0, -1.0,
    ],
    g: &[
        1.0,  0.0, 0.0,
        0.5,  0.5, 0.5,
        0.5, -0.5, 0.5,
        0.0,  0.0, 1.0,
    ],
    at: &[
        1.0, 1.0,  1.0,  0.0,
        0.0, 1.0, -1.0, -1.0,
    ],
};

/// `Bᵀ` of the points 0, ±1, ±2 and infinity.
#[rustfmt::skip]
const BT6: [f64; 36] = [
    4.0,  0.0, -5.0,  0.0, 1.0, 0.0,
    0.0, -4.0, -4.0,  1.0, 1.0, 0.0,
    0.0,  4.0, -4.0, -1.0, 1.0, 0.0,
    0.0, -2.0, -1.0,  2.0, 1.0, 0.0,
    0.0,  2.0, -1.0, -2.0, 1.0, 0.0,
    0.0,  4.0,  0.0, -5.0, 0.0, 1.0,
];

#[rustfmt::skip]
const F4: Transform = Transform {
    m: 4,
    r: 3,
    t: 6,
    bt: &BT6,
    g: &[
         1.0 / 4.0,         0.0,        0.0,
        -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0,
        -1.0 / 6.0,  1.0 / 6.0, -1.0 / 6.0,
         1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0,
         1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0,
         0.0,        0.0,        1.0,
    ],
    at: &[
        1.0, 1.0,  1.0, 1.0,  1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
        0.0, 1.0,  1.0, 4.0,  4.0, 0.0,
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ],
};

/// F(2x2, 5x5): `G`'s row of point p is `[1, p, .., p⁴]` over the product of p's
/// differences to the other finite points (as in F4's), `Aᵀ` the first two powers.
#[rustfmt::skip]
const F2_5: Transform = Transform {
    m: 2,
    r: 5,
    t: 6,
    bt: &BT6,
    g: &[
         1.0 / 4.0,   0.0,         0.0,        0.0,        0.0,
        -1.0 / 6.0,  -1.0 / 6.0,  -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0,
        -1.0 / 6.0,   1.0 / 6.0,  -1.0 / 6.0,  1.0 / 6.0, -1.0 / 6.0,
         1.0 / 24.0,  1.0 / 12.0,  1.0 / 6.0,  1.0 / 3.0,  2.0 / 3.0,
         1.0 / 24.0, -1.0 / 12.0,  1.0 / 6.0, -1.0 / 3.0,  2.0 / 3.0,
         0.0,         0.0,         0.0,        0.0,        1.0,
    ],
    at: &[
        1.0, 1.0,  1.0, 1.0,  1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 1.0,
    ],
};

/// F(3x3, 4x4), built as F2_5.
#[rustfmt::skip]
const F3_4: Transform = Transform {
    m: 3,
    r: 4,
    t: 6,
    bt: &BT6,
    g: &[
         1.0 / 4.0,   0.0,         0.0,        0.0,
        -1.0 / 6.0,  -1.0 / 6.0,  -1.0 / 6.0, -1.0 / 6.0,
        -1.0 / 6.0,   1.0 / 6.0,  -1.0 / 6.0,  1.0 / 6.0,
         1.0 / 24.0,  1.0 / 12.0,  1.0 / 6.0,  1.0 / 3.0,
         1.0 / 24.0, -1.0 / 12.0,  1.0 / 6.0, -1.0 / 3.0,
         0.0,         0.0,         0.0,        1.0,
    ],
    at: &[
        1.0, 1.0,  1.0, 1.0,  1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
        0.0, 1.0,  1.0, 4.0,  4.0, 1.0,
    ],
};

/// `Bᵀ` of the points 0, ±1, ±2, ±1/2 and infinity: row p holds the coefficients of the
/// product of `x - q` over the other finite points, scaled so that `G` (below) solves
/// the correlation; every finite row negated, so that `G`'s first entry is 1.
#[rustfmt::skip]
const BT8: [f64; 64] = [
    1.0,  0.0, -5.25,  0.0,   5.25,  0.0,  -1.0, 0.0,
    0.0, -1.0, -1.0,   4.25,  4.25, -1.0,  -1.0, 0.0,
    0.0,  1.0, -1.0,  -4.25,  4.25,  1.0,  -1.0, 0.0,
    0.0, -0.5, -0.25,  2.5,   1.25, -2.0,  -1.0, 0.0,
    0.0,  0.5, -0.25, -2.5,   1.25,  2.0,  -1.0, 0.0,
    0.0, -2.0, -4.0,   2.5,   5.0,  -0.5,  -1.0, 0.0,
    0.0,  2.0, -4.0,  -2.5,   5.0,   0.5,  -1.0, 0.0,
    0.0, -1.0,  0.0,   5.25,  0.0,  -5.25,  0.0, 1.0,
];

/// F(4x4, 5x5) on 8x8 input tiles: `Aᵀ` holds the powers of the points; `G`'s row of p
/// is `[1, p, .., p⁴]` over the product of p's differences to the other finite points
/// (negated as `Bᵀ`'s). Its float32 error is about twice F(2x2, 5x5)'s (relative L2 2.6e-6
/// against 1.4e-6 over 48 channels in a numpy model of the kernels).
#[rustfmt::skip]
const F4_5: Transform = Transform {
    m: 4,
    r: 5,
    t: 8,
    bt: &BT8,
    g: &[
         1.0,          0.0,          0.0,         0.0,         0.0,
         2.0 / 9.0,    2.0 / 9.0,    2.0 / 9.0,   2.0 / 9.0,   2.0 / 9.0,
         2.0 / 9.0,   -2.0 / 9.0,    2.0 / 9.0,  -2.0 / 9.0,   2.0 / 9.0,
        -1.0 / 90.0,  -1.0 / 45.0,  -2.0 / 45.0, -4.0 / 45.0, -8.0 / 45.0,
        -1.0 / 90.0,   1.0 / 45.0,  -2.0 / 45.0,  4.0 / 45.0, -8.0 / 45.0,
        -32.0 / 45.0, -16.0 / 45.0, -8.0 / 45.0, -4.0 / 45.0, -2.0 / 45.0,
        -32.0 / 45.0,  16.0 / 45.0, -8.0 / 45.0,  4.0 / 45.0, -2.0 / 45.0,
         0.0,          0.0,          0.0,         0.0,         1.0,
    ],
    at: &[
        1.0, 1.0,  1.0, 1.0,  1.0, 1.0,    1.0,   0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.5,   -0.5,   0.0,
        0.0, 1.0,  1.0, 4.0,  4.0, 0.25,   0.25,  0.0,
        0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 1.0,
    ],
};

/// F(6x6, 3x3) on the 8x8 tiles of F4_5: `G`'s row of p is `[1, p, p²]` over the same
/// products as F4_5's, `Aᵀ` the first six powers.
#[rustfmt::skip]
const F6: Transform = Transform {
    m: 6,
    r: 3,
    t: 8,
    bt: &BT8,
    g: &[
         1.0,          0.0,          0.0,
         2.0 / 9.0,    2.0 / 9.0,    2.0 / 9.0,
         2.0 / 9.0,   -2.0 / 9.0,    2.0 / 9.0,
        -1.0 / 90.0,  -1.0 / 45.0,  -2.0 / 45.0,
        -1.0 / 90.0,   1.0 / 45.0,  -2.0 / 45.0,
        -32.0 / 45.0, -16.0 / 45.0, -8.0 / 45.0,
        -32.0 / 45.0,  16.0 / 45.0, -8.0 / 45.0,
         0.0,          0.0,          1.0,
    ],
    at: &[
        1.0, 1.0,  1.0,  1.0,   1.0,  1.0,      1.0,      0.0,
        0.0, 1.0, -1.0,  2.0,  -2.0,  0.5,     -0.5,      0.0,
        0.0, 1.0,  1.0,  4.0,   4.0,  0.25,     0.25,     0.0,
        0.0, 1.0, -1.0,  8.0,  -8.0,  0.125,   -0.125,    0.0,
        0.0, 1.0,  1.0, 16.0,  16.0,  0.0625,   0.0625,   0.0,
        0.0, 1.0, -1.0, 32.0, -32.0,  0.03125, -0.03125,  1.0,
    ],
};

/// F(1x1, 1x1): the identity. A pointwise convolution of a small plane goes through
/// the steps of Winograd's with plain products (`Winograd::plain_products`): its input
/// into planes of whole vectors, the plane kernel, back with the epilogue.
#[rustfmt::skip]
const F1: Transform = Transform {
    m: 1,
    r: 1,
    t: 1,
    bt: &[1.0],
    g: &[1.0],
    at: &[1.0],
};

/// The transform with output tiles of `m x m` for an `r x r` kernel, if there is one:
/// F(1x1) for 1x1, F(2x2), F(4x4) and F(6x6) for 3x3, F(3x3) for 4x4, F(2x2) and F(4x4)
/// for 5x5.
pub fn transform(m: usize, r: usize) -> Option<&'static Transform> {
    transforms_for(r).find(|f| f.m == m)
}

/// Every transform for an `r x r` kernel.
pub fn transforms_for(r: usize) -> impl Iterator<Item = &'static Transform> {
    [&F1, &F2, &F4, &F6, &F3_4, &F2_5, &F4_5]
        .into_iter()
        .filter(move |f| f.r == r)
}

/// `L x Lᵀ` for a `rows x cols` matrix `L` and a square `cols x cols` tile `x`.
fn sandwich(l: &[f64], rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
    let mut lx = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            lx[i * cols + j] = (0..cols).map(|k| l[i * cols + k] * x[k * cols + j]).sum();
        }
    }
    let mut out = vec![0.0; rows * rows];
    for i in 0..rows {
        for j in 0..rows {
            out[i * rows + j] = (0..cols).map(|k| lx[i * cols + k] * l[j * cols + k]).sum();
        }
    }
    out
}

impl Transform {
    /// `Bᵀ d B` of a `t x t` input tile.
    pub fn input_tile(&self, d: &[f64]) -> Vec<f64> {
        sandwich(self.bt, self.t, self.t, d)
    }

    /// `G g Gᵀ` of an `r x r` kernel: `t x t`.
    pub fn kernel_tile(&self, g: &[f64]) -> Vec<f64> {
        sandwich(self.g, self.t, self.r, g)
    }

    /// `Aᵀ M A` of a `t x t` product tile: the `m x m` outputs.
    pub fn output_tile(&self, p: &[f64]) -> Vec<f64> {
        sandwich(self.at, self.m, self.t, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transform_computes_the_correlation() {
        for (m, r) in [(1, 1), (2, 3), (4, 3), (6, 3), (3, 4), (2, 5), (4, 5)] {
            let f = transform(m, r).unwrap();
            let t = f.t;
            assert_eq!(t, m + r - 1);
            let d: Vec<f64> = (0..t * t)
                .map(|i| ((i * 7919) % 23) as f64 - 11.0)
                .collect();
            let g: Vec<f64> = (0..r * r).map(|i| ((i * 31) % 7) as f64 - 3.0).collect();
            let (u, v) = (f.kernel_tile(&g), f.input_tile(&d));
            let prod: Vec<f64> = u.iter().zip(&v).map(|(a, b)| a * b).collect();
            let y = f.output_tile(&prod);
            for i in 0..m {
                for j in 0..m {
                    let want: f64 = (0..r)
                        .flat_map(|a| (0..r).map(move |b| (a, b)))
                        .map(|(a, b)| d[(i + a) * t + j + b] * g[a * r + b])
                        .sum();
                    assert!((y[i * m + j] - want).abs() < 1e-9, "F({m}, {r}) at {i},{j}");
                }
            }
        }
        assert!(transform(3, 3).is_none());
        assert!(transform(6, 5).is_none());
    }
}
