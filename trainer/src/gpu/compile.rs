//! Pipeline compilation: ahead of time, on every core, cached across runs.
//!
//! Building a graph only *declares* its kernels (`Gpu::kernel` parses and validates the WGSL);
//! `Gpu::prepare` then compiles every declared kernel before the first step:
//! - pipelines are created from one thread per core (GPU drivers compile there);
//! - every kernel gets one empty dispatch (zero workgroups), because llvmpipe (lavapipe, the
//!   CPU Vulkan driver) JITs a pipeline at its first dispatch, on the device's single queue
//!   thread, not when it is created. To spread that JIT over the cores, on CPU adapters each
//!   worker thread opens a helper device on the same adapter and runs the empty dispatch
//!   there: the JIT lands in Mesa's on-disk shader cache, and the real device's own empty
//!   dispatch then loads it from there (measured on lavapipe: a 16×16 conv tile JITs in
//!   5.6 s on a helper; the main device then needs 0.24 s, its pipeline creation included).
//!   With Mesa's cache off (`MESA_SHADER_CACHE_DISABLE`) helpers would only double the work,
//!   so the main device JITs alone then.
//! - where the backend offers `PIPELINE_CACHE` (Vulkan), pipelines go through a driver
//!   pipeline cache persisted under the user's cache folder (`DiskPipelineCache`).
//!
//! A kernel nobody prepared is compiled when first recorded, so nothing depends on `prepare`
//! for correctness; it only moves the wait to one place, in parallel, with progress.

use super::context::{open_device, Gpu};
use super::kernel::{bind_slots, layouts, Kernel, Res, Slot};
use super::texture::{mirror_height, TEX_W};
use anyhow::{anyhow, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What one `Gpu::prepare` did.
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    /// Kernels compiled (0: everything was ready).
    pub kernels: usize,
    /// Worker threads used.
    pub threads: usize,
    /// Whether helper devices JIT-compiled into Mesa's shader cache (CPU adapters).
    pub helpers: bool,
    /// Wall seconds.
    pub seconds: f64,
}

impl std::fmt::Display for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compiled {} kernels in {:.1} s on {} thread{}{}",
            self.kernels,
            self.seconds,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            if self.helpers {
                " (helper devices JIT into Mesa's shader cache)"
            } else {
                ""
            }
        )
    }
}

/// Whether Mesa's on-disk shader cache is on (its default). Only then can helper devices
/// hand their JIT to the main device.
pub fn mesa_cache_enabled() -> bool {
    let off = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
    !std::env::var("MESA_SHADER_CACHE_DISABLE").is_ok_and(|v| off(&v))
        && !std::env::var("MESA_DISK_CACHE_DISABLE").is_ok_and(|v| off(&v))
}

/// Environment variable: worker threads for `Gpu::prepare` (default: one per core; 1 compiles
/// serially on the device, as on first use).
pub const COMPILE_THREADS_ENV: &str = "TSC_COMPILE_THREADS";

/// Worker threads for compiling.
fn threads() -> usize {
    std::env::var(COMPILE_THREADS_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Gpu {
    /// Every kernel declared on this device so far.
    pub fn kernels(&self) -> Vec<Arc<Kernel>> {
        let mut v: Vec<Arc<Kernel>> = self
            .kernels
            .lock()
            .expect("kernel cache")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Compile every declared kernel that is not ready yet, on all cores, with a progress bar
    /// on a terminal ("compiling kernels 37/112"). Call it after building the graphs of a run.
    pub fn prepare(&self) -> Result<Prepared> {
        self.prepare_with(true)
    }

    /// `prepare`, with (`progress`) or without a progress bar.
    pub fn prepare_with(&self, progress: bool) -> Result<Prepared> {
        let t0 = Instant::now();
        let mut pending: Vec<Arc<Kernel>> = self
            .kernels()
            .into_iter()
            .filter(|k| k.compile_stats().warm_s.is_none())
            .collect();
        if pending.is_empty() {
            return Ok(Prepared::default());
        }
        // Longest first, so the last kernel to finish is a short one.
        pending.sort_by_key(|k| std::cmp::Reverse(k.source.len()));
        let n = pending.len();
        let threads = threads().min(n);
        // Helpers only help where the driver JITs at first dispatch into a shared on-disk
        // cache: Mesa's llvmpipe (other CPU drivers, e.g. SwiftShader, would JIT twice).
        let helpers = self.is_cpu()
            && self.info.name.contains("llvmpipe")
            && threads > 1
            && mesa_cache_enabled();
        let bar = progress_bar(progress, n as u64, "compiling kernels");
        let next = AtomicUsize::new(0);
        let errors = Mutex::new(Vec::new());
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| {
                    let helper = helpers.then(|| Helper::open(&self.adapter).ok()).flatten();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(k) = pending.get(i) else { break };
                        if let Some(h) = &helper {
                            let t = Instant::now();
                            // A failed warm-up only loses the head start: the main device
                            // still compiles the kernel below.
                            let _ = h.warm(k);
                            k.stats.lock().expect("kernel stats").helper_s =
                                Some(t.elapsed().as_secs_f64());
                        }
                        if let Err(e) = k.compile(self) {
                            errors.lock().expect("errors").push(e);
                        }
                        bar.inc(1);
                    }
                });
            }
        });
        if let Some(e) = errors.into_inner().expect("errors").into_iter().next() {
            bar.finish_and_clear();
            return Err(e);
        }
        // The device's own first dispatch of each kernel: the JIT on llvmpipe (a cache load
        // after the helpers), next to nothing on GPU drivers.
        if !helpers && self.is_cpu() {
            bar.set_position(0);
            bar.set_message("(JIT)");
        }
        let dummies = Dummies::new(&self.device);
        for k in &pending {
            let t = Instant::now();
            // In an error scope: were a stand-in resource ever unfit for a kernel, that kernel
            // just JITs at its first real dispatch instead.
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let bind = dummies.bind(&self.device, k.bind_group_layout(), &k.name, &k.slots)?;
            let mut rec = self.recorder();
            rec.dispatch(k, &bind, [0, 0, 0]);
            rec.submit();
            self.wait()?;
            if let Some(e) = pollster::block_on(scope.pop()) {
                eprintln!(
                    "warning: warming kernel {} failed ({e}); it compiles at first use",
                    k.name
                );
            }
            k.stats.lock().expect("kernel stats").warm_s = Some(t.elapsed().as_secs_f64());
            if !helpers && self.is_cpu() {
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        if let Some(c) = &self.pipelines {
            if let Err(e) = c.save() {
                eprintln!("warning: pipeline cache not saved: {e:#}");
            }
        }
        Ok(Prepared {
            kernels: n,
            threads,
            helpers,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

fn progress_bar(show: bool, len: u64, what: &'static str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{prefix} {pos}/{len} {msg} [{elapsed}]")
            .expect("valid template"),
    );
    pb.set_prefix(what);
    pb
}

/// A second device on the same adapter whose only job is to JIT kernels into Mesa's cache.
struct Helper {
    device: wgpu::Device,
    queue: wgpu::Queue,
    dummies: Dummies,
}

impl Helper {
    fn open(adapter: &wgpu::Adapter) -> Result<Helper> {
        let (device, queue) = open_device(adapter)?;
        let dummies = Dummies::new(&device);
        Ok(Helper {
            device,
            queue,
            dummies,
        })
    }

    /// Create `k`'s pipeline here and run it over zero workgroups, which makes llvmpipe JIT it.
    fn warm(&self, k: &Kernel) -> Result<()> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&k.name),
                source: wgpu::ShaderSource::Wgsl(k.source.as_str().into()),
            });
        let (layout, pl) = layouts(&self.device, &k.name, &k.slots);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&k.name),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(&k.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        let bind = self
            .dummies
            .bind(&self.device, &layout, &k.name, &k.slots)?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(0, 0, 0);
        }
        self.queue.submit([enc.finish()]);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("helper device poll failed: {e}"))?;
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(anyhow!("warming {} on a helper device: {e}", k.name)),
            None => Ok(()),
        }
    }
}

/// Stand-in resources for empty dispatches: a small buffer per binding (a buffer bound both
/// read-only and read-write in one dispatch would be a usage conflict), one uniform, and one
/// texture shaped like every texture mirror (`TEX_W` wide, a height that is not a power of
/// two), so llvmpipe compiles the very variant the real dispatches will use.
struct Dummies {
    uniform: wgpu::Buffer,
    view: wgpu::TextureView,
}

impl Dummies {
    fn new(device: &wgpu::Device) -> Dummies {
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("warm uniform"),
            size: 4096,
            usage: wgpu::BufferUsages::UNIFORM,
            mapped_at_creation: false,
        });
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("warm texture"),
            size: wgpu::Extent3d {
                width: TEX_W,
                height: mirror_height(1) as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        Dummies {
            uniform,
            view: texture.create_view(&Default::default()),
        }
    }

    fn bind(
        &self,
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        name: &str,
        slots: &[Slot],
    ) -> Result<wgpu::BindGroup> {
        let bufs: Vec<wgpu::Buffer> = slots
            .iter()
            .map(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("warm storage"),
                    size: 256,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let res: Vec<Res> = slots
            .iter()
            .zip(&bufs)
            .map(|(s, b)| match s {
                Slot::Uniform => Res::Buf(&self.uniform),
                Slot::Texture => Res::Tex(&self.view),
                Slot::Read | Slot::ReadWrite => Res::Buf(b),
            })
            .collect();
        bind_slots(device, layout, name, slots, &res)
    }
}

/// Environment variable: `off` disables the on-disk pipeline cache.
pub const PIPELINE_CACHE_ENV: &str = "TSC_PIPELINE_CACHE";

const CACHE_MAGIC: &[u8; 8] = b"TSCPIPE1";

/// A driver pipeline cache (`wgpu::PipelineCache`, Vulkan only) loaded from and saved to
/// `<cache folder>/pipelines/<adapter>.bin`. The file wraps the driver's blob in a header
/// that names the adapter, its driver version and this crate's version, with the blob's
/// length and CRC-32: a truncated, corrupt or foreign file is ignored with a warning (the
/// driver then starts from an empty cache), never handed to the driver.
pub struct DiskPipelineCache {
    pub(crate) cache: wgpu::PipelineCache,
    path: PathBuf,
    key: String,
    /// CRC-32 of the blob loaded at start (`None`: nothing loaded).
    loaded_crc: Option<u32>,
}

/// The identity a cache file must carry to be used on this adapter (`None`: the backend has
/// no pipeline cache).
pub fn cache_key(info: &wgpu::AdapterInfo) -> Option<String> {
    let base = wgpu::util::pipeline_cache_key(info)?;
    Some(format!(
        "{base} {} {} {} tsc-trainer {}",
        info.name,
        info.driver,
        info.driver_info,
        env!("CARGO_PKG_VERSION")
    ))
}

/// The blob inside a cache file, if the file is whole and was written for `key`.
pub fn unwrap_cache_file<'a>(bytes: &'a [u8], key: &str) -> Result<&'a [u8]> {
    let take = |b: &'a [u8], n: usize| -> Result<(&'a [u8], &'a [u8])> {
        (b.len() >= n)
            .then(|| b.split_at(n))
            .ok_or_else(|| anyhow!("truncated"))
    };
    let (magic, rest) = take(bytes, 8)?;
    anyhow::ensure!(magic == CACHE_MAGIC, "not a tsc pipeline cache");
    let (klen, rest) = take(rest, 4)?;
    let klen = u32::from_le_bytes(klen.try_into().expect("4 bytes")) as usize;
    let (k, rest) = take(rest, klen)?;
    anyhow::ensure!(
        k == key.as_bytes(),
        "written for another adapter, driver or version"
    );
    let (len, rest) = take(rest, 8)?;
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let (crc, data) = take(rest, 4)?;
    anyhow::ensure!(data.len() as u64 == len, "length field does not match");
    let crc = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    anyhow::ensure!(tsc_core::crc32::crc32(data) == crc, "checksum mismatch");
    Ok(data)
}

/// A cache file holding `data` for `key` (what `unwrap_cache_file` reads).
pub fn wrap_cache_file(data: &[u8], key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + key.len() + 24);
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&tsc_core::crc32::crc32(data).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// Where pipeline caches live: `<cache folder>/pipelines` (`$XDG_CACHE_HOME/tsc-trainer`,
/// else `~/.cache/tsc-trainer`, as for datasets).
pub fn pipeline_cache_dir() -> PathBuf {
    crate::data::download::default_cache_dir().join("pipelines")
}

impl DiskPipelineCache {
    /// The cache for `device`'s adapter, loaded from disk when a valid file exists; `None`
    /// where the device has no pipeline caching or `TSC_PIPELINE_CACHE=off`.
    pub(crate) fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<Self> {
        if std::env::var(PIPELINE_CACHE_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            return None;
        }
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let key = cache_key(info)?;
        let name: String = key
            .split(' ')
            .next()
            .unwrap_or("adapter")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = pipeline_cache_dir().join(format!(
            "{name}-{:08x}.bin",
            tsc_core::crc32::crc32(key.as_bytes())
        ));
        let bytes = std::fs::read(&path).ok();
        let data = bytes
            .as_deref()
            .and_then(|b| match unwrap_cache_file(b, &key) {
                Ok(d) => Some(d),
                Err(e) => {
                    eprintln!(
                        "warning: ignoring pipeline cache {}: {e:#} (it will be rewritten)",
                        path.display()
                    );
                    None
                }
            });
        // Safety: `data` passed the file's checksum and was written by `save` from
        // `PipelineCache::get_data` on an adapter with the same vendor, device, driver and
        // driver version (the key), as `create_pipeline_cache` requires; `fallback` makes the
        // driver start empty rather than fail if it still rejects the blob.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("tsc pipelines"),
                data,
                fallback: true,
            })
        };
        Some(DiskPipelineCache {
            cache,
            path,
            key,
            loaded_crc: data.map(tsc_core::crc32::crc32),
        })
    }

    /// Write the cache to disk (atomically) unless the driver's blob is what was loaded.
    pub(crate) fn save(&self) -> Result<()> {
        let Some(data) = self.cache.get_data() else {
            return Ok(());
        };
        if Some(tsc_core::crc32::crc32(&data)) == self.loaded_crc {
            return Ok(());
        }
        crate::model::write_atomic(&self.path, &wrap_cache_file(&data, &self.key))
    }
}

#[cfg(test)]
mod tests {
    use super::{unwrap_cache_file, wrap_cache_file};

    /// A cache file round-trips, and every damaged or foreign variant is refused (so it never
    /// reaches the driver).
    #[test]
    fn cache_files_are_checked_before_use() {
        let key = "wgpu_pipeline_cache_vulkan_1_2 llvmpipe 22.3.6 tsc-trainer 0.1.0";
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let file = wrap_cache_file(&data, key);
        assert_eq!(unwrap_cache_file(&file, key).unwrap(), &data[..]);
        assert!(unwrap_cache_file(&file, "another adapter").is_err());
        for cut in [0, 5, 8, 12, file.len() - 1] {
            assert!(
                unwrap_cache_file(&file[..cut], key).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(unwrap_cache_file(&longer, key).is_err());
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(unwrap_cache_file(&bad, key).is_err(), "flipped byte {i}");
        }
        assert!(unwrap_cache_file(b"", key).is_err());
    }
}
