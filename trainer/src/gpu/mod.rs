//! The GPU layer: device context, tensors, kernels. Every kernel's WGSL lives in `shaders/`
//! and has a CPU reference in `crate::reference` that the tests compare against.
pub mod compile;
pub mod context;
pub mod kernel;
pub mod tensor;
pub mod texture;
// Step-size controllers (2fc, lstm), forward and backward.
pub mod controller;
// Convolution and matrix-multiply kernels with their tile tuning.
pub mod conv;
pub mod gemm;
pub mod space_to_depth;
pub mod tune;
// Non-convolution kernels (norm, elementwise, pooling, head, loss, optimizer, reductions,
// squeeze-excitation).
pub mod elementwise;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod se;

pub use compile::Prepared;
pub use context::{list_adapters, Gpu};
pub use kernel::{
    grid_1d, specialize, CompileStats, Dispatch, Kernel, Recorder, Res, Slot, Upload,
};
pub use reduce::Op;
pub use tensor::{BufferPool, Tensor};
pub use texture::TexMirror;
