//! Plain matrix multiply `C[M,N] = A[M,K] · B[K,N]` (row-major f32), register-blocked like the
//! conv kernels (`shaders/gemm.wgsl`, reference `crate::reference::conv::matmul`).
//!
//! ```ignore
//! let d = gemm(&gpu, m, n, k, &a, &b, &c)?; // Vec<Dispatch>, build once, replay with rec.run
//! ```
//! `trainer bench kernels` uses it as the device's ceiling. (A fully connected layer
//! `y = x·Wᵀ + b` with its two backwards is better served by the conv kernels with a 1×1
//! shape: see `crate::gpu::conv`.)

use super::conv::{grid_xz, prelude, vec_width, Tile};
use super::{specialize, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};

const GEMM: &str = include_str!("../../../shaders/gemm.wgsl");

/// The GEMM template with its register tile written out (`tm` rows × `tnv` VTs); `kv` = 4
/// loads A as vec4 along K (4 k-steps per iteration), 1 as scalars.
fn gemm_code(tm: u32, tnv: u32, kv: u32) -> String {
    let mut setup = String::new();
    for i in 0..tm {
        setup += &format!("    let ra{i} = min(r0 + {i}u, p.m - 1u) * p.k;\n");
    }
    for j in 0..tnv {
        setup += &format!("    let cb{j} = min(c0 + {j}u * V, p.n - V) / V;\n");
    }
    for i in 0..tm {
        for j in 0..tnv {
            setup += &format!("    var acc{i}_{j} = VT();\n");
        }
    }
    let mut body = String::new();
    for kk in 0..kv {
        for j in 0..tnv {
            body += &format!("        let b{kk}_{j} = b[(k + {kk}u) * nv + cb{j}];\n");
        }
    }
    let comp = ["x", "y", "z", "w"];
    for i in 0..tm {
        body += &format!("        let a{i} = a[(ra{i} + k) / KV];\n");
        for kk in 0..kv {
            let av = if kv == 4 {
                format!("VT(a{i}.{})", comp[kk as usize])
            } else {
                format!("VT(a{i})")
            };
            for j in 0..tnv {
                body += &format!("        acc{i}_{j} = fma({av}, b{kk}_{j}, acc{i}_{j});\n");
            }
        }
    }
    let mut store = String::new();
    for i in 0..tm {
        store += &format!("    if (r0 + {i}u < p.m) {{\n");
        for j in 0..tnv {
            store += &format!(
                "        if (c0 + {j}u * V < p.n) {{ c[((r0 + {i}u) * p.n + c0 + {j}u * V) / V] = acc{i}_{j}; }}\n"
            );
        }
        store += "    }\n";
    }
    GEMM.replace("{{SETUP}}", &setup)
        .replace("{{BODY}}", &body)
        .replace("{{STORE}}", &store)
        .replace("{{AT}}", if kv == 4 { "vec4<f32>" } else { "f32" })
}

/// Rows × columns per invocation: 16×16 in 8-wide workgroups on CPU adapters (32×32 is a
/// little faster on lavapipe but takes ~6 s to JIT), 4×4 in 64-wide workgroups on GPUs.
pub fn default_gemm_tile(gpu: &Gpu) -> Tile {
    if gpu.is_cpu() {
        Tile {
            tm: 16,
            tn: 16,
            wg: 8,
            tex: false,
        }
    } else {
        Tile {
            tm: 4,
            tn: 4,
            wg: 64,
            tex: false,
        }
    }
}

/// `C = A · B` with the adapter's default tile.
pub fn gemm(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
) -> Result<Vec<Dispatch>> {
    gemm_with(gpu, default_gemm_tile(gpu), m, n, k, a, b, c)
}

/// `C = A · B` with an explicit tile (`tile.tn` is rounded up to the vector width).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    gpu: &Gpu,
    tile: Tile,
    m: usize,
    n: usize,
    k: usize,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
) -> Result<Vec<Dispatch>> {
    ensure!(m > 0 && n > 0 && k > 0, "gemm: empty shape {m}x{n}x{k}");
    ensure!(
        a.len() == m * k,
        "gemm: A has {} elements, expected {m}x{k}",
        a.len()
    );
    ensure!(
        b.len() == k * n,
        "gemm: B has {} elements, expected {k}x{n}",
        b.len()
    );
    ensure!(
        c.len() == m * n,
        "gemm: C has {} elements, expected {m}x{n}",
        c.len()
    );
    ensure!(
        m * k < (1 << 31) && k * n < (1 << 31) && m * n < (1 << 31),
        "gemm: too large"
    );
    let v = vec_width(n);
    let tn = tile.tn.div_ceil(v) * v;
    let kv = vec_width(k);
    let key = format!("gemm/tm{}_tn{tn}_wg{}_v{v}_k{kv}", tile.tm, tile.wg);
    let kern = gpu.kernel(&key, || {
        let body = specialize(
            &gemm_code(tile.tm, tn / v, kv),
            &[
                ("TM", tile.tm),
                ("TNV", tn / v),
                ("WG", tile.wg),
                ("KV", kv),
            ],
        );
        (
            format!("{}\n{body}", prelude(v)),
            "main",
            vec![Slot::Read, Slot::Read, Slot::ReadWrite, Slot::Uniform],
        )
    })?;
    let params = gpu.uniform(&[m as u32, n as u32, k as u32, 0]);
    let groups = grid_xz(
        m.div_ceil(tile.tm as usize),
        tile.wg,
        n.div_ceil(tn as usize),
    )?;
    Ok(vec![Dispatch::new(
        gpu,
        &kern,
        &[&a.buf, &b.buf, &c.buf, &params],
        groups,
    )?])
}
