// Texel i of a texture mirror of a storage buffer (trainer/src/gpu/texture.rs: TEX_W = 4096
// texels per row, so i splits with a mask and a shift; a unit test there checks these
// constants). Prepended by the host to the shaders whose vec4 entries read mirrors
// (batchnorm.wgsl, shortcut.wgsl); the conv kernels get the same fetch from `operand_decl`.
fn tex4(t: texture_2d<f32>, i: u32) -> vec4<f32> { return textureLoad(t, vec2<u32>(i & 4095u, i >> 12u), 0); }
