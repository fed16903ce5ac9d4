//! f64 references for the convolution and matrix-multiply kernels (`shaders/conv_*.wgsl`,
//! `shaders/gemm.wgsl`). Layouts as in docs/DESIGN.md: NHWC activations, OHWI weights.

use crate::gpu::conv::ConvShape;

/// Input coordinate of output coordinate `o` at tap `k`, or `None` in the zero padding.
fn tap(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    let i = (o * stride + k) as isize - pad as isize;
    (i >= 0 && (i as usize) < size).then_some(i as usize)
}

/// Visit every (x index, w index, y index) triple of the convolution's multiply-adds.
fn for_each_mac(s: &ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let (ho, wo) = (s.out_h(), s.out_w());
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    for n in 0..s.n {
        for oy in 0..ho {
            for ox in 0..wo {
                let yb = ((n * ho + oy) * wo + ox) * s.cout;
                for co in 0..s.cout {
                    let g = co / cog;
                    for ky in 0..s.kh {
                        let Some(iy) = tap(oy, ky, s.stride, s.pad, s.h) else {
                            continue;
                        };
                        for kx in 0..s.kw {
                            let Some(ix) = tap(ox, kx, s.stride, s.pad, s.w) else {
                                continue;
                            };
                            let xb = ((n * s.h + iy) * s.w + ix) * s.cin + g * cg;
                            let wb = ((co * s.kh + ky) * s.kw + kx) * cg;
                            for ci in 0..cg {
                                f(xb + ci, wb + ci, yb + co);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// y = conv(x, w) (+ bias): x [N,H,W,Cin], w [Cout,kh,kw,Cin/G], y [N,Ho,Wo,Cout].
pub fn conv2d_forward(s: &ConvShape, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let mut y = vec![0.0; s.n * s.out_h() * s.out_w() * s.cout];
    for_each_mac(s, |xi, wi, yi| y[yi] += x[xi] * w[wi]);
    if let Some(b) = bias {
        for (i, v) in y.iter_mut().enumerate() {
            *v += b[i % s.cout];
        }
    }
    y
}

/// dx = ∂L/∂x given dy = ∂L/∂y.
pub fn conv2d_backward_data(s: &ConvShape, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; s.n * s.h * s.w * s.cin];
    for_each_mac(s, |xi, wi, yi| dx[xi] += dy[yi] * w[wi]);
    dx
}

/// dw = ∂L/∂w given dy = ∂L/∂y.
pub fn conv2d_backward_weights(s: &ConvShape, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; s.cout * s.kh * s.kw * (s.cin / s.groups)];
    for_each_mac(s, |xi, wi, yi| dw[wi] += dy[yi] * x[xi]);
    dw
}

/// C[m,n] = A[m,k] · B[k,n], row-major.
pub fn matmul(m: usize, n: usize, k: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let av = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += av * b[p * n + j];
            }
        }
    }
    c
}
