//! Read-only texture mirrors of storage buffers, for kernels whose cost is operand loads.
//!
//! Why: on lavapipe (Mesa's llvmpipe) a storage-buffer load whose address differs per lane is
//! compiled to a loop over the SIMD lanes with a bounds check and a branch per component
//! (`emit_load_mem` in gallivm's `lp_bld_nir_soa.c`), while a `textureLoad` of an
//! `rgba32float` texel is a vectorised fetch. Measured on ResNet-20's 32->32 conv forward
//! (same-process A/B): the register-blocked kernel ran 1.3–1.9x faster with both operands
//! read through textures. The copy into the texture is a plain memcpy on CPU adapters.
//!
//! Layout: element `4i..4i+4` of the buffer is texel `(i mod TEX_W, i div TEX_W)`, so a vec4
//! index `i` becomes a 2-D coordinate with a mask and a shift in the shader (`operand_decl`
//! for the conv kernels, `shaders/texture.wgsl` for the rest).

use super::context::Gpu;
use super::kernel::{Res, Slot, Upload};
use super::tensor::Tensor;
use anyhow::{ensure, Result};
use std::sync::Arc;

/// Texels per texture row (a power of two: the shader splits an index with a mask and a shift).
pub const TEX_W: u32 = 4096;

/// An `rgba32float` texture holding a copy of a buffer's first `4·texels` floats.
#[derive(Debug)]
pub struct TexMirror {
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    pub texels: u32,
}

impl Gpu {
    /// A texture able to mirror `floats` floats (a multiple of 4).
    pub fn tex_mirror(&self, floats: usize) -> Result<TexMirror> {
        ensure!(
            super::conv::vec_width(floats) == 4 && floats > 0,
            "texture mirror: {floats} floats is not a positive multiple of 4"
        );
        let texels = floats / 4;
        let rows = texels.div_ceil(TEX_W as usize);
        let height = mirror_height(rows);
        let max = self.limits.max_texture_dimension_2d as usize;
        ensure!(
            height <= max,
            "texture mirror: {floats} floats need {rows} rows of {TEX_W} texels (device limit {max})"
        );
        let texture = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("mirror"),
            size: wgpu::Extent3d {
                width: TEX_W,
                height: height as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        Ok(TexMirror {
            texture,
            view,
            texels: texels as u32,
        })
    }
}

/// Texture rows for a mirror of `rows` rows of data: never a power of two (one or two spare
/// rows at most). Why: llvmpipe compiles a separate variant of a pipeline for each combination
/// of "width/height is a power of two" of the textures bound to it (`pot_width`/`pot_height` in
/// its sampler key), so mirrors of arbitrary sizes made every conv layer of a new shape JIT the
/// same kernel again (6.4 s for a 16×16 tile, 70 s for 32×32; measured with
/// `MESA_SHADER_CACHE_DISABLE=true`). Every mirror is `TEX_W` (a power of two) wide and has a
/// height that is not one, so a pipeline has one variant whatever shapes it serves.
pub fn mirror_height(rows: usize) -> usize {
    let mut h = rows.max(3);
    while h.is_power_of_two() {
        h += 1;
    }
    h
}

impl TexMirror {
    /// Record the copy of `src`'s first `4·texels` floats into the texture: the whole rows in
    /// one copy, the partial last row in a second.
    pub fn record_upload(&self, enc: &mut wgpu::CommandEncoder, src: &wgpu::Buffer) {
        let row_bytes = TEX_W as u64 * 16;
        let full = self.texels / TEX_W;
        let rest = self.texels % TEX_W;
        let copy = |enc: &mut wgpu::CommandEncoder, y: u32, width: u32, height: u32| {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: src,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: y as u64 * row_bytes,
                        bytes_per_row: Some(row_bytes as u32),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: 0, y, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
            );
        };
        if full > 0 {
            copy(enc, 0, TEX_W, full);
        }
        if rest > 0 {
            copy(enc, full, rest, 1);
        }
    }
}

/// WGSL for reading operand `name` as vec4s at `binding`: either a storage buffer
/// (`array<VT>`, any vector width) or, with `tex`, a texture mirror (vec4 only). Both define
/// `ld_{name}(i: u32) -> VT`, the `i`-th element of the array view.
pub fn operand_decl(binding: u32, name: &str, ty: &str, tex: bool) -> String {
    if tex {
        format!(
            "@group(0) @binding({binding}) var {name}: texture_2d<f32>;\n\
             fn ld_{name}(i: u32) -> vec4<f32> {{ return textureLoad({name}, vec2<u32>(i & {}u, i >> {}u), 0); }}\n",
            TEX_W - 1,
            TEX_W.trailing_zeros()
        )
    } else {
        format!(
            "@group(0) @binding({binding}) var<storage, read> {name}: array<{ty}>;\n\
             fn ld_{name}(i: u32) -> {ty} {{ return {name}[i]; }}\n"
        )
    }
}

/// A texture mirror of `t` for a kernel to read instead of the buffer; its refresh (recorded
/// before every run of the dispatch that carries `uploads`) is appended to `uploads`.
pub fn mirror(gpu: &Gpu, t: &Tensor, uploads: &mut Vec<Upload>) -> Result<Arc<TexMirror>> {
    let m = Arc::new(gpu.tex_mirror(t.len())?);
    uploads.push(Upload {
        src: t.buf.clone(),
        mirror: m.clone(),
    });
    Ok(m)
}

/// `mirror` when `tex`, else `None` (the kernel reads the buffer).
pub fn mirror_if(
    gpu: &Gpu,
    t: &Tensor,
    tex: bool,
    uploads: &mut Vec<Upload>,
) -> Result<Option<Arc<TexMirror>>> {
    tex.then(|| mirror(gpu, t, uploads)).transpose()
}

/// The slot an operand read through `m` (or its buffer) takes.
pub fn read_slot(m: &Option<Arc<TexMirror>>) -> Slot {
    match m {
        Some(_) => Slot::Texture,
        None => Slot::Read,
    }
}

/// The resource an operand read through `m` (or its buffer `b`) binds.
pub fn read_res<'a>(m: &'a Option<Arc<TexMirror>>, b: &'a wgpu::Buffer) -> Res<'a> {
    match m {
        Some(m) => Res::Tex(&m.view),
        None => Res::Buf(b),
    }
}

#[cfg(test)]
mod tests {
    use super::TEX_W;

    /// Mirror heights cover their rows and are never powers of two (one llvmpipe variant).
    #[test]
    fn mirror_heights_are_never_powers_of_two() {
        for rows in 0..5000 {
            let h = super::mirror_height(rows);
            assert!(
                h >= rows && h <= rows.max(3) + 1 && !h.is_power_of_two(),
                "{rows} -> {h}"
            );
        }
    }

    /// `shaders/texture.wgsl` hard-codes the texel split that `TEX_W` defines.
    #[test]
    fn texture_wgsl_matches_tex_w() {
        let src = include_str!("../../../shaders/texture.wgsl");
        let split = format!("i & {}u, i >> {}u", TEX_W - 1, TEX_W.trailing_zeros());
        assert!(
            src.contains(&split),
            "texture.wgsl must split texels as `{split}`"
        );
    }
}
