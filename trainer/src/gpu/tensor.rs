//! GPU tensors: storage buffers with a shape, upload/download, and a buffer pool.

use super::context::Gpu;
use anyhow::{anyhow, Result};
use std::collections::HashMap;

/// A storage buffer of f32 (or u32) elements with a logical shape (NHWC for activations).
#[derive(Clone, Debug)]
pub struct Tensor {
    pub buf: wgpu::Buffer,
    pub shape: Vec<usize>,
}

impl Tensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size of the data in bytes (the buffer may be larger when it came from the pool).
    pub fn bytes(&self) -> u64 {
        4 * self.len() as u64
    }
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// wgpu rejects zero-sized bindings: every buffer holds at least one element.
fn padded_bytes(len: usize) -> u64 {
    4 * len.max(1) as u64
}

impl Gpu {
    /// An uninitialised (zeroed by wgpu) tensor.
    pub fn zeros(&self, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: padded_bytes(len),
            usage: USAGE,
            mapped_at_creation: false,
        });
        Tensor {
            buf,
            shape: shape.to_vec(),
        }
    }

    /// Copy host f32 data into a new tensor. Panics only if `data.len()` mismatches `shape`,
    /// which is a programming error, not user input.
    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Tensor {
        let t = self.zeros(shape);
        assert_eq!(
            data.len(),
            t.len(),
            "upload: data length does not match shape {shape:?}"
        );
        self.write(&t, data);
        t
    }

    /// Same as `upload` for u32 data (labels, indices).
    pub fn upload_u32(&self, data: &[u32], shape: &[usize]) -> Tensor {
        let t = self.zeros(shape);
        assert_eq!(
            data.len(),
            t.len(),
            "upload_u32: data length does not match shape {shape:?}"
        );
        if !data.is_empty() {
            self.queue
                .write_buffer(&t.buf, 0, bytemuck::cast_slice(data));
        }
        t
    }

    /// Overwrite a tensor's contents from the host (queued; ordered before later submissions).
    pub fn write(&self, t: &Tensor, data: &[f32]) {
        assert!(
            data.len() <= t.len(),
            "write: {} values into a tensor of {}",
            data.len(),
            t.len()
        );
        if !data.is_empty() {
            self.queue
                .write_buffer(&t.buf, 0, bytemuck::cast_slice(data));
        }
    }

    /// Fill every element with `value` (tests poison outputs with NaN this way).
    pub fn fill(&self, t: &Tensor, value: f32) {
        self.write(t, &vec![value; t.len()]);
    }

    /// Read a tensor back to the host (blocks until the GPU is done with it).
    pub fn download(&self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(bytemuck::cast_slice(&self.download_bytes(&t.buf, t.bytes())?).to_vec())
    }

    /// Read a u32 tensor back to the host.
    pub fn download_u32(&self, t: &Tensor) -> Result<Vec<u32>> {
        Ok(bytemuck::cast_slice(&self.download_bytes(&t.buf, t.bytes())?).to_vec())
    }

    /// Read the first `bytes` bytes of any buffer.
    pub fn download_bytes(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, 0, &staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| anyhow!("GPU readback was dropped"))?
            .map_err(|e| anyhow!("GPU readback failed: {e}"))?;
        let out = slice
            .get_mapped_range()
            .map_err(|e| anyhow!("GPU readback mapping failed: {e}"))?
            .to_vec();
        staging.unmap();
        Ok(out)
    }
}

/// Reuses buffers by size (tests only so far: the training graph allocates its tensors once,
/// up front, and does not use a pool).
#[derive(Default)]
pub struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Buffers created so far (tests assert it stops growing).
    pub created: usize,
}

impl BufferPool {
    /// A tensor of `shape`, reusing a released buffer of the same size when one exists.
    /// Contents are unspecified.
    pub fn acquire(&mut self, gpu: &Gpu, shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        let size = padded_bytes(len);
        if let Some(buf) = self.free.get_mut(&size).and_then(Vec::pop) {
            return Tensor {
                buf,
                shape: shape.to_vec(),
            };
        }
        self.created += 1;
        gpu.zeros(shape)
    }

    /// Give a tensor's buffer back for reuse.
    pub fn release(&mut self, t: Tensor) {
        self.free.entry(t.buf.size()).or_default().push(t.buf);
    }
}
