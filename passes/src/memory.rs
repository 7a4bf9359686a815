//! Memory planning: offsets for the intermediate buffers of a program in one arena.
//!
//! Each buffer lives from the step that writes it to the last step that reads it.
//! Buffers are placed one at a time, each at the best-fitting gap among the buffers
//! already placed whose lifetimes overlap its own, so buffers never live together share
//! memory. The order matters and no one order is best for every program: the planner
//! tries largest-first, earliest-first, longest-lived-first and largest-area-first,
//! then seeded random perturbations of the first two within a budget, and keeps the
//! smallest arena; it stops as soon as the arena equals the peak of live bytes, which
//! no plan can beat.

/// A buffer to place: its size in bytes and the first and last step (inclusive) at
/// which it is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub size: usize,
    pub first: usize,
    pub last: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Byte offset of each buffer, in the order given; each a multiple of the alignment.
    pub offsets: Vec<usize>,
    /// Bytes the arena needs.
    pub arena_size: usize,
    /// The most bytes live at any one step: no plan can use less.
    pub peak_live: usize,
}

fn overlaps(a: &Buffer, b: &Buffer) -> bool {
    a.first <= b.last && b.first <= a.last
}

/// Orders buffers for placement: smaller keys are placed first.
type SortKey = fn(&Buffer) -> (usize, usize);

/// The deterministic orders every plan tries.
const ORDERS: [SortKey; 4] = [
    |b| (usize::MAX - b.size, b.first),
    |b| (b.first, usize::MAX - b.size),
    |b| (usize::MAX - (b.last - b.first), usize::MAX - b.size),
    |b| {
        (
            usize::MAX - b.size.saturating_mul(b.last - b.first + 1),
            b.first,
        )
    },
];

/// Overlap tests the randomized search may spend (each order costs about n² / 2).
const SEARCH_BUDGET: usize = 1 << 26;
const MAX_TRIALS: usize = 256;

/// A small deterministic generator: the same program always gets the same plan.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A factor in [0.75, 1.25).
    fn jitter(&mut self) -> f64 {
        0.75 + (self.next() >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }
}

/// Places `buffers` at offsets that are multiples of `align` (a power of two).
pub fn plan(buffers: &[Buffer], align: usize) -> Plan {
    let rounded = |n: usize| n.div_ceil(align) * align;
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let peak_live = (0..steps)
        .map(|s| {
            buffers
                .iter()
                .filter(|b| b.first <= s && s <= b.last)
                .map(|b| rounded(b.size))
                .sum()
        })
        .max()
        .unwrap_or(0);
    let n = buffers.len();
    let mut best = (Vec::new(), usize::MAX);
    let keep = |best: &mut (Vec<usize>, usize), candidate: (Vec<usize>, usize)| {
        if candidate.1 < best.1 {
            *best = candidate;
        }
        best.1 <= peak_live
    };
    for key in ORDERS {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (key(&buffers[i]), i));
        if keep(&mut best, place(buffers, &order, align)) {
            break;
        }
    }
    // No order is best for every program: perturb the two strongest (sizes, and start
    // steps) at random until the plan reaches the lower bound or the budget runs out.
    let trials = (SEARCH_BUDGET / (n * n).max(1)).min(MAX_TRIALS);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for t in 0..trials {
        if best.1 <= peak_live {
            break;
        }
        let mut keys: Vec<(f64, usize)> = (0..n)
            .map(|i| {
                let b = &buffers[i];
                let key = if t % 2 == 0 {
                    -(b.size as f64) * rng.jitter()
                } else {
                    b.first as f64 + (rng.jitter() - 1.0) * 12.0 - b.size as f64 * 1e-12
                };
                (key, i)
            })
            .collect();
        keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let order: Vec<usize> = keys.into_iter().map(|(_, i)| i).collect();
        keep(&mut best, place(buffers, &order, align));
    }
    Plan {
        offsets: best.0,
        arena_size: best.1,
        peak_live,
    }
}

/// Places the buffers in `order`, each at the best-fitting gap; returns the offsets and
/// the arena size.
fn place(buffers: &[Buffer], order: &[usize], align: usize) -> (Vec<usize>, usize) {
    let rounded = |n: usize| n.div_ceil(align) * align;
    let mut offsets = vec![0; buffers.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_size = 0;
    for &i in order {
        let buf = &buffers[i];
        let size = rounded(buf.size);
        if size == 0 {
            continue;
        }
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| overlaps(buf, &buffers[j]))
            .map(|&j| (offsets[j], offsets[j] + rounded(buffers[j].size)))
            .collect();
        busy.sort();
        // The smallest gap that fits, else the end of the busy range.
        let mut best: Option<(usize, usize)> = None;
        let mut cursor = 0;
        for &(start, end) in &busy {
            if start >= cursor + size {
                let gap = start - cursor;
                if best.is_none_or(|(_, g)| gap < g) {
                    best = Some((cursor, gap));
                }
            }
            cursor = cursor.max(end);
        }
        let offset = best.map_or(cursor, |(o, _)| o);
        offsets[i] = offset;
        arena_size = arena_size.max(offset + size);
        placed.push(i);
    }
    (offsets, arena_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(size: usize, first: usize, last: usize) -> Buffer {
        Buffer { size, first, last }
    }

    fn check_disjoint(buffers: &[Buffer], p: &Plan) {
        for i in 0..buffers.len() {
            for j in i + 1..buffers.len() {
                if overlaps(&buffers[i], &buffers[j]) && buffers[i].size > 0 && buffers[j].size > 0
                {
                    let (a0, a1) = (p.offsets[i], p.offsets[i] + buffers[i].size);
                    let (b0, b1) = (p.offsets[j], p.offsets[j] + buffers[j].size);
                    assert!(a1 <= b0 || b1 <= a0, "buffers {i} and {j} collide: {p:?}");
                }
            }
        }
    }

    #[test]
    fn a_chain_reuses_memory() {
        // x0 -> x1 -> x2 -> x3: only two are live at a time.
        let bufs = [b(100, 0, 1), b(100, 1, 2), b(100, 2, 3), b(100, 3, 4)];
        let p = plan(&bufs, 64);
        check_disjoint(&bufs, &p);
        assert_eq!(p.arena_size, 256);
        assert_eq!(p.peak_live, 256);
    }

    #[test]
    fn offsets_are_aligned_and_sizes_rounded() {
        let bufs = [b(1, 0, 5), b(65, 0, 5), b(3, 2, 3)];
        let p = plan(&bufs, 64);
        check_disjoint(&bufs, &p);
        assert!(p.offsets.iter().all(|o| o % 64 == 0));
        assert_eq!(p.arena_size, 128 + 64 + 64);
    }

    #[test]
    fn small_buffers_fill_gaps() {
        // A long-lived big buffer and short ones around a freed hole.
        let bufs = [b(1000, 0, 1), b(1000, 0, 9), b(500, 2, 3), b(400, 4, 5)];
        let p = plan(&bufs, 1);
        check_disjoint(&bufs, &p);
        assert_eq!(p.arena_size, 2000);
        assert_eq!(p.peak_live, 2000);
    }

    #[test]
    fn random_lifetimes_never_collide() {
        let mut s = 12345u64;
        let mut r = |n: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) % n
        };
        for _ in 0..200 {
            let n = 1 + r(30) as usize;
            let bufs: Vec<Buffer> = (0..n)
                .map(|_| {
                    let first = r(20) as usize;
                    b(r(5000) as usize, first, first + r(8) as usize)
                })
                .collect();
            let p = plan(&bufs, 16);
            check_disjoint(&bufs, &p);
            assert!(p.arena_size >= p.peak_live);
        }
    }

    #[test]
    fn empty() {
        let p = plan(&[], 64);
        assert_eq!((p.arena_size, p.peak_live), (0, 0));
    }
}
