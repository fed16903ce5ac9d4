//! The firmware demo's test-image file (`*-images.bin` next to a `.tscm` model).
//!
//! Shared, through `#[path]`, by the firmware (`no_std`), its `build.rs`, the host tool that
//! writes these files (`firmware-demo/tools`) and the QEMU comparison test
//! (`tests/firmware.rs`), so that all four read the same format. No dependencies.
//!
//! Layout, all integers little-endian `u32`:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `TSCI` |
//! | 4 | version `1` |
//! | 8 | `count`: number of images (≥ 1) |
//! | 12 | `h`, 16: `w`, 20: `c`: image shape (NHWC, batch 1) |
//! | 24 | `count` records: `label: u32`, then `h·w·c` pixels as `f32` LE |
//!
//! Pixels are intensities already scaled to `[0, 1]` (the input convention of
//! `tsc_core::infer`, which applies the model's own mean/std). The file is exactly
//! `24 + count·(4 + 4·h·w·c)` bytes.

#![allow(dead_code)]

pub const MAGIC: [u8; 4] = *b"TSCI";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagesError {
    /// Shorter than the header.
    Truncated,
    BadMagic,
    BadVersion(u32),
    /// No images, or a zero dimension.
    Empty,
    /// The length does not match the header.
    BadLength {
        expected: usize,
        got: usize,
    },
    /// A pixel that is not finite or outside `[0, 1]`.
    BadPixel {
        image: usize,
    },
}

impl core::fmt::Display for ImagesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImagesError::Truncated => write!(f, "shorter than the {HEADER_LEN}-byte header"),
            ImagesError::BadMagic => write!(f, "bad magic (expected \"TSCI\")"),
            ImagesError::BadVersion(v) => write!(f, "unsupported version {v} (expected {VERSION})"),
            ImagesError::Empty => write!(f, "no images or a zero image dimension"),
            ImagesError::BadLength { expected, got } => {
                write!(f, "length {got} bytes, the header implies {expected}")
            }
            ImagesError::BadPixel { image } => {
                write!(f, "image {image} has a pixel outside [0, 1] or not finite")
            }
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// A validated image file borrowed from bytes of any alignment.
#[derive(Clone, Copy, Debug)]
pub struct Images<'a> {
    bytes: &'a [u8],
    pub count: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl<'a> Images<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Images<'a>, ImagesError> {
        if bytes.len() < HEADER_LEN {
            return Err(ImagesError::Truncated);
        }
        if bytes[..4] != MAGIC {
            return Err(ImagesError::BadMagic);
        }
        let v = u32_at(bytes, 4);
        if v != VERSION {
            return Err(ImagesError::BadVersion(v));
        }
        let count = u32_at(bytes, 8) as usize;
        let (h, w, c) = (
            u32_at(bytes, 12) as usize,
            u32_at(bytes, 16) as usize,
            u32_at(bytes, 20) as usize,
        );
        if count == 0 || h == 0 || w == 0 || c == 0 {
            return Err(ImagesError::Empty);
        }
        let expected = h
            .checked_mul(w)
            .and_then(|n| n.checked_mul(c))
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(4))
            .and_then(|n| n.checked_mul(count))
            .and_then(|n| n.checked_add(HEADER_LEN))
            .unwrap_or(usize::MAX);
        if bytes.len() != expected {
            return Err(ImagesError::BadLength {
                expected,
                got: bytes.len(),
            });
        }
        let imgs = Images {
            bytes,
            count,
            h,
            w,
            c,
        };
        for i in 0..count {
            if !imgs
                .pixels(i)
                .all(|p| p.is_finite() && (0.0..=1.0).contains(&p))
            {
                return Err(ImagesError::BadPixel { image: i });
            }
        }
        Ok(imgs)
    }

    /// `h·w·c`.
    pub fn pixel_count(&self) -> usize {
        self.h * self.w * self.c
    }

    fn record(&self, i: usize) -> &'a [u8] {
        let len = 4 + 4 * self.pixel_count();
        let off = HEADER_LEN + i * len;
        &self.bytes[off..off + len]
    }

    /// Label of image `i` (`i < count`).
    pub fn label(&self, i: usize) -> u32 {
        u32_at(self.record(i), 0)
    }

    /// Pixels of image `i` (`i < count`), NHWC, in `[0, 1]`.
    pub fn pixels(&self, i: usize) -> impl Iterator<Item = f32> + 'a {
        self.record(i)[4..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Copies image `i` into `out` (`out.len() == pixel_count()`).
    pub fn read(&self, i: usize, out: &mut [f32]) {
        for (o, p) in out.iter_mut().zip(self.pixels(i)) {
            *o = p;
        }
    }
}
