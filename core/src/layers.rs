//! f32 layers for one image in NHWC layout (element `(y, x, c)` at `(y·W + x)·C + c`),
//! convolution weights OHWI (`[C_out][k_h][k_w][C_in / groups]`), fc weights `[out][in]`.
//!
//! Every function checks its buffer lengths against the shape it is given and returns
//! [`LayerError`] instead of panicking. Parameters come through the [`Weights`] trait, which
//! is implemented for `[f32]` and for [`crate::format::TensorView`] (unaligned bytes of a
//! model file), so the same code runs on RAM copies and on a memory-mapped/flash file.
//!
//! Summation order (fixed, the same for every `Weights` implementation): dot products use 8
//! interleaved partial sums (`acc[i % 8] += w[i]·x[i]`), combined pairwise at the end. Error
//! bound against exact arithmetic: `|ŷ − y| ≤ γ_n · Σ|w_i x_i|` with `γ_n = n·u / (1 − n·u)`,
//! `u = 2⁻²⁴`, `n` the number of terms (Higham, Accuracy and Stability, §3.1).

use crate::arch::Shape3;

/// Shape or buffer problems in a layer call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerError {
    /// An argument has the wrong number of elements.
    Len {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// The shape parameters are inconsistent (zero sizes, groups not dividing channels,
    /// kernel larger than the padded input, overflow...).
    Shape(&'static str),
}

impl core::fmt::Display for LayerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayerError::Len {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} elements, got {got}"),
            LayerError::Shape(w) => write!(f, "bad layer shape: {w}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LayerError {}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), LayerError> {
    if expected == got {
        Ok(())
    } else {
        Err(LayerError::Len {
            what,
            expected,
            got,
        })
    }
}

/// Read access to a parameter vector.
pub trait Weights {
    /// Number of elements.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element `i`. Callers guarantee `i < len()` (the layers check lengths first); an
    /// implementation may panic otherwise.
    fn at(&self, i: usize) -> f32;
    /// `Σ_i self[off + i] · x[i]` in the crate's fixed summation order.
    /// Callers guarantee `off + x.len() ≤ len()`.
    fn dot(&self, off: usize, x: &[f32]) -> f32;
    /// Four dot products with the rows starting at `off + j·stride` (`j = 0..4`), each in
    /// exactly [`Weights::dot`]'s order, so the results are bit-identical to four `dot`
    /// calls (implementations only share the loads of `x`).
    fn dot4(&self, off: usize, stride: usize, x: &[f32]) -> [f32; 4] {
        core::array::from_fn(|j| self.dot(off + j * stride, x))
    }
}

#[inline(always)]
fn combine(acc: [f32; 8], tail: f32) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[inline(always)]
fn le(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Source of 8-float chunks: `[f32]` or little-endian bytes.
trait Lanes {
    /// Number of f32.
    fn n(&self) -> usize;
    /// Floats `8·i .. 8·i + 8` (caller ensures `8·i + 8 ≤ n`).
    fn chunk(&self, i: usize) -> [f32; 8];
    /// Float `i`.
    fn one(&self, i: usize) -> f32;
}

impl Lanes for &[f32] {
    #[inline(always)]
    fn n(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn chunk(&self, i: usize) -> [f32; 8] {
        let c: &[f32; 8] = self[8 * i..8 * i + 8].try_into().unwrap_or(&[0.0; 8]);
        *c
    }
    #[inline(always)]
    fn one(&self, i: usize) -> f32 {
        self[i]
    }
}

struct Le<'a>(&'a [u8]);

impl Lanes for Le<'_> {
    #[inline(always)]
    fn n(&self) -> usize {
        self.0.len() / 4
    }
    #[inline(always)]
    fn chunk(&self, i: usize) -> [f32; 8] {
        let c: &[u8; 32] = self.0[32 * i..32 * i + 32].try_into().unwrap_or(&[0; 32]);
        core::array::from_fn(|l| {
            f32::from_le_bytes([c[4 * l], c[4 * l + 1], c[4 * l + 2], c[4 * l + 3]])
        })
    }
    #[inline(always)]
    fn one(&self, i: usize) -> f32 {
        le(&self.0[4 * i..4 * i + 4])
    }
}

/// The crate's dot product: 8 interleaved partial sums, then pairwise combination, then
/// the sequential tail. `R` rows share the loads of `x`; row `j`'s result is independent
/// of `R` (bit-identical to computing it alone).
#[inline(always)]
fn dot_rows<const R: usize, L: Lanes>(rows: [L; R], x: &[f32]) -> [f32; R] {
    let n = x.len();
    debug_assert!(rows.iter().all(|r| r.n() >= n));
    let full = n / 8;
    let mut acc = [[0.0f32; 8]; R];
    for i in 0..full {
        let xc: &[f32; 8] = x[8 * i..8 * i + 8].try_into().unwrap_or(&[0.0; 8]);
        for j in 0..R {
            let w = rows[j].chunk(i);
            for l in 0..8 {
                acc[j][l] += w[l] * xc[l];
            }
        }
    }
    core::array::from_fn(|j| {
        let mut tail = 0.0f32;
        for (i, &xv) in x.iter().enumerate().skip(8 * full) {
            tail += rows[j].one(i) * xv;
        }
        combine(acc[j], tail)
    })
}

/// `Σ w[i]·x[i]` with the crate's summation order (over `min(w.len(), x.len())` terms).
#[inline]
pub fn dot(w: &[f32], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    dot_rows([&w[..n]], &x[..n])[0]
}

/// [`dot`] with the weights given as little-endian f32 bytes (any alignment).
#[inline]
pub fn dot_le_bytes(w: &[u8], x: &[f32]) -> f32 {
    let n = (w.len() / 4).min(x.len());
    dot_rows([Le(&w[..4 * n])], &x[..n])[0]
}

/// [`dot`] of four weight rows (each at least `x.len()` long) with the same `x`.
#[inline]
pub fn dot4(r: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    let n = r.iter().map(|w| w.len()).fold(x.len(), usize::min);
    dot_rows(r.map(|w| &w[..n]), &x[..n])
}

/// [`dot4`] with the rows as little-endian f32 bytes.
#[inline]
pub fn dot4_le_bytes(r: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    let n = r.iter().map(|w| w.len() / 4).fold(x.len(), usize::min);
    dot_rows(r.map(|w| Le(&w[..4 * n])), &x[..n])
}

impl Weights for [f32] {
    fn len(&self) -> usize {
        <[f32]>::len(self)
    }
    fn at(&self, i: usize) -> f32 {
        self[i]
    }
    fn dot(&self, off: usize, x: &[f32]) -> f32 {
        dot(&self[off..off + x.len()], x)
    }
    fn dot4(&self, off: usize, stride: usize, x: &[f32]) -> [f32; 4] {
        let n = x.len();
        let row = |j: usize| &self[off + j * stride..off + j * stride + n];
        dot4([row(0), row(1), row(2), row(3)], x)
    }
}

impl Weights for crate::format::TensorView<'_> {
    fn len(&self) -> usize {
        crate::format::TensorView::len(self)
    }
    fn at(&self, i: usize) -> f32 {
        le(&self.bytes()[4 * i..4 * i + 4])
    }
    fn dot(&self, off: usize, x: &[f32]) -> f32 {
        dot_le_bytes(&self.bytes()[4 * off..4 * (off + x.len())], x)
    }
    fn dot4(&self, off: usize, stride: usize, x: &[f32]) -> [f32; 4] {
        let n = x.len();
        let b = self.bytes();
        let row = |j: usize| &b[4 * (off + j * stride)..4 * (off + j * stride + n)];
        dot4_le_bytes([row(0), row(1), row(2), row(3)], x)
    }
}

impl<T: Weights + ?Sized> Weights for &T {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn at(&self, i: usize) -> f32 {
        (**self).at(i)
    }
    fn dot(&self, off: usize, x: &[f32]) -> f32 {
        (**self).dot(off, x)
    }
    fn dot4(&self, off: usize, stride: usize, x: &[f32]) -> [f32; 4] {
        (**self).dot4(off, stride, x)
    }
}

/// Geometry of a 2-D convolution on one NHWC image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub input: Shape3,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    pub groups: usize,
}

impl Conv2d {
    /// Square kernel `k`, `groups = 1`.
    pub fn new(input: Shape3, out_c: usize, k: usize, stride: usize, pad: usize) -> Conv2d {
        Conv2d {
            input,
            out_c,
            kh: k,
            kw: k,
            stride,
            pad,
            groups: 1,
        }
    }

    /// Output shape: `H_out = (H + 2·pad − k_h) / stride + 1` (floor), same for W.
    pub fn output(&self) -> Result<Shape3, LayerError> {
        let Conv2d {
            input,
            out_c,
            kh,
            kw,
            stride,
            pad,
            groups,
        } = *self;
        if input.h == 0 || input.w == 0 || input.c == 0 || out_c == 0 {
            return Err(LayerError::Shape("zero-sized dimension"));
        }
        if kh == 0 || kw == 0 || stride == 0 {
            return Err(LayerError::Shape("kernel and stride must be ≥ 1"));
        }
        if groups == 0 || input.c % groups != 0 || out_c % groups != 0 {
            return Err(LayerError::Shape("groups must divide C_in and C_out"));
        }
        let pad2 = pad.checked_mul(2).ok_or(LayerError::Shape("overflow"))?;
        let ph = input
            .h
            .checked_add(pad2)
            .ok_or(LayerError::Shape("overflow"))?;
        let pw = input
            .w
            .checked_add(pad2)
            .ok_or(LayerError::Shape("overflow"))?;
        if ph > isize::MAX as usize || pw > isize::MAX as usize {
            return Err(LayerError::Shape("overflow"));
        }
        if ph < kh || pw < kw {
            return Err(LayerError::Shape("kernel larger than padded input"));
        }
        let out = Shape3::new((ph - kh) / stride + 1, (pw - kw) / stride + 1, out_c);
        self.input_len()?;
        out.h
            .checked_mul(out.w)
            .and_then(|v| v.checked_mul(out.c))
            .ok_or(LayerError::Shape("overflow"))?;
        self.weight_len()?;
        Ok(out)
    }

    fn input_len(&self) -> Result<usize, LayerError> {
        self.input
            .h
            .checked_mul(self.input.w)
            .and_then(|v| v.checked_mul(self.input.c))
            .ok_or(LayerError::Shape("overflow"))
    }

    /// `C_out · k_h · k_w · C_in / groups`.
    pub fn weight_len(&self) -> Result<usize, LayerError> {
        self.out_c
            .checked_mul(self.kh)
            .and_then(|v| v.checked_mul(self.kw))
            .and_then(|v| v.checked_mul(self.input.c / self.groups.max(1)))
            .ok_or(LayerError::Shape("overflow"))
    }
}

/// `output = conv(input, weights) + bias`. NHWC input/output, OHWI weights, zero padding.
///
/// Each output is `bias[o] + Σ_{ky} dot(row ky)` where a row is the contiguous run of valid
/// `(kx, ci)` taps (for `groups > 1`, one dot per `kx`); taps in the padding are skipped.
pub fn conv2d<W: Weights + ?Sized, B: Weights + ?Sized>(
    p: &Conv2d,
    input: &[f32],
    weights: &W,
    bias: Option<&B>,
    output: &mut [f32],
) -> Result<(), LayerError> {
    let out = p.output()?;
    check_len("conv input", p.input_len()?, input.len())?;
    check_len("conv weights", p.weight_len()?, weights.len())?;
    if let Some(b) = bias {
        check_len("conv bias", p.out_c, b.len())?;
    }
    check_len("conv output", out.len(), output.len())?;
    let (h, w, cin) = (p.input.h, p.input.w, p.input.c);
    let g = p.groups;
    let cig = cin / g;
    let cog = p.out_c / g;
    let wrow = p.kw * cig; // weights per (o, ky)
    let wo_len = p.kh * wrow; // weights per output channel
    for oy in 0..out.h {
        let iy0 = (oy * p.stride) as isize - p.pad as isize;
        let ky_lo = (-iy0).max(0) as usize;
        let ky_hi = ((h as isize - iy0).min(p.kh as isize)).max(0) as usize;
        for ox in 0..out.w {
            let ix0 = (ox * p.stride) as isize - p.pad as isize;
            let kx_lo = (-ix0).max(0) as usize;
            let kx_hi = ((w as isize - ix0).min(p.kw as isize)).max(0) as usize;
            let obase = (oy * out.w + ox) * p.out_c;
            let orow = &mut output[obase..obase + p.out_c];
            let bias_at = |o: usize| match bias {
                Some(b) => b.at(o),
                None => 0.0,
            };
            let ix_lo = (ix0 + kx_lo as isize) as usize;
            let mut o = 0;
            if g == 1 && kx_lo < kx_hi {
                // Four output channels at a time share the input loads.
                let n = (kx_hi - kx_lo) * cin;
                while o + 4 <= p.out_c {
                    let mut acc: [f32; 4] = core::array::from_fn(|j| bias_at(o + j));
                    for ky in ky_lo..ky_hi {
                        let iy = (iy0 + ky as isize) as usize;
                        let ib = (iy * w + ix_lo) * cin;
                        let woff = o * wo_len + ky * wrow + kx_lo * cin;
                        let d = weights.dot4(woff, wo_len, &input[ib..ib + n]);
                        for j in 0..4 {
                            acc[j] += d[j];
                        }
                    }
                    orow[o..o + 4].copy_from_slice(&acc);
                    o += 4;
                }
            }
            for (o, y) in orow.iter_mut().enumerate().skip(o) {
                let gi = o / cog;
                let mut acc = bias_at(o);
                if kx_lo >= kx_hi {
                    *y = acc;
                    continue;
                }
                for ky in ky_lo..ky_hi {
                    let iy = (iy0 + ky as isize) as usize;
                    let woff = o * wo_len + ky * wrow;
                    if g == 1 {
                        let ib = (iy * w + ix_lo) * cin;
                        let n = (kx_hi - kx_lo) * cin;
                        acc += weights.dot(woff + kx_lo * cin, &input[ib..ib + n]);
                    } else {
                        for kx in kx_lo..kx_hi {
                            let ib = (iy * w + ix_lo + (kx - kx_lo)) * cin + gi * cig;
                            acc += weights.dot(woff + kx * cig, &input[ib..ib + cig]);
                        }
                    }
                }
                *y = acc;
            }
        }
    }
    Ok(())
}

/// BatchNorm in inference form, in place on `x` (NHWC with `C = gamma.len()` channels):
/// `x = (x − mean[c]) / sqrt(var[c] + eps) · gamma[c] + beta[c]`.
pub fn batchnorm<W: Weights + ?Sized>(
    x: &mut [f32],
    gamma: &W,
    beta: &W,
    mean: &W,
    var: &W,
    eps: f32,
) -> Result<(), LayerError> {
    let c = gamma.len();
    if c == 0 || !x.len().is_multiple_of(c) {
        return Err(LayerError::Shape("x.len() must be a multiple of C"));
    }
    check_len("bn beta", c, beta.len())?;
    check_len("bn mean", c, mean.len())?;
    check_len("bn var", c, var.len())?;
    for ch in 0..c {
        let (g, b, m) = (gamma.at(ch), beta.at(ch), mean.at(ch));
        let sd = libm::sqrtf(var.at(ch) + eps);
        for v in x.iter_mut().skip(ch).step_by(c) {
            *v = (*v - m) / sd * g + b;
        }
    }
    Ok(())
}

/// `x = max(x, 0)` in place.
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Residual update, fused with the shortcut and the final ReLU:
/// `branch(y, x, c) = act( s(y, x, c) + dt[c] · branch(y, x, c) )` where
/// `s(y, x, c) = input(y·stride, x·stride, c)` for `c < C_in` and 0 otherwise (identity
/// when `stride = 1` and `C_in = C_out`; CIFAR option A otherwise), `dt = 1` when `None`,
/// and `act` is ReLU when `relu`. `branch` has shape `out`, which must be
/// `((H−1)/stride + 1, (W−1)/stride + 1, C_out ≥ C_in)`.
pub fn residual_update<W: Weights + ?Sized>(
    in_shape: Shape3,
    stride: usize,
    input: &[f32],
    out: Shape3,
    branch: &mut [f32],
    dt: Option<&W>,
    relu: bool,
) -> Result<(), LayerError> {
    check_shortcut(in_shape, stride, out)?;
    check_len("residual input", in_shape.len(), input.len())?;
    check_len("residual branch", out.len(), branch.len())?;
    if let Some(d) = dt {
        check_len("residual dt", out.c, d.len())?;
    }
    for oy in 0..out.h {
        for ox in 0..out.w {
            let ob = (oy * out.w + ox) * out.c;
            let ib = (oy * stride * in_shape.w + ox * stride) * in_shape.c;
            let row = &mut branch[ob..ob + out.c];
            for (c, v) in row.iter_mut().enumerate() {
                let f = match dt {
                    Some(d) => *v * d.at(c),
                    None => *v,
                };
                let s = if c < in_shape.c { input[ib + c] } else { 0.0 };
                let y = s + f;
                *v = if relu { y.max(0.0) } else { y };
            }
        }
    }
    Ok(())
}

fn check_shortcut(in_shape: Shape3, stride: usize, out: Shape3) -> Result<(), LayerError> {
    if stride == 0 || in_shape.h == 0 || in_shape.w == 0 || in_shape.c == 0 {
        return Err(LayerError::Shape("zero-sized shortcut"));
    }
    if out.h != (in_shape.h - 1) / stride + 1
        || out.w != (in_shape.w - 1) / stride + 1
        || out.c < in_shape.c
    {
        return Err(LayerError::Shape("shortcut output shape"));
    }
    out.h
        .checked_mul(out.w)
        .and_then(|v| v.checked_mul(out.c))
        .ok_or(LayerError::Shape("overflow"))?;
    in_shape
        .h
        .checked_mul(in_shape.w)
        .and_then(|v| v.checked_mul(in_shape.c))
        .ok_or(LayerError::Shape("overflow"))?;
    Ok(())
}

/// CIFAR option-A shortcut materialised: `output(y, x, c) = input(y·s, x·s, c)` for
/// `c < C_in`, else 0; output shape `((H−1)/s + 1, (W−1)/s + 1, out_c)`.
pub fn shortcut_a(
    in_shape: Shape3,
    stride: usize,
    out_c: usize,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), LayerError> {
    let out = Shape3::new(
        (in_shape.h.max(1) - 1) / stride.max(1) + 1,
        (in_shape.w.max(1) - 1) / stride.max(1) + 1,
        out_c,
    );
    check_shortcut(in_shape, stride, out)?;
    check_len("shortcut input", in_shape.len(), input.len())?;
    check_len("shortcut output", out.len(), output.len())?;
    for oy in 0..out.h {
        for ox in 0..out.w {
            let ob = (oy * out.w + ox) * out_c;
            let ib = (oy * stride * in_shape.w + ox * stride) * in_shape.c;
            output[ob..ob + in_shape.c].copy_from_slice(&input[ib..ib + in_shape.c]);
            output[ob + in_shape.c..ob + out_c].fill(0.0);
        }
    }
    Ok(())
}

/// Max pool over each channel: `out(y, x, c) = max` of `input` over the `k×k` window at
/// `(y·s − pad, x·s − pad)`; positions in the padding never win. Output shape
/// `((H + 2·pad − k) / s + 1, (W + 2·pad − k) / s + 1, C)`; requires `2·pad ≤ k` (every
/// window then holds at least one input position).
pub fn max_pool2d(
    in_shape: Shape3,
    k: usize,
    stride: usize,
    pad: usize,
    input: &[f32],
    output: &mut [f32],
) -> Result<Shape3, LayerError> {
    if in_shape.is_empty() || k == 0 || stride == 0 || 2 * pad > k {
        return Err(LayerError::Shape("max pool: k, stride ≥ 1, 2·pad ≤ k"));
    }
    if in_shape.h + 2 * pad < k || in_shape.w + 2 * pad < k {
        return Err(LayerError::Shape(
            "max pool window larger than the padded input",
        ));
    }
    let out = Shape3::new(
        (in_shape.h + 2 * pad - k) / stride + 1,
        (in_shape.w + 2 * pad - k) / stride + 1,
        in_shape.c,
    );
    check_len("max pool input", in_shape.len(), input.len())?;
    check_len("max pool output", out.len(), output.len())?;
    let c = in_shape.c;
    // Window rows/columns clipped to the image: `[lo, hi)` of input positions.
    let span = |o: usize, n: usize| {
        let start = o * stride;
        (
            start.saturating_sub(pad),
            (start + k).saturating_sub(pad).min(n),
        )
    };
    for oy in 0..out.h {
        let (y0, y1) = span(oy, in_shape.h);
        for ox in 0..out.w {
            let (x0, x1) = span(ox, in_shape.w);
            let o = &mut output[(oy * out.w + ox) * c..][..c];
            o.fill(f32::NEG_INFINITY);
            for y in y0..y1 {
                for x in x0..x1 {
                    let px = &input[(y * in_shape.w + x) * c..][..c];
                    for (m, &v) in o.iter_mut().zip(px) {
                        *m = m.max(v);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Global average pool: `out[c] = (Σ_{y,x} input(y, x, c)) / (H·W)` (sequential sums).
pub fn global_avg_pool(shape: Shape3, input: &[f32], out: &mut [f32]) -> Result<(), LayerError> {
    if shape.h == 0 || shape.w == 0 || shape.c == 0 {
        return Err(LayerError::Shape("zero-sized pool input"));
    }
    let n = shape
        .h
        .checked_mul(shape.w)
        .ok_or(LayerError::Shape("overflow"))?;
    check_len(
        "pool input",
        n.checked_mul(shape.c)
            .ok_or(LayerError::Shape("overflow"))?,
        input.len(),
    )?;
    check_len("pool output", shape.c, out.len())?;
    out.fill(0.0);
    for px in input.chunks_exact(shape.c) {
        for (o, v) in out.iter_mut().zip(px) {
            *o += v;
        }
    }
    let inv = n as f32;
    for o in out {
        *o /= inv;
    }
    Ok(())
}

/// Fully connected: `out[o] = dot(W[o][..], x) + b[o]` with `W` `[out.len()][x.len()]`.
pub fn fc<W: Weights + ?Sized, B: Weights + ?Sized>(
    x: &[f32],
    w: &W,
    b: Option<&B>,
    out: &mut [f32],
) -> Result<(), LayerError> {
    let n_in = x.len();
    check_len(
        "fc weights",
        out.len()
            .checked_mul(n_in)
            .ok_or(LayerError::Shape("overflow"))?,
        w.len(),
    )?;
    if let Some(b) = b {
        check_len("fc bias", out.len(), b.len())?;
    }
    for (o, y) in out.iter_mut().enumerate() {
        let bias = match b {
            Some(b) => b.at(o),
            None => 0.0,
        };
        *y = w.dot(o * n_in, x) + bias;
    }
    Ok(())
}

/// Squeeze-excitation (Hu et al. 2018) in place over `x` of `shape`:
/// `s = global_avg_pool(x)`, `h = ReLU(W1 s + b1)`, `g = sigmoid(W2 h + b2)`,
/// `x(y, x, c) *= g[c]`. `W1` is `[H][C]`, `W2` `[C][H]`; `scratch` holds at least
/// `2·C + H` f32 (`s`, `h`, `g`).
pub fn squeeze_excite<W: Weights + ?Sized>(
    shape: Shape3,
    x: &mut [f32],
    [w1, b1, w2, b2]: [&W; 4],
    scratch: &mut [f32],
) -> Result<(), LayerError> {
    let (c, h) = (shape.c, b1.len());
    if h == 0 {
        return Err(LayerError::Shape("SE hidden width 0"));
    }
    let need = 2 * c + h;
    if scratch.len() < need {
        return Err(LayerError::Len {
            what: "SE scratch",
            expected: need,
            got: scratch.len(),
        });
    }
    let (s, rest) = scratch.split_at_mut(c);
    let (hid, rest) = rest.split_at_mut(h);
    let g = &mut rest[..c];
    global_avg_pool(shape, x, s)?;
    fc(s, w1, Some(b1), hid)?;
    relu(hid);
    fc(hid, w2, Some(b2), g)?;
    for v in g.iter_mut() {
        *v = sigmoid(*v);
    }
    for px in x.chunks_exact_mut(c) {
        for (v, gc) in px.iter_mut().zip(g.iter()) {
            *v *= gc;
        }
    }
    Ok(())
}

/// Logistic sigmoid `1 / (1 + e^{−x})`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// Numerically stable softmax in place (`exp(x − max) / Σ`). Empty input is a no-op.
pub fn softmax(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if x.is_empty() || !m.is_finite() {
        return;
    }
    let mut s = 0.0;
    for v in x.iter_mut() {
        *v = libm::expf(*v - m);
        s += *v;
    }
    for v in x.iter_mut() {
        *v /= s;
    }
}

/// Index of the largest element (first one on ties; NaN never wins unless all are NaN, then
/// 0). `None` for an empty slice.
pub fn argmax(x: &[f32]) -> Option<usize> {
    if x.is_empty() {
        return None;
    }
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] || (x[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_orders_agree() {
        let w: [f32; 19] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        let x: [f32; 19] = core::array::from_fn(|i| (i as f32 * 0.11).cos());
        let mut bytes = [0u8; 76];
        for (i, v) in w.iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        assert_eq!(dot(&w, &x).to_bits(), dot_le_bytes(&bytes, &x).to_bits());
        // dot4 rows are bit-identical to single dots, for slices and bytes, any length.
        for n in [0usize, 1, 7, 8, 9, 16, 19] {
            let xs = &x[..n];
            let rows = [&w[..n], &w[..n], &x[..n], &x[..n]];
            let d4 = dot4(rows, xs);
            let wb = &bytes[..4 * n];
            let b4 = dot4_le_bytes([wb, wb, wb, wb], xs);
            for j in 0..4 {
                assert_eq!(d4[j].to_bits(), dot(rows[j], xs).to_bits());
                assert_eq!(b4[j].to_bits(), dot(&w[..n], xs).to_bits());
            }
        }
    }

    #[test]
    fn argmax_edge_cases() {
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), Some(1));
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), Some(0));
    }
}
