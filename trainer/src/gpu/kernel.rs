//! Compute kernels: one pipeline per WGSL entry point, its bind-group layout declared once,
//! and a `Recorder` that batches many dispatches into one submission.

use super::context::Gpu;
use super::texture::TexMirror;
use anyhow::{anyhow, bail, Result};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// How a kernel uses one binding; binding `i` of group 0 is `slots[i]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
    /// `var<uniform>` (shape parameters)
    Uniform,
    /// `texture_2d<f32>` read with `textureLoad` (a `TexMirror` of a buffer)
    Texture,
}

/// A resource bound to one slot.
#[derive(Clone, Copy, Debug)]
pub enum Res<'a> {
    Buf(&'a wgpu::Buffer),
    Tex(&'a wgpu::TextureView),
}

/// A buffer copied into its texture mirror right before a dispatch reads the mirror.
#[derive(Clone, Debug)]
pub struct Upload {
    pub src: wgpu::Buffer,
    pub mirror: Arc<TexMirror>,
}

/// A compute pipeline with its bind-group layout. The WGSL is parsed and validated when the
/// kernel is declared; the pipeline itself is created by `Gpu::prepare` (in parallel, for
/// every kernel a graph declared) or, failing that, on first use (`crate::gpu::compile`).
pub struct Kernel {
    pub name: String,
    /// The WGSL, as compiled.
    pub source: String,
    pub entry: String,
    module: wgpu::ShaderModule,
    pipeline_layout: wgpu::PipelineLayout,
    layout: wgpu::BindGroupLayout,
    pub(crate) slots: Vec<Slot>,
    pipeline: OnceLock<wgpu::ComputePipeline>,
    pub(crate) stats: Mutex<CompileStats>,
}

/// Where one kernel's compile time went (seconds; `trainer bench compile` prints them).
#[derive(Clone, Debug, Default)]
pub struct CompileStats {
    /// Creating the pipeline on the device (on most GPU drivers: the whole compile).
    pub create_s: f64,
    /// Creating and JIT-compiling it on a helper device (CPU adapters, `Gpu::prepare`).
    pub helper_s: Option<f64>,
    /// Its first (empty) dispatch on the device: where llvmpipe JITs, or loads the JIT from
    /// Mesa's shader cache; `None` until warmed.
    pub warm_s: Option<f64>,
}

/// Replace every `{{NAME}}` in a WGSL template with its value: tile shapes are compile-time
/// constants in WGSL (function-scope arrays need const sizes), chosen per adapter.
pub fn specialize(src: &str, consts: &[(&str, u32)]) -> String {
    let mut s = src.to_string();
    for (k, v) in consts {
        s = s.replace(&format!("{{{{{k}}}}}"), &v.to_string());
    }
    s
}

/// The bind-group layout entries for `slots` (binding `i` is `slots[i]`).
fn layout_entries(slots: &[Slot]) -> Vec<wgpu::BindGroupLayoutEntry> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match s {
                Slot::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Slot::Texture => wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                Slot::Read | Slot::ReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *s == Slot::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect()
}

/// The bind-group layout for `slots` and the pipeline layout holding it, on `device`.
pub(crate) fn layouts(
    device: &wgpu::Device,
    name: &str,
    slots: &[Slot],
) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(name),
        entries: &layout_entries(slots),
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    (layout, pipeline_layout)
}

impl Kernel {
    /// Compile `entry` of `source` now. Shader validation errors come back as `Err`, not a
    /// panic.
    pub fn new(gpu: &Gpu, name: &str, source: &str, entry: &str, slots: &[Slot]) -> Result<Kernel> {
        let k = Kernel::declare(gpu, name, source, entry, slots)?;
        k.compile(gpu)?;
        Ok(k)
    }

    /// Parse and validate `entry` of `source` and declare its layout; the pipeline is created
    /// later (`compile`, `Gpu::prepare`, or first use).
    pub fn declare(
        gpu: &Gpu,
        name: &str,
        source: &str,
        entry: &str,
        slots: &[Slot],
    ) -> Result<Kernel> {
        if let Some(pos) = source.find("{{") {
            let end = source[pos..].find("}}").map_or(pos + 10, |e| pos + e + 2);
            bail!(
                "kernel {name}: unspecialised template parameter {}",
                &source[pos..end.min(source.len())]
            );
        }
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = gpu
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let (layout, pipeline_layout) = layouts(&gpu.device, name, slots);
        if let Some(e) = pollster::block_on(scope.pop()) {
            bail!("kernel {name} ({entry}) failed to compile: {e}");
        }
        Ok(Kernel {
            name: name.to_string(),
            source: source.to_string(),
            entry: entry.to_string(),
            module,
            pipeline_layout,
            layout,
            slots: slots.to_vec(),
            pipeline: OnceLock::new(),
            stats: Mutex::new(CompileStats::default()),
        })
    }

    /// Create the pipeline if it does not exist yet (safe to call from several threads: one
    /// pipeline is kept).
    pub fn compile(&self, gpu: &Gpu) -> Result<()> {
        if self.pipeline.get().is_some() {
            return Ok(());
        }
        let t0 = Instant::now();
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&self.name),
                layout: Some(&self.pipeline_layout),
                module: &self.module,
                entry_point: Some(&self.entry),
                compilation_options: Default::default(),
                cache: gpu.pipeline_cache(),
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            bail!(
                "kernel {} ({}) failed to compile: {e}",
                self.name,
                self.entry
            );
        }
        let _ = self.pipeline.set(pipeline);
        self.stats.lock().expect("kernel stats").create_s += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// Whether the pipeline exists.
    pub fn is_compiled(&self) -> bool {
        self.pipeline.get().is_some()
    }

    /// The pipeline, created now if nobody prepared it. Kernels are validated when declared
    /// and `Gpu::prepare` reports pipeline errors as `Err`; one that fails here is a bug in a
    /// generated shader, hence the panic.
    fn pipeline(&self, gpu: &Gpu) -> &wgpu::ComputePipeline {
        if let Err(e) = self.compile(gpu) {
            panic!("{e:#}");
        }
        self.pipeline.get().expect("compiled above")
    }

    /// A copy of this kernel's compile statistics.
    pub fn compile_stats(&self) -> CompileStats {
        self.stats.lock().expect("kernel stats").clone()
    }

    /// The bind-group layout (what `bind` builds against).
    pub(crate) fn bind_group_layout(&self) -> &wgpu::BindGroupLayout {
        &self.layout
    }

    /// A bind group for `buffers`, in slot order. Build these once (at model build time), not
    /// per step.
    pub fn bind(&self, gpu: &Gpu, buffers: &[&wgpu::Buffer]) -> Result<wgpu::BindGroup> {
        let res: Vec<Res> = buffers.iter().map(|b| Res::Buf(b)).collect();
        self.bind_res(gpu, &res)
    }

    /// A bind group for buffers and texture views, in slot order; each must suit its slot.
    pub fn bind_res(&self, gpu: &Gpu, res: &[Res]) -> Result<wgpu::BindGroup> {
        bind_slots(&gpu.device, &self.layout, &self.name, &self.slots, res)
    }
}

/// A bind group on `device` for `layout` (declared from `slots`) holding `res`, which must
/// match `slots` in number and kind.
pub(crate) fn bind_slots(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    name: &str,
    slots: &[Slot],
    res: &[Res],
) -> Result<wgpu::BindGroup> {
    if res.len() != slots.len() {
        return Err(anyhow!(
            "kernel {name}: {} resources bound, {} expected",
            res.len(),
            slots.len()
        ));
    }
    let mut entries = Vec::with_capacity(res.len());
    for (i, (r, slot)) in res.iter().zip(slots).enumerate() {
        let resource = match (r, slot) {
            (Res::Tex(v), Slot::Texture) => wgpu::BindingResource::TextureView(v),
            (Res::Buf(b), Slot::Read | Slot::ReadWrite | Slot::Uniform) => b.as_entire_binding(),
            _ => bail!("kernel {name}: binding {i} is a {slot:?} slot, got {r:?}"),
        };
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32,
            resource,
        });
    }
    Ok(device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(name),
        layout,
        entries: &entries,
    }))
}

/// One recorded-once, replayed-every-step dispatch: a kernel, its bound buffers (including
/// its own uniform parameters) and its workgroup counts. Build these when the model is built.
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind: wgpu::BindGroup,
    pub groups: [u32; 3],
    /// Texture mirrors to refresh (in order) before the dispatch runs.
    pub uploads: Vec<Upload>,
}

impl Dispatch {
    /// Bind `buffers` to `kernel` for `groups` workgroups.
    pub fn new(
        gpu: &Gpu,
        kernel: &Arc<Kernel>,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        Ok(Dispatch {
            kernel: kernel.clone(),
            bind: kernel.bind(gpu, buffers)?,
            groups,
            uploads: Vec::new(),
        })
    }

    /// Bind `res` (buffers and texture mirrors) to `kernel`; `uploads` refresh the mirrors from
    /// their buffers each time the dispatch is recorded.
    pub fn with_uploads(
        gpu: &Gpu,
        kernel: &Arc<Kernel>,
        res: &[Res],
        groups: [u32; 3],
        uploads: Vec<Upload>,
    ) -> Result<Dispatch> {
        Ok(Dispatch {
            kernel: kernel.clone(),
            bind: kernel.bind_res(gpu, res)?,
            groups,
            uploads,
        })
    }
}

impl Gpu {
    /// The kernel cached under `key`, declared with `make() -> (source, entry, slots)` on
    /// first use (its pipeline is created by `prepare` or when first recorded). Keys name the
    /// shader variant, e.g. `"conv_fwd/tm8_tn8"`; equal keys must mean equal WGSL.
    pub fn kernel(
        &self,
        key: &str,
        make: impl FnOnce() -> (String, &'static str, Vec<Slot>),
    ) -> Result<Arc<Kernel>> {
        if let Some(k) = self.kernels.lock().expect("kernel cache").get(key) {
            return Ok(k.clone());
        }
        let (src, entry, slots) = make();
        let k = Arc::new(Kernel::declare(self, key, &src, entry, &slots)?);
        let mut kernels = self.kernels.lock().expect("kernel cache");
        // Another thread may have declared the same key meanwhile: keep the first.
        Ok(kernels.entry(key.to_string()).or_insert(k).clone())
    }

    /// A uniform buffer holding `params` (e.g. `[u32; 8]` of shapes). Pad to 16 bytes.
    pub fn uniform<T: bytemuck::Pod>(&self, params: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(params);
        let size = (bytes.len() as u64).div_ceil(16) * 16;
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buf, 0, bytes);
        buf
    }

    /// Start recording dispatches.
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder {
            gpu: self,
            encoder: Some(self.device.create_command_encoder(&Default::default())),
            pass: None,
        }
    }
}

/// Workgroup counts covering `n` invocations of a 1-D kernel with `wg` invocations per group,
/// folded into x and y when `n / wg` exceeds the 65535 limit of one dimension. Shaders
/// recover the linear index as `gid.x + gid.y * nwg.x * WG`.
pub fn grid_1d(n: usize, wg: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(wg as u64).max(1);
    if groups <= 65535 {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(65535);
        [groups.div_ceil(y) as u32, y as u32, 1]
    }
}

/// Records dispatches and copies into one command buffer; wgpu inserts the barriers between
/// dispatches that touch the same buffers.
pub struct Recorder<'g> {
    gpu: &'g Gpu,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
}

impl Recorder<'_> {
    /// Queue one dispatch of `kernel` with `bind` over `groups` workgroups.
    pub fn dispatch(&mut self, kernel: &Kernel, bind: &wgpu::BindGroup, groups: [u32; 3]) {
        if self.pass.is_none() {
            let enc = self.encoder.as_mut().expect("recorder used after submit");
            self.pass = Some(
                enc.begin_compute_pass(&Default::default())
                    .forget_lifetime(),
            );
        }
        let pass = self.pass.as_mut().expect("pass just created");
        pass.set_pipeline(kernel.pipeline(self.gpu));
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    /// Queue a prepared dispatch (after refreshing the texture mirrors it reads).
    pub fn run(&mut self, d: &Dispatch) {
        if !d.uploads.is_empty() {
            self.pass = None;
            let enc = self.encoder.as_mut().expect("recorder used after submit");
            for u in &d.uploads {
                u.mirror.record_upload(enc, &u.src);
            }
        }
        self.dispatch(&d.kernel, &d.bind, d.groups);
    }

    /// Queue a buffer-to-buffer copy of `bytes` bytes.
    pub fn copy(&mut self, src: &wgpu::Buffer, dst: &wgpu::Buffer, bytes: u64) {
        self.pass = None;
        let enc = self.encoder.as_mut().expect("recorder used after submit");
        enc.copy_buffer_to_buffer(src, 0, dst, 0, bytes);
    }

    /// Queue a copy of `bytes` bytes from `src` at byte `src_offset` to `dst` at byte
    /// `dst_offset` (offsets and size multiples of 4).
    pub fn copy_region(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    ) {
        self.pass = None;
        let enc = self.encoder.as_mut().expect("recorder used after submit");
        enc.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
    }

    /// Submit everything recorded (does not wait).
    pub fn submit(mut self) {
        self.pass = None;
        let enc = self.encoder.take().expect("recorder used after submit");
        self.gpu.queue.submit([enc.finish()]);
    }
}
