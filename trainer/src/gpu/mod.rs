//! The GPU layer: device context, tensors, kernels. Every kernel's WGSL lives in `shaders/`
//! and has a CPU reference in `crate::reference` that the tests compare against.
pub mod context;
pub mod kernel;
pub mod tensor;

pub use context::{list_adapters, Gpu};
pub use kernel::{grid_1d, specialize, Dispatch, Kernel, Recorder, Slot};
pub use tensor::{BufferPool, Tensor};
