// The controllers' activation functions (prepended by trainer/src/gpu/controller.rs to every
// controller kernel), accurate to a few ulp over all of f32: the LSTM's cell state is tiny
// early in training, where the textbook forms lose digits. Bounds (measured against f64 over
// a dense range, `trainer/tests/controller.rs::activations_match_f64`) are in docs/TRAINING.md.

// exp(x) for x ≤ 0 to about 1 ulp at any x, on any driver. WGSL's exp is exp2(x·log2 e) to
// the driver's precision (the rounded product alone costs |x|·2^-24 relative: 15 ulp at
// x = −30; GPUs' fast exp2 adds more). Here x = k·ln2 + r with k integral and |r| ≤ ln2/2
// (Cody–Waite: ln 2 split so that k·LN2_HI is exact for |k| < 2^9), e^r is the Taylor
// polynomial to degree 7 (truncation 5e-9 relative at |r| = ln2/2), and 2^k is exact (ldexp).
fn exp_nonpos(x: f32) -> f32 {
    if (x < -104.0) { return 0.0; }
    let k = round(x * 1.44269504);
    let r = (x - k * 0.693145752) - k * 1.42860677e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.166666667 + r * (0.0416666667
        + r * (0.00833333333 + r * (0.00138888889 + r * 0.000198412698))))));
    return ldexp(p, i32(k));
}

// σ(z), both branches through exp of a non-positive argument: 1/(1 + e^−z) for z ≥ 0 and
// e^z/(1 + e^z) for z < 0 (no overflow, and the small tail keeps its relative accuracy).
fn sigm(z: f32) -> f32 {
    let e = exp_nonpos(-abs(z));
    if (z >= 0.0) {
        return 1.0 / (1.0 + e);
    }
    return e / (1.0 + e);
}

// tanh(z): for |z| < 0.55 the odd Taylor polynomial to degree 15 (truncation below 2e-8
// relative; (1 − e)/(1 + e) with e = e^−2|z| amplifies exp's error by e/(1 − e) ≈ 1/(2|z|)
// there: 3.3e-5 relative at |z| = 1e-3 with WGSL's exp); beyond it that form, where the
// amplification is at most 1/2.
fn tanh_s(z: f32) -> f32 {
    let a = abs(z);
    if (a < 0.55) {
        let s = z * z;
        let q = -0.333333333 + s * (0.133333333 + s * (-0.0539682540 + s * (0.0218694885
            + s * (-0.00886323552 + s * (0.00359212803 + s * -0.00145583438)))));
        return z + z * (s * q);
    }
    let e = exp_nonpos(-2.0 * a);
    return sign(z) * ((1.0 - e) / (1.0 + e));
}
