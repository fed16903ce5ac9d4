//! Shared by the runtime tests.

/// `y = a·x + y` over `n` elements; uniform `P { n, a }`.
pub const SAXPY: &str = r#"
struct P { n: u32, a: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * 64u;
    if (i < p.n) { y[i] = p.a * x[i] + y[i]; }
}
"#;
