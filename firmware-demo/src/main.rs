//! Cortex-M4F demo: runs an exported (folded) TSC-ResNet on a few embedded test images with
//! `tsc-core` and reports over semihosting. See `docs/FIRMWARE.md`.
//!
//! Output (parsed by `tests/firmware.rs`; keep the per-image lines stable):
//! ```text
//! image 3: label 7 "7", predicted 7 "7" (correct)
//!   logits: -0.123456 1.234567 ...
//! ```
//! then `accuracy: k/n (p%)`, the cycle count, RAM use (statics and the stack's
//! high-water mark, measured by painting the stack) and `done`. Exit status: success when every
//! image ran (a misprediction is not a failure: the default model may be untrained); failure
//! on any error from `tsc-core`, or a panic.

#![no_std]
#![no_main]

mod images;

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{DWT, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hio};
use panic_semihosting as _;
use tsc_core::{layers::argmax, Model};

include!(concat!(env!("OUT_DIR"), "/model_consts.rs"));

/// The model chosen at build time (`TSC_MODEL`), copied into `OUT_DIR` by `build.rs`.
static MODEL_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.tscm"));
/// Its test images (`TSC_IMAGES`), format in `images.rs`.
static IMAGE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images.bin"));

/// A statically allocated buffer handed out at most once as `&'static mut`: no heap, no
/// `static mut`, and zero-initialised so it lives in `.bss` (no copy through the stack).
struct TakeOnce<T> {
    taken: AtomicBool,
    cell: UnsafeCell<T>,
}

// SAFETY: the cell is only reachable through `take`, which hands out one reference ever.
unsafe impl<T> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    const fn new(v: T) -> Self {
        TakeOnce {
            taken: AtomicBool::new(false),
            cell: UnsafeCell::new(v),
        }
    }
    // The `&mut` comes out of the `UnsafeCell`, at most once (guarded by `taken`).
    #[allow(clippy::mut_from_ref)]
    fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            None
        } else {
            // SAFETY: `taken` was false, so no other reference to the contents exists.
            Some(unsafe { &mut *self.cell.get() })
        }
    }
}

/// Inference scratch, sized by `build.rs` from the model (`Model::scratch_len`).
static SCRATCH: TakeOnce<[f32; SCRATCH_LEN]> = TakeOnce::new([0.0; SCRATCH_LEN]);
/// One input image.
static INPUT: TakeOnce<[f32; INPUT_LEN]> = TakeOnce::new([0.0; INPUT_LEN]);

/// SysTick wraps (24-bit counter), for the fallback timer.
static SYST_WRAPS: AtomicU32 = AtomicU32::new(0);
const SYST_RELOAD: u32 = 0x00FF_FFFF;

#[exception]
fn SysTick() {
    SYST_WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick ticks since it was started (counts down from `SYST_RELOAD`; the exception counts
/// wraps). A wrap between the reads retries. The counter can reload before its exception
/// is taken (QEMU delivers it late): a pending SysTick exception then counts as one more wrap.
fn systick_now() -> u64 {
    use cortex_m::peripheral::SCB;
    loop {
        let w0 = SYST_WRAPS.load(Ordering::Acquire);
        let p0 = SCB::is_pendst_pending();
        let val = SYST::get_current();
        let p1 = SCB::is_pendst_pending();
        let w1 = SYST_WRAPS.load(Ordering::Acquire);
        if w0 == w1 && p0 == p1 {
            let wraps = w0 as u64 + p0 as u64;
            return wraps * (SYST_RELOAD as u64 + 1) + (SYST_RELOAD - val) as u64;
        }
    }
}

/// Buffers semihosting output so that a line is one host call, not one per format piece.
struct Out {
    buf: [u8; 256],
    len: usize,
    host: Option<hio::HostStream>,
}

impl Out {
    fn new() -> Self {
        Out {
            buf: [0; 256],
            len: 0,
            host: hio::hstdout().ok(),
        }
    }
    fn flush(&mut self) {
        if let Some(h) = self.host.as_mut() {
            let _ = h.write_all(&self.buf[..self.len]);
        }
        self.len = 0;
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

extern "C" {
    /// Top of the stack and end of the statics (cortex-m-rt's `link.x`).
    static _stack_start: u32;
    static _stack_end: u32;
}

const PAINT: u32 = 0x5AC3_5AC3;
/// Bytes of stack below `main`'s frame painted to measure the high-water mark.
const PAINT_WINDOW: usize = 64 * 1024;

/// Fills the free stack below the current frame with `PAINT`; returns the lowest painted
/// address. No interrupt is enabled yet, so nothing else uses that memory meanwhile.
#[inline(never)]
fn paint_stack() -> usize {
    let sp = cortex_m::register::msp::read() as usize;
    let end = core::ptr::addr_of!(_stack_end) as usize;
    let lo = sp.saturating_sub(PAINT_WINDOW).max(end) & !3;
    let hi = sp - 256; // well below this function's own frame
    let mut a = lo;
    while a < hi {
        // SAFETY: free stack between the statics and the live frames, 4-byte aligned.
        unsafe { core::ptr::write_volatile(a as *mut u32, PAINT) };
        a += 4;
    }
    lo
}

/// Deepest stack use since [`paint_stack`], in bytes below the top of the stack.
fn stack_high_water(lo: usize) -> usize {
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut a = lo;
    // SAFETY: reads of the region painted above.
    while a < top && unsafe { core::ptr::read_volatile(a as *const u32) } == PAINT {
        a += 4;
    }
    top - a
}

#[entry]
fn main() -> ! {
    let lo = paint_stack();
    let mut out = Out::new();
    let ok = run(&mut out);
    let _ = writeln!(
        out,
        "RAM: {} bytes static (scratch, input, state), {} bytes peak stack",
        ram_static(),
        stack_high_water(lo)
    );
    if ok {
        let _ = writeln!(out, "done");
    }
    out.flush();
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Bytes of RAM taken by statics (`.data`, `.bss`, `.uninit`): from the start of RAM to the
/// end of the statics.
fn ram_static() -> usize {
    core::ptr::addr_of!(_stack_end) as usize - 0x2000_0000
}

/// Everything the demo does; `false` on an error (already reported).
fn run(out: &mut Out) -> bool {
    let mut cp = cortex_m::Peripherals::take().unwrap();
    let (Some(scratch), Some(input)) = (SCRATCH.take(), INPUT.take()) else {
        let _ = writeln!(out, "error: static buffers already taken");
        return false;
    };

    let _ = writeln!(
        out,
        "tsc firmware-demo on Cortex-M4F: model {MODEL_NAME} ({} bytes), scratch {} f32 \
         ({} bytes, static), {IMAGE_COUNT} test images",
        MODEL_BYTES.len(),
        SCRATCH_LEN,
        4 * SCRATCH_LEN
    );
    // cortex-m-rt's reset handler turns the FPU on for eabihf targets (CPACR CP10/CP11 full
    // access); check it, as every f32 operation below depends on it.
    let fpu = (cp.SCB.cpacr.read() >> 20) & 0xF == 0xF;
    let _ = writeln!(
        out,
        "FPU: {}",
        if fpu {
            "enabled (CPACR CP10/CP11 full access)"
        } else {
            "NOT enabled"
        }
    );

    let model = match Model::parse(MODEL_BYTES) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(out, "error: model: {e}");
            return false;
        }
    };
    let imgs = match images::Images::parse(IMAGE_BYTES) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(out, "error: test images: {e}");
            return false;
        }
    };
    let arch = model.arch();
    let _ = writeln!(
        out,
        "model: {:?}, input {}x{}x{}, {} classes, {} blocks, step mode {:?}",
        model.kind(),
        arch.input.h,
        arch.input.w,
        arch.input.c,
        arch.classes,
        arch.total_blocks(),
        arch.step
    );

    // Cycle counter: DWT CYCCNT where the core implements it; SysTick as the fallback.
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(SYST_RELOAD);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let mut logits = [0.0f32; CLASSES];
    let mut correct = 0usize;
    let (mut cycles, mut ticks) = (0u64, 0u64);
    for i in 0..imgs.count {
        imgs.read(i, input);
        let label = imgs.label(i) as usize;
        let c0 = DWT::cycle_count();
        let t0 = systick_now();
        let r = tsc_core::infer(&model, input, scratch, &mut logits);
        let t1 = systick_now();
        let c1 = DWT::cycle_count();
        if let Err(e) = r {
            let _ = writeln!(out, "image {i}: error: {e}");
            return false;
        }
        cycles += c1.wrapping_sub(c0) as u64;
        ticks += t1.saturating_sub(t0);
        let pred = argmax(&logits).unwrap_or(0);
        correct += (pred == label) as usize;
        let _ = writeln!(
            out,
            "image {i}: label {label} {:?}, predicted {pred} {:?} ({})",
            model.class_name(label).unwrap_or("?"),
            model.class_name(pred).unwrap_or("?"),
            if pred == label { "correct" } else { "wrong" }
        );
        let _ = write!(out, "  logits:");
        for l in &logits {
            let _ = write!(out, " {l:.6}");
        }
        let _ = writeln!(out);
    }
    let n = imgs.count;
    let _ = writeln!(
        out,
        "accuracy: {correct}/{n} ({:.1}%)",
        100.0 * correct as f32 / n as f32
    );
    if cycles > 0 {
        let _ = writeln!(
            out,
            "cycles per inference: {} (DWT CYCCNT)",
            cycles / n as u64
        );
    } else {
        let _ = writeln!(
            out,
            "cycles per inference: cycle counter not available under QEMU (DWT CYCCNT reads 0); \
             SysTick: {} core-clock ticks per inference (QEMU: emulated time, not cycle-accurate)",
            ticks / n as u64
        );
    }
    true
}
