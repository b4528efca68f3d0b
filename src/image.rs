//! A borrowed, strided view of an image: u8, u16, u32 or f32 pixels, channels interleaved, rows `row_stride`
//! elements apart. Checked once at construction so the hot loops can index without surprises.

use crate::error::{Error, Result, UnetStatus};

/// Largest accepted width or height: far beyond any microscope, far below overflow.
pub const MAX_DIMENSION: usize = 1 << 20;
/// Largest accepted channel count.
pub const MAX_CHANNELS: usize = 64;

#[derive(Clone, Copy, Debug)]
pub enum Pixels<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    F32(&'a [f32]),
}

/// Pixel types the pipeline reads.
pub trait Pixel: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
}
impl Pixel for u8 {
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
}
impl Pixel for u16 {
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
}
impl Pixel for u32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
}
impl Pixel for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    pub pixels: Pixels<'a>,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// Distance between rows in elements (not bytes); at least `width * channels`.
    pub row_stride: usize,
}

/// Checks sizes and returns `width * height`, the number of output elements.
pub fn checked_area(width: usize, height: usize) -> Result<usize> {
    for (name, v) in [("width", width), ("height", height)] {
        if v == 0 || v > MAX_DIMENSION {
            return Err(Error::new(UnetStatus::InvalidSize, format!("image {name} {v} is not in 1..={MAX_DIMENSION}")));
        }
    }
    width
        .checked_mul(height)
        .filter(|&a| a <= isize::MAX as usize / 16)
        .ok_or_else(|| Error::new(UnetStatus::SizeOverflow, format!("{width} x {height} pixels overflow")))
}

impl<'a> ImageView<'a> {
    /// Validates the view: sizes, stride and that `pixels` holds every row.
    pub fn new(pixels: Pixels<'a>, width: usize, height: usize, channels: usize, row_stride: usize) -> Result<Self> {
        checked_area(width, height)?;
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(Error::new(
                UnetStatus::InvalidSize,
                format!("channel count {channels} is not in 1..={MAX_CHANNELS}"),
            ));
        }
        let row = width * channels; // cannot overflow: both are bounded above
        if row_stride < row {
            return Err(Error::new(
                UnetStatus::InvalidStride,
                format!(
                    "row stride {row_stride} elements is smaller than a row ({width} pixels x {channels} channels)"
                ),
            ));
        }
        let needed = (height - 1)
            .checked_mul(row_stride)
            .and_then(|n| n.checked_add(row))
            .filter(|&n| n <= isize::MAX as usize / 4)
            .ok_or_else(|| {
                Error::new(UnetStatus::SizeOverflow, format!("{height} rows of stride {row_stride} overflow"))
            })?;
        let len = match pixels {
            Pixels::U8(p) => p.len(),
            Pixels::U16(p) => p.len(),
            Pixels::U32(p) => p.len(),
            Pixels::F32(p) => p.len(),
        };
        if len < needed {
            return Err(Error::new(
                UnetStatus::BufferTooSmall,
                format!("image buffer holds {len} elements, {needed} needed for {width} x {height} x {channels}"),
            ));
        }
        Ok(ImageView { pixels, width, height, channels, row_stride })
    }

    pub fn area(&self) -> usize {
        self.width * self.height
    }

    /// One pixel value as f64 (row `y`, column `x`, channel `c`).
    #[inline]
    pub fn value(&self, y: usize, x: usize, c: usize) -> f64 {
        let i = y * self.row_stride + x * self.channels + c;
        match self.pixels {
            Pixels::U8(p) => p[i] as f64,
            Pixels::U16(p) => p[i] as f64,
            Pixels::U32(p) => p[i] as f64,
            Pixels::F32(p) => p[i] as f64,
        }
    }

    /// Rejects NaN and infinite pixels, naming the first one.
    pub fn check_finite(&self) -> Result<()> {
        if let Pixels::F32(p) = self.pixels {
            for y in 0..self.height {
                let row = &p[y * self.row_stride..y * self.row_stride + self.width * self.channels];
                if let Some(i) = row.iter().position(|v| !v.is_finite()) {
                    return Err(Error::new(
                        UnetStatus::NonFinitePixel,
                        format!(
                            "pixel (x={}, y={y}, channel {}) is {}; NaN and infinite pixels are rejected",
                            i / self.channels,
                            i % self.channels,
                            row[i]
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
