//! Device context: adapter choice, device creation, limits.
//!
//! One `Gpu` per process. It owns the wgpu device and queue and knows what kind of adapter it
//! runs on, which the kernels use to pick tile shapes (see `TileConfig`).

use anyhow::{anyhow, bail, Context, Result};

/// Environment variable that selects an adapter when `--adapter` is not given.
pub const ADAPTER_ENV: &str = "TSC_ADAPTER";

/// What `trainer devices` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
    pub driver: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
}

/// The device context shared by every kernel.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Compiled kernels by key, so each shader variant is compiled once per process.
    pub(crate) kernels:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<super::Kernel>>>,
    /// The driver's pipeline cache, persisted across runs where the backend has one
    /// (`crate::gpu::compile`).
    pub(crate) pipelines: Option<super::compile::DiskPipelineCache>,
    /// How many images the graphs being built will process (`set_expected_images`).
    expected_images: std::sync::atomic::AtomicU64,
}

/// A device on `adapter` with every limit the adapter offers (large activations need big
/// storage bindings) and, where offered, pipeline caching.
pub(crate) fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue)> {
    let info = adapter.get_info();
    let features = adapter.features() & wgpu::Features::PIPELINE_CACHE;
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("tsc"),
        required_features: features,
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .with_context(|| format!("could not open GPU device on adapter '{}'", info.name))
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

fn adapters() -> Vec<wgpu::Adapter> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::PRIMARY))
}

/// Higher is better: discrete GPUs first, the CPU rasteriser last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

const NO_ADAPTER: &str = "no GPU adapter found: install a Vulkan driver \
     (on Debian/Ubuntu without a GPU: apt-get install mesa-vulkan-drivers)";

/// Every adapter wgpu sees, in enumeration order (the index `--adapter N` refers to).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters()
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let info = a.get_info();
            let l = a.limits();
            AdapterSummary {
                index,
                name: info.name,
                backend: info.backend,
                device_type: info.device_type,
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_buffer_size: l.max_buffer_size,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            }
        })
        .collect()
}

impl Gpu {
    /// Open a device. `selector` is an adapter index or a case-insensitive name substring;
    /// `None` falls back to `$TSC_ADAPTER`, then to the best adapter by type.
    pub fn new(selector: Option<&str>) -> Result<Gpu> {
        let env = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
        let selector = selector.map(str::to_string).or(env);
        let all = adapters();
        if all.is_empty() {
            bail!(NO_ADAPTER);
        }
        let adapter = match selector.as_deref() {
            Some(sel) => pick(&all, sel)?,
            None => all
                .iter()
                .max_by_key(|a| rank(a.get_info().device_type))
                .expect("non-empty"),
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = open_device(adapter)?;
        let pipelines = super::compile::DiskPipelineCache::open(&device, &info);
        Ok(Gpu {
            adapter: adapter.clone(),
            device,
            queue,
            info,
            limits,
            kernels: Default::default(),
            pipelines,
            expected_images: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    /// Tell kernel selection how many images the graphs built from now on will process in
    /// all (a run's epochs × steps × batch), so that on CPU adapters, where large register
    /// tiles cost a minute of JIT each, a short run takes cheaper-to-compile tiles
    /// (`conv::budget_tile`). Counted in images rather than dispatches, so the evaluation
    /// graphs of a run (other batch sizes, the same layers) choose the training graph's tiles
    /// and share its pipelines. The default, `u64::MAX`, means "long run": the fastest tiles.
    /// Choose it from the run's configuration only, so a resumed run picks the same kernels.
    pub fn set_expected_images(&self, images: u64) {
        self.expected_images
            .store(images.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The value of `set_expected_images`.
    pub fn expected_images(&self) -> u64 {
        self.expected_images
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The pipeline cache new pipelines go through, if any.
    pub(crate) fn pipeline_cache(&self) -> Option<&wgpu::PipelineCache> {
        self.pipelines.as_ref().map(|c| &c.cache)
    }

    /// True for software adapters (lavapipe, SwiftShader, WARP): they want big register tiles.
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Block until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("GPU poll failed: {e}"))?;
        Ok(())
    }

    /// One-line description for logs: name, type, backend.
    /// The largest tensor this device can hold and bind to one kernel, in bytes (the
    /// smaller of `max_storage_buffer_binding_size` and `max_buffer_size`).
    pub fn max_tensor_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Refuses, before anything is allocated, a batch whose largest tensor (`per_image` f32
    /// per image, `what` for the message) would exceed [`Gpu::max_tensor_bytes`]; wgpu's
    /// validation would otherwise panic. Names `--batch` and the largest value that fits.
    pub fn check_batch_fits(&self, batch: usize, per_image: usize, what: &str) -> Result<()> {
        let limit = self.max_tensor_bytes();
        let per = 4 * per_image.max(1) as u64;
        if per * batch as u64 > limit {
            let fits = limit / per;
            let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
            if fits == 0 {
                bail!(
                    "{what} needs {:.1} MiB per image, over this adapter's {:.0} MiB per storage buffer: the input is too large for this GPU",
                    mib(per),
                    mib(limit)
                );
            }
            bail!(
                "--batch {batch}: the {what} would need {:.1} MiB in one buffer, over this adapter's {:.0} MiB per storage buffer; the largest --batch that fits is {fits}",
                mib(per * batch as u64),
                mib(limit)
            );
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.device_type, self.info.backend
        )
    }
}

fn pick<'a>(all: &'a [wgpu::Adapter], sel: &str) -> Result<&'a wgpu::Adapter> {
    if let Ok(i) = sel.parse::<usize>() {
        return all.get(i).ok_or_else(|| {
            anyhow!(
                "adapter index {i} out of range: {} adapter(s) found (see `trainer devices`)",
                all.len()
            )
        });
    }
    let want = sel.to_lowercase();
    all.iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&want))
        .ok_or_else(|| anyhow!("no adapter whose name contains '{sel}' (see `trainer devices`)"))
}
