//! The output columns of a sliding window (a convolution's or a pool's) along one axis,
//! split where the kernel taps that fall inside the input change: the left border, the
//! interior, the right border. Code generation runs each segment with tiles
//! specialized to its taps (no branch per element); the tiling cost model prices the
//! same tiles.

/// One axis of a window: the input and output lengths, the kernel's, its stride and
/// dilation, and the padding before the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub input: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad: usize,
}

/// Output columns `start..start + len` that read the kernel taps `taps.0..taps.1`
/// (those inside the input; an empty range when none is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub len: usize,
    pub taps: (usize, usize),
}

/// The output columns of `axis` in segments of equal valid taps, in order.
pub fn segments(axis: Axis) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for o in 0..axis.output {
        let inside = |k: &usize| {
            let i = (o * axis.stride + k * axis.dilation) as isize - axis.pad as isize;
            i >= 0 && (i as usize) < axis.input
        };
        let taps = (0..axis.kernel)
            .filter(inside)
            .fold(None, |r: Option<(usize, usize)>, k| {
                Some(r.map_or((k, k + 1), |(lo, _)| (lo, k + 1)))
            })
            .unwrap_or((0, 0));
        match out.last_mut() {
            Some(s) if s.taps == taps => s.len += 1,
            _ => out.push(Segment {
                start: o,
                len: 1,
                taps,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borders_and_interior() {
        // 3 taps, pad 1, stride 1 over 5 columns: one border column each side.
        let axis = Axis {
            input: 5,
            output: 5,
            kernel: 3,
            stride: 1,
            dilation: 1,
            pad: 1,
        };
        let lens: Vec<_> = segments(axis).iter().map(|s| (s.len, s.taps)).collect();
        assert_eq!(lens, [(1, (1, 3)), (3, (0, 3)), (1, (0, 2))]);
        // Stride 2 over 14 columns to 7: only the first column reaches the padding.
        let axis = Axis {
            input: 14,
            output: 7,
            stride: 2,
            ..axis
        };
        let lens: Vec<_> = segments(axis).iter().map(|s| (s.len, s.taps)).collect();
        assert_eq!(lens, [(1, (1, 3)), (6, (0, 3))]);
    }
}
