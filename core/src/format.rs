//! The versioned binary model format (docs/FORMAT.md): zero-copy validating parser
//! ([`Model::parse`]) and streaming writer ([`write_model`], [`ModelWriter`]).
//!
//! Layout (all integers little-endian, no alignment anywhere):
//! fixed header (108 bytes; 68 in version 1) · stage table · normalisation · class names ·
//! tensor records · CRC-32 of every preceding byte.

use crate::arch::{
    Arch, BlockKind, BlockPart, BnField, Dims, ModelKind, Pool2d, ShortcutKind, StageSpec,
    StemSpec, StepMode, TensorId, TensorName, MAX_INPUT_CHANNELS, MAX_NAME_LEN, MAX_STAGES,
};
use crate::crc32::{crc32, Crc32};

/// File magic, bytes 0..4.
pub const MAGIC: [u8; 4] = *b"TSCM";
/// The version this crate writes. It also reads version 1 (CIFAR stem, basic blocks).
pub const VERSION: u32 = 2;
/// Size of the fixed part of a version-2 header (the version-1 fields, then stem, pool,
/// bottleneck and SE fields).
pub const FIXED_HEADER_LEN: usize = 108;
/// Size of the fixed part of a version-1 header.
pub const FIXED_HEADER_LEN_V1: usize = 68;
/// Largest number of dimensions of a stored tensor.
pub const MAX_NDIM: usize = 4;

/// Everything that can go wrong reading or writing a model file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The input is shorter than the header says (or than the fixed header).
    Truncated { needed: usize, got: usize },
    /// Bytes 0..4 are not [`MAGIC`].
    BadMagic,
    /// The version field is neither 1 nor [`VERSION`].
    UnsupportedVersion(u32),
    /// The input is longer than the header's `total_len`, or `total_len` is impossible.
    LengthMismatch { declared: usize, actual: usize },
    /// Stored CRC-32 differs from the one computed over bytes `0 .. total_len − 4`.
    BadChecksum { stored: u32, computed: u32 },
    /// A header field is out of range or inconsistent; names the field.
    InvalidHeader(&'static str),
    /// Well-formed but not implemented by this crate (e.g. bottleneck blocks).
    Unsupported(&'static str),
    /// Class name `i` is not valid UTF-8 (or too long, when writing).
    InvalidClassName(usize),
    /// The variable-length part does not parse (a record runs past the end, bad ndim, ...).
    Malformed(&'static str),
    /// A tensor name is empty, longer than 64 bytes, or not printable ASCII.
    InvalidTensorName,
    /// A tensor that the architecture does not have (and not `opt.*` / `meta.*`).
    UnexpectedTensor(TensorName),
    /// The same name appears twice.
    DuplicateTensor(TensorName),
    /// Records out of order: canonical tensors must follow the canonical order
    /// ([`TensorId::order_key`]), `opt.*`/`meta.*` names must increase bytewise.
    TensorOrder(TensorName),
    /// A tensor the architecture requires is absent.
    MissingTensor(TensorName),
    /// A tensor's shape differs from the architecture's.
    ShapeMismatch(TensorName),
    /// A required tensor holds NaN or ±inf.
    NonFinite(TensorName),
    /// A value is out of its domain (a negative BatchNorm variance).
    InvalidValue(TensorName),
    /// A size exceeds the crate's limits.
    TooLarge(&'static str),
    /// Writer misuse: wrong number of values or tensors for what was declared.
    WriterState(&'static str),
    /// The byte sink has no room left.
    SinkFull,
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use FormatError::*;
        match self {
            Truncated { needed, got } => write!(f, "truncated: need {needed} bytes, got {got}"),
            BadMagic => write!(f, "bad magic (not a TSCM model file)"),
            UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            LengthMismatch { declared, actual } => {
                write!(f, "length mismatch: header says {declared}, have {actual}")
            }
            BadChecksum { stored, computed } => {
                write!(
                    f,
                    "bad CRC-32: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            InvalidHeader(w) => write!(f, "invalid header field: {w}"),
            Unsupported(w) => write!(f, "unsupported: {w}"),
            InvalidClassName(i) => write!(f, "invalid class name #{i}"),
            Malformed(w) => write!(f, "malformed file: {w}"),
            InvalidTensorName => write!(f, "invalid tensor name"),
            UnexpectedTensor(n) => write!(f, "unexpected tensor {n}"),
            DuplicateTensor(n) => write!(f, "duplicate tensor {n}"),
            TensorOrder(n) => write!(f, "tensor {n} out of order"),
            MissingTensor(n) => write!(f, "missing tensor {n}"),
            ShapeMismatch(n) => write!(f, "wrong shape for tensor {n}"),
            NonFinite(n) => write!(f, "non-finite value in tensor {n}"),
            InvalidValue(n) => write!(f, "invalid value in tensor {n}"),
            TooLarge(w) => write!(f, "too large: {w}"),
            WriterState(w) => write!(f, "writer misuse: {w}"),
            SinkFull => write!(f, "output buffer full"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FormatError {}

fn tname(s: &str) -> TensorName {
    let mut n = TensorName::new();
    for ch in s.chars() {
        if n.push(ch).is_err() {
            break;
        }
    }
    n
}

/// A valid tensor name: 1..=64 bytes of printable ASCII (0x21..=0x7E).
pub fn valid_tensor_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.iter().all(|b| (0x21..=0x7E).contains(b))
}

/// Names the format reserves for extra tensors readers may skip.
pub fn is_extra_name(name: &str) -> bool {
    name.starts_with("opt.") || name.starts_with("meta.")
}

fn is_bn_var(id: TensorId) -> bool {
    matches!(
        id,
        TensorId::StemBn(BnField::Var)
            | TensorId::Block {
                part: BlockPart::Bn(_, BnField::Var) | BlockPart::ProjBn(BnField::Var),
                ..
            }
    )
}

// ---------------------------------------------------------------------------------------
// Reading

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(FormatError::Malformed(what))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, FormatError> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn f32(&mut self, what: &'static str) -> Result<f32, FormatError> {
        Ok(f32::from_bits(self.u32(what)?))
    }
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// A zero-copy view of one stored tensor: name, shape and its little-endian f32 bytes
/// (any alignment).
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    name: &'a str,
    dims: Dims,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub fn name(&self) -> &'a str {
        self.name
    }
    pub fn dims(&self) -> &[usize] {
        self.dims.as_slice()
    }
    pub fn shape(&self) -> Dims {
        self.dims
    }
    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        self.data.len() / 4
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Element `i` (row-major), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<f32> {
        let off = i.checked_mul(4)?;
        let b = self.data.get(off..off.checked_add(4)?)?;
        Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// All elements in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + Clone + 'a {
        self.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// The raw little-endian bytes (length `4·len()`).
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }
    /// Copies the elements into `out`, which must have exactly `len()` elements.
    pub fn copy_to(&self, out: &mut [f32]) -> Result<(), crate::layers::LayerError> {
        if out.len() != self.len() {
            return Err(crate::layers::LayerError::Len {
                what: "TensorView::copy_to",
                expected: self.len(),
                got: out.len(),
            });
        }
        for (o, v) in out.iter_mut().zip(self.iter()) {
            *o = v;
        }
        Ok(())
    }
}

/// Reads one tensor record at `r.pos`. Checks the name syntax, ndim and that the data fits.
fn read_record<'a>(r: &mut Reader<'a>) -> Result<TensorView<'a>, FormatError> {
    let nlen = r.u16("tensor name length")? as usize;
    let nb = r.take(nlen, "tensor name")?;
    if !valid_tensor_name(nb) {
        return Err(FormatError::InvalidTensorName);
    }
    // Printable ASCII is valid UTF-8.
    let name = core::str::from_utf8(nb).map_err(|_| FormatError::InvalidTensorName)?;
    let ndim = r.u8("tensor ndim")? as usize;
    if ndim > MAX_NDIM {
        return Err(FormatError::Malformed("tensor ndim > 4"));
    }
    let mut d = [0usize; MAX_NDIM];
    let mut elems: u64 = 1;
    for slot in d.iter_mut().take(ndim) {
        let v = r.u32("tensor dims")?;
        *slot = v as usize;
        elems = elems.saturating_mul(v as u64);
    }
    let bytes = elems.saturating_mul(4);
    if bytes > (r.b.len() - r.pos) as u64 {
        return Err(FormatError::Malformed("tensor data runs past the end"));
    }
    let data = r.take(bytes as usize, "tensor data")?;
    let dims = Dims::new(&d[..ndim]).ok_or(FormatError::Malformed("tensor ndim"))?;
    Ok(TensorView { name, dims, data })
}

/// Iterator over the tensor records of a parsed [`Model`].
#[derive(Clone)]
pub struct Tensors<'a> {
    r: Reader<'a>,
    left: usize,
}

impl Clone for Reader<'_> {
    fn clone(&self) -> Self {
        Reader {
            b: self.b,
            pos: self.pos,
        }
    }
}

impl<'a> Iterator for Tensors<'a> {
    type Item = TensorView<'a>;
    fn next(&mut self) -> Option<TensorView<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        read_record(&mut self.r).ok()
    }
}

/// A validated model file borrowed from a byte slice of any alignment. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Model<'a> {
    bytes: &'a [u8],
    arch: Arch,
    kind: ModelKind,
    names_off: usize,
    tensors_off: usize,
    tensor_count: usize,
}

impl core::fmt::Debug for Model<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Model")
            .field("kind", &self.kind)
            .field("arch", &self.arch)
            .field("bytes", &self.bytes.len())
            .field("tensor_count", &self.tensor_count)
            .finish()
    }
}

fn decode_kind(v: u32) -> Result<ModelKind, FormatError> {
    match v {
        0 => Ok(ModelKind::Checkpoint),
        1 => Ok(ModelKind::Folded),
        _ => Err(FormatError::InvalidHeader("kind")),
    }
}

fn encode_kind(k: ModelKind) -> u32 {
    match k {
        ModelKind::Checkpoint => 0,
        ModelKind::Folded => 1,
    }
}

/// The version-2 fields after the version-1 fixed header (docs/FORMAT.md): stem kernel,
/// stride, pad; pool kernel (0: no pool), stride, pad; bottleneck expansion, base width,
/// stride on the 3×3 (all 0 for basic blocks); SE reduction (0: no SE units).
fn v2_fields(a: &Arch) -> [u32; 10] {
    let p = a.stem.pool.unwrap_or(Pool2d {
        kernel: 0,
        stride: 0,
        pad: 0,
    });
    let (e, bw, s3) = match a.block {
        BlockKind::Basic => (0, 0, 0),
        BlockKind::Bottleneck {
            expansion,
            base_width,
            stride_on_3x3,
        } => (expansion, base_width, stride_on_3x3 as usize),
    };
    [
        a.stem.kernel,
        a.stem.stride,
        a.stem.pad,
        p.kernel,
        p.stride,
        p.pad,
        e,
        bw,
        s3,
        a.se_reduction,
    ]
    .map(|v| v as u32)
}

fn read_v2_fields(
    r: &mut Reader<'_>,
    block_kind: u32,
) -> Result<(StemSpec, BlockKind, usize), FormatError> {
    let h = "fixed header";
    let mut f = [0usize; 10];
    for v in f.iter_mut() {
        *v = r.u32(h)? as usize;
    }
    let [k, s, p, pk, ps, pp, e, bw, s3, se] = f;
    let pool = match pk {
        0 if ps == 0 && pp == 0 => None,
        0 => {
            return Err(FormatError::InvalidHeader(
                "pool_stride/pool_pad must be 0 without a pool",
            ))
        }
        _ => Some(Pool2d {
            kernel: pk,
            stride: ps,
            pad: pp,
        }),
    };
    let stem = StemSpec {
        kernel: k,
        stride: s,
        pad: p,
        pool,
    };
    let block = match block_kind {
        0 if e == 0 && bw == 0 && s3 == 0 => BlockKind::Basic,
        0 => {
            return Err(FormatError::InvalidHeader(
                "expansion/base_width/stride_on_3x3 must be 0 for basic blocks",
            ))
        }
        _ if s3 > 1 => return Err(FormatError::InvalidHeader("stride_on_3x3 (0 or 1)")),
        _ => BlockKind::Bottleneck {
            expansion: e,
            base_width: bw,
            stride_on_3x3: s3 == 1,
        },
    };
    Ok((stem, block, se))
}

impl<'a> Model<'a> {
    /// Validates `bytes` completely and returns a zero-copy view.
    ///
    /// Order of checks (so that the error names the first problem): length ≥ 4, magic,
    /// length ≥ 8, version, length ≥ 12, `total_len` against the input length, CRC-32,
    /// header fields and architecture, stage table, normalisation, class names, each tensor
    /// record (name, nothing unexpected, order and duplicates, shape, finite values, BN
    /// variance ≥ 0), records end exactly at the CRC, every required tensor present.
    /// Runs in time linear in the file size.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, FormatError> {
        let got = bytes.len();
        if got < 4 {
            return Err(FormatError::Truncated { needed: 4, got });
        }
        if bytes[..4] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if got < 8 {
            return Err(FormatError::Truncated { needed: 8, got });
        }
        let version = le_u32(bytes, 4);
        let fixed_len = match version {
            1 => FIXED_HEADER_LEN_V1,
            VERSION => FIXED_HEADER_LEN,
            _ => return Err(FormatError::UnsupportedVersion(version)),
        };
        if got < 12 {
            return Err(FormatError::Truncated { needed: 12, got });
        }
        let total = le_u32(bytes, 8) as usize;
        if total < fixed_len + 4 {
            return Err(FormatError::LengthMismatch {
                declared: total,
                actual: got,
            });
        }
        if got < total {
            return Err(FormatError::Truncated { needed: total, got });
        }
        if got > total {
            return Err(FormatError::LengthMismatch {
                declared: total,
                actual: got,
            });
        }
        let body = &bytes[..total - 4];
        let stored = le_u32(bytes, total - 4);
        let computed = crc32(body);
        if stored != computed {
            return Err(FormatError::BadChecksum { stored, computed });
        }

        let mut r = Reader { b: body, pos: 12 };
        let h = "fixed header";
        let kind = decode_kind(r.u32(h)?)?;
        let in_h = r.u32(h)? as usize;
        let in_w = r.u32(h)? as usize;
        let in_c = r.u32(h)? as usize;
        let classes = r.u32(h)? as usize;
        let stem_width = r.u32(h)? as usize;
        let block_kind = r.u32(h)?;
        if block_kind > 1 {
            return Err(FormatError::InvalidHeader("block_kind"));
        }
        let shortcut = match r.u32(h)? {
            0 => ShortcutKind::A,
            1 => ShortcutKind::B,
            _ => return Err(FormatError::InvalidHeader("shortcut")),
        };
        let mode = r.u32(h)?;
        let fixed = r.f32(h)?;
        let step = match mode {
            0 => StepMode::Fixed(fixed),
            1 => StepMode::Indp,
            2 => StepMode::TwoFc,
            3 => StepMode::Lstm,
            _ => return Err(FormatError::InvalidHeader("step_mode")),
        };
        if mode != 0 && fixed.to_bits() != 0 {
            return Err(FormatError::InvalidHeader(
                "step_fixed (must be 0 unless fixed)",
            ));
        }
        let reduction = r.u32(h)? as usize;
        let groups = r.u32(h)? as usize;
        let num_stages = r.u32(h)? as usize;
        let tensor_count = r.u32(h)? as usize;
        debug_assert_eq!(r.pos, FIXED_HEADER_LEN_V1);
        let (stem, block, se_reduction) = if version == 1 {
            if block_kind != 0 {
                return Err(FormatError::Unsupported(
                    "bottleneck blocks in a version-1 file",
                ));
            }
            (StemSpec::CIFAR, BlockKind::Basic, 0)
        } else {
            read_v2_fields(&mut r, block_kind)?
        };
        debug_assert_eq!(r.pos, fixed_len);
        if !(1..=MAX_STAGES).contains(&num_stages) {
            return Err(FormatError::InvalidHeader("num_stages"));
        }
        if !(1..=MAX_INPUT_CHANNELS).contains(&in_c) {
            return Err(FormatError::InvalidHeader("input_c"));
        }
        let mut stages = [StageSpec::default(); MAX_STAGES];
        for st in stages.iter_mut().take(num_stages) {
            let blocks = r.u32("stage table")? as usize;
            let width = r.u32("stage table")? as usize;
            let stride = r.u32("stage table")? as usize;
            *st = StageSpec {
                blocks,
                width,
                stride,
            };
        }
        let mut mean = [0.0f32; MAX_INPUT_CHANNELS];
        let mut std = [1.0f32; MAX_INPUT_CHANNELS];
        for c in 0..in_c {
            mean[c] = r.f32("normalisation")?;
            std[c] = r.f32("normalisation")?;
        }
        let arch = Arch {
            input: crate::arch::Shape3::new(in_h, in_w, in_c),
            classes,
            stem_width,
            stem,
            num_stages,
            stages,
            block,
            shortcut,
            step,
            reduction,
            groups,
            se_reduction,
            mean,
            std,
        };
        arch.validate()?;

        let names_off = r.pos;
        for i in 0..classes {
            let n = r.u16("class names")? as usize;
            let s = r.take(n, "class names")?;
            if core::str::from_utf8(s).is_err() {
                return Err(FormatError::InvalidClassName(i));
            }
        }
        let tensors_off = r.pos;
        if tensor_count > body.len() / 4 {
            return Err(FormatError::Malformed("tensor_count"));
        }
        let mut required = 0usize;
        let mut last_key = None;
        let mut last_extra: Option<&str> = None;
        for _ in 0..tensor_count {
            let t = read_record(&mut r)?;
            // Order rules make duplicates impossible and keep this loop O(N).
            if is_extra_name(t.name) {
                if let Some(l) = last_extra {
                    if t.name == l {
                        return Err(FormatError::DuplicateTensor(tname(t.name)));
                    }
                    if t.name < l {
                        return Err(FormatError::TensorOrder(tname(t.name)));
                    }
                }
                last_extra = Some(t.name);
                continue;
            }
            let id = TensorId::parse(t.name)
                .ok_or_else(|| FormatError::UnexpectedTensor(tname(t.name)))?;
            let want = arch
                .tensor_shape(kind, id)
                .ok_or_else(|| FormatError::UnexpectedTensor(tname(t.name)))?;
            let key = id.order_key();
            if Some(key) == last_key {
                return Err(FormatError::DuplicateTensor(tname(t.name)));
            }
            if Some(key) < last_key {
                return Err(FormatError::TensorOrder(tname(t.name)));
            }
            last_key = Some(key);
            if want != t.dims {
                return Err(FormatError::ShapeMismatch(tname(t.name)));
            }
            if t.iter().any(|v| !v.is_finite()) {
                return Err(FormatError::NonFinite(tname(t.name)));
            }
            if is_bn_var(id) && t.iter().any(|v| v < 0.0) {
                return Err(FormatError::InvalidValue(tname(t.name)));
            }
            required += 1;
        }
        if r.pos != body.len() {
            return Err(FormatError::Malformed("bytes after the last tensor record"));
        }
        let model = Model {
            bytes,
            arch,
            kind,
            names_off,
            tensors_off,
            tensor_count,
        };
        if required != arch.tensor_count(kind) {
            arch.for_each_tensor(kind, |id, _| {
                let n = id.name();
                match model.tensor(&n) {
                    Some(_) => Ok(()),
                    None => Err(FormatError::MissingTensor(n)),
                }
            })?;
            // Unreachable: every counted tensor is distinct and required.
            return Err(FormatError::Malformed("tensor count"));
        }
        Ok(model)
    }

    /// The architecture from the header.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }
    /// Checkpoint (unfolded) or folded.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }
    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Number of tensor records (including `opt.*` / `meta.*`).
    pub fn tensor_count(&self) -> usize {
        self.tensor_count
    }

    /// Class names in order (possibly empty strings).
    pub fn class_names(&self) -> impl Iterator<Item = &'a str> + Clone + 'a {
        let mut r = Reader {
            b: self.bytes,
            pos: self.names_off,
        };
        (0..self.arch.classes).map_while(move |_| {
            let n = r.u16("").ok()? as usize;
            core::str::from_utf8(r.take(n, "").ok()?).ok()
        })
    }
    /// Name of class `i`, `None` if `i ≥ classes`.
    pub fn class_name(&self, i: usize) -> Option<&'a str> {
        self.class_names().nth(i)
    }

    /// All tensor records in file order.
    pub fn tensors(&self) -> Tensors<'a> {
        Tensors {
            r: Reader {
                b: self.bytes,
                pos: self.tensors_off,
            },
            left: self.tensor_count,
        }
    }
    /// The tensor called `name` (linear search over the records).
    pub fn tensor(&self, name: &str) -> Option<TensorView<'a>> {
        self.tensors().find(|t| t.name == name)
    }
    /// The canonical tensor `id`, or [`FormatError::MissingTensor`].
    pub fn tensor_by_id(&self, id: TensorId) -> Result<TensorView<'a>, FormatError> {
        let n = id.name();
        self.tensor(&n).ok_or(FormatError::MissingTensor(n))
    }

    /// f32 of scratch that [`crate::infer`] needs for this model (see
    /// [`Arch::scratch_len`]).
    pub fn scratch_len(&self) -> usize {
        self.arch.scratch_len(self.kind)
    }
}

// ---------------------------------------------------------------------------------------
// Writing

/// Where the writer puts bytes.
pub trait ByteSink {
    /// Appends all of `bytes` or fails ([`FormatError::SinkFull`]).
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), FormatError>;
}

/// A cursor over a caller-provided buffer.
#[derive(Debug)]
pub struct SliceSink<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> SliceSink<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        SliceSink { buf, pos: 0 }
    }
    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// The written prefix of the buffer.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }
}

impl ByteSink for SliceSink<'_> {
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .filter(|&e| e <= self.buf.len())
            .ok_or(FormatError::SinkFull)?;
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

#[cfg(feature = "std")]
impl ByteSink for std::vec::Vec<u8> {
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

impl<S: ByteSink + ?Sized> ByteSink for &mut S {
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        (**self).write_bytes(bytes)
    }
}

/// Bytes of the header up to (excluding) the tensor records. `names` yields no names (all
/// empty) or exactly `arch.classes` names.
pub(crate) fn header_len<'c>(
    arch: &Arch,
    names: impl IntoIterator<Item = &'c str>,
) -> Result<usize, FormatError> {
    let mut n = FIXED_HEADER_LEN + 12 * arch.num_stages + 8 * arch.input.c + 2 * arch.classes;
    let mut count = 0usize;
    for (i, c) in names.into_iter().enumerate() {
        if c.len() > u16::MAX as usize {
            return Err(FormatError::InvalidClassName(i));
        }
        n += c.len();
        count += 1;
    }
    if count != 0 && count != arch.classes {
        return Err(FormatError::InvalidHeader(
            "number of class names != classes",
        ));
    }
    Ok(n)
}

pub(crate) fn record_len(name: &str, shape: &[usize]) -> Result<usize, FormatError> {
    if !valid_tensor_name(name.as_bytes()) {
        return Err(FormatError::InvalidTensorName);
    }
    if shape.len() > MAX_NDIM {
        return Err(FormatError::TooLarge("tensor ndim"));
    }
    let elems = shape
        .iter()
        .try_fold(1usize, |a, &d| {
            if d > u32::MAX as usize {
                None
            } else {
                a.checked_mul(d)
            }
        })
        .and_then(|e| e.checked_mul(4))
        .ok_or(FormatError::TooLarge("tensor"))?;
    (2 + name.len() + 1 + 4 * shape.len())
        .checked_add(elems)
        .ok_or(FormatError::TooLarge("tensor"))
}

/// Exact encoded size in bytes of a model with these tensors (`(name, shape)` in the order
/// they will be written), so that `no_std` callers can size a buffer.
pub fn encoded_len<'t>(
    arch: &Arch,
    class_names: &[&str],
    tensors: impl IntoIterator<Item = (&'t str, &'t [usize])>,
) -> Result<usize, FormatError> {
    arch.validate()?;
    let mut n = header_len(arch, class_names.iter().copied())?;
    for (name, shape) in tensors {
        n = n
            .checked_add(record_len(name, shape)?)
            .ok_or(FormatError::TooLarge("file"))?;
    }
    let n = n.checked_add(4).ok_or(FormatError::TooLarge("file"))?;
    if n > u32::MAX as usize {
        return Err(FormatError::TooLarge("file"));
    }
    Ok(n)
}

/// Streaming writer: header, then each tensor's header and values, then the CRC. Used when
/// the tensor values are computed on the fly (e.g. by [`crate::fold`]); otherwise use
/// [`write_model`], which also puts the tensors in order.
///
/// Tensors must come in file order: canonical tensors in canonical order
/// ([`Arch::for_each_tensor`]), `opt.*`/`meta.*` tensors anywhere in between with names
/// increasing bytewise. Checks as it goes: the declared counts and total length, tensor
/// names, order (hence no duplicates), shapes of canonical tensors against the
/// architecture, finite values in canonical tensors. A missing canonical tensor is not
/// detected here (parse the result with [`Model::parse`] for a full validation).
pub struct ModelWriter<'s, S: ByteSink + ?Sized> {
    sink: &'s mut S,
    crc: Crc32,
    written: usize,
    total: usize,
    arch: Arch,
    kind: ModelKind,
    tensors_left: usize,
    values_left: usize,
    check_finite: bool,
    cur: TensorName,
    last_key: Option<crate::arch::OrderKey>,
    last_extra: Option<TensorName>,
}

impl<'s, S: ByteSink + ?Sized> ModelWriter<'s, S> {
    /// Writes the header. `total_len` must be what [`encoded_len`] returns for the tensors
    /// that will follow; `class_names` is empty (all names empty) or has `classes` entries.
    pub fn begin(
        sink: &'s mut S,
        arch: &Arch,
        kind: ModelKind,
        class_names: &[&str],
        tensor_count: usize,
        total_len: usize,
    ) -> Result<Self, FormatError> {
        Self::begin_with_names(
            sink,
            arch,
            kind,
            class_names.iter().copied(),
            tensor_count,
            total_len,
        )
    }

    /// [`ModelWriter::begin`] with the class names from an iterator (iterated twice).
    pub fn begin_with_names<'c, N>(
        sink: &'s mut S,
        arch: &Arch,
        kind: ModelKind,
        class_names: N,
        tensor_count: usize,
        total_len: usize,
    ) -> Result<Self, FormatError>
    where
        N: IntoIterator<Item = &'c str> + Clone,
    {
        arch.validate()?;
        let hl = header_len(arch, class_names.clone())?;
        if total_len > u32::MAX as usize || total_len < hl + 4 {
            return Err(FormatError::WriterState("total_len"));
        }
        if tensor_count > u32::MAX as usize {
            return Err(FormatError::TooLarge("tensor_count"));
        }
        let mut w = ModelWriter {
            sink,
            crc: Crc32::new(),
            written: 0,
            total: total_len,
            arch: *arch,
            kind,
            tensors_left: tensor_count,
            values_left: 0,
            check_finite: false,
            cur: TensorName::new(),
            last_key: None,
            last_extra: None,
        };
        let (mode, fixed) = match arch.step {
            StepMode::Fixed(c) => (0u32, c),
            StepMode::Indp => (1, 0.0),
            StepMode::TwoFc => (2, 0.0),
            StepMode::Lstm => (3, 0.0),
        };
        let u = |v: usize| (v as u32).to_le_bytes();
        w.put(&MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&u(total_len))?;
        w.put(&encode_kind(kind).to_le_bytes())?;
        for v in [
            arch.input.h,
            arch.input.w,
            arch.input.c,
            arch.classes,
            arch.stem_width,
            match arch.block {
                BlockKind::Basic => 0,
                BlockKind::Bottleneck { .. } => 1,
            },
            match arch.shortcut {
                ShortcutKind::A => 0,
                ShortcutKind::B => 1,
            },
            mode as usize,
        ] {
            w.put(&u(v))?;
        }
        w.put(&fixed.to_le_bytes())?;
        for v in [arch.reduction, arch.groups, arch.num_stages, tensor_count] {
            w.put(&u(v))?;
        }
        for v in v2_fields(arch) {
            w.put(&v.to_le_bytes())?;
        }
        for st in arch.stages() {
            for v in [st.blocks, st.width, st.stride] {
                w.put(&u(v))?;
            }
        }
        for c in 0..arch.input.c {
            w.put(&arch.mean[c].to_le_bytes())?;
            w.put(&arch.std[c].to_le_bytes())?;
        }
        let mut names = class_names.into_iter();
        for _ in 0..arch.classes {
            let name = names.next().unwrap_or("");
            w.put(&(name.len() as u16).to_le_bytes())?;
            w.put(name.as_bytes())?;
        }
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<(), FormatError> {
        if self.written + b.len() + 4 > self.total {
            return Err(FormatError::WriterState("more bytes than total_len"));
        }
        self.sink.write_bytes(b)?;
        self.crc.update(b);
        self.written += b.len();
        Ok(())
    }

    /// Starts the next tensor; exactly `product(shape)` values must follow.
    pub fn begin_tensor(&mut self, name: &str, shape: &[usize]) -> Result<(), FormatError> {
        if self.values_left != 0 {
            return Err(FormatError::WriterState("previous tensor incomplete"));
        }
        if self.tensors_left == 0 {
            return Err(FormatError::WriterState("more tensors than declared"));
        }
        let rl = record_len(name, shape)?;
        let elems = (rl - 3 - name.len() - 4 * shape.len()) / 4;
        self.check_finite = !is_extra_name(name);
        if self.check_finite {
            let id =
                TensorId::parse(name).ok_or_else(|| FormatError::UnexpectedTensor(tname(name)))?;
            let want = self
                .arch
                .tensor_shape(self.kind, id)
                .ok_or_else(|| FormatError::UnexpectedTensor(tname(name)))?;
            if want.as_slice() != shape {
                return Err(FormatError::ShapeMismatch(tname(name)));
            }
            let key = Some(id.order_key());
            if key == self.last_key {
                return Err(FormatError::DuplicateTensor(tname(name)));
            }
            if key < self.last_key {
                return Err(FormatError::TensorOrder(tname(name)));
            }
            self.last_key = key;
        } else {
            if let Some(l) = &self.last_extra {
                if name == l.as_str() {
                    return Err(FormatError::DuplicateTensor(tname(name)));
                }
                if name < l.as_str() {
                    return Err(FormatError::TensorOrder(tname(name)));
                }
            }
            self.last_extra = Some(tname(name));
        }
        self.cur = tname(name);
        self.tensors_left -= 1;
        self.put(&(name.len() as u16).to_le_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[shape.len() as u8])?;
        for &d in shape {
            self.put(&(d as u32).to_le_bytes())?;
        }
        self.values_left = elems;
        Ok(())
    }

    /// Appends values of the current tensor.
    pub fn write_values(&mut self, values: &[f32]) -> Result<(), FormatError> {
        if values.len() > self.values_left {
            return Err(FormatError::WriterState("more values than the shape holds"));
        }
        let mut buf = [0u8; 256];
        for chunk in values.chunks(64) {
            for (i, v) in chunk.iter().enumerate() {
                if self.check_finite && !v.is_finite() {
                    return Err(FormatError::NonFinite(self.cur.clone()));
                }
                buf[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
            self.put(&buf[..4 * chunk.len()])?;
        }
        self.values_left -= values.len();
        Ok(())
    }

    /// Appends one value of the current tensor.
    pub fn write_value(&mut self, v: f32) -> Result<(), FormatError> {
        self.write_values(&[v])
    }

    /// Writes the CRC; returns the total number of bytes written.
    pub fn finish(mut self) -> Result<usize, FormatError> {
        if self.values_left != 0 || self.tensors_left != 0 {
            return Err(FormatError::WriterState(
                "fewer tensors or values than declared",
            ));
        }
        if self.written + 4 != self.total {
            return Err(FormatError::WriterState("fewer bytes than total_len"));
        }
        let c = self.crc.finish();
        self.sink.write_bytes(&c.to_le_bytes())?;
        self.written += 4;
        Ok(self.written)
    }
}

/// Writes a complete model. `tensors` yields `(name, shape, values)` in any order; it is
/// iterated several times (to validate and size the file, then to emit the canonical
/// tensors in canonical order, then the `opt.*`/`meta.*` tensors sorted by name), so the
/// cost is O(R·N + M²) name comparisons for R canonical, M extra and N total tensors.
/// Errors on an unexpected, duplicate, missing, misshaped or non-finite tensor.
/// `class_names` is empty (unnamed classes) or has exactly `arch.classes` entries.
/// Returns the number of bytes written.
pub fn write_model<'t, I, S>(
    arch: &Arch,
    kind: ModelKind,
    class_names: &[&str],
    tensors: I,
    sink: &mut S,
) -> Result<usize, FormatError>
where
    I: IntoIterator<Item = (&'t str, &'t [usize], &'t [f32])> + Clone,
    S: ByteSink + ?Sized,
{
    arch.validate()?;
    let mut count = 0usize;
    for (name, shape, data) in tensors.clone() {
        let rl = record_len(name, shape)?;
        if data.len() != (rl - 3 - name.len() - 4 * shape.len()) / 4 {
            return Err(FormatError::WriterState("values.len() != product(shape)"));
        }
        if !is_extra_name(name) {
            let id = TensorId::parse(name)
                .and_then(|id| arch.tensor_shape(kind, id).map(|d| (id, d)))
                .ok_or_else(|| FormatError::UnexpectedTensor(tname(name)))?;
            if id.1.as_slice() != shape {
                return Err(FormatError::ShapeMismatch(tname(name)));
            }
        }
        count += 1;
    }
    let total = encoded_len(
        arch,
        class_names,
        tensors.clone().into_iter().map(|(n, s, _)| (n, s)),
    )?;
    let mut w = ModelWriter::begin(sink, arch, kind, class_names, count, total)?;
    arch.for_each_tensor(kind, |id, _| {
        let name = id.name();
        let mut found = None;
        for t in tensors.clone() {
            if t.0 == name.as_str() {
                if found.is_some() {
                    return Err(FormatError::DuplicateTensor(name));
                }
                found = Some(t);
            }
        }
        let (n, s, d) = found.ok_or_else(|| FormatError::MissingTensor(name.clone()))?;
        w.begin_tensor(n, s)?;
        w.write_values(d)
    })?;
    let mut last: Option<&str> = None;
    loop {
        let mut next: Option<(&str, &[usize], &[f32])> = None;
        for t in tensors.clone() {
            if !is_extra_name(t.0) || last.is_some_and(|l| t.0 <= l) {
                continue;
            }
            match next {
                Some(n) if t.0 == n.0 => return Err(FormatError::DuplicateTensor(tname(t.0))),
                Some(n) if t.0 > n.0 => {}
                _ => next = Some(t),
            }
        }
        let Some((n, s, d)) = next else { break };
        w.begin_tensor(n, s)?;
        w.write_values(d)?;
        last = Some(n);
    }
    w.finish()
}
