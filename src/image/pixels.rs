//! Decoded 8-bit pixels and the operations on them: resizing, EXIF orientation, alpha flattening.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::ImageError;

/// How the channels of one pixel are laid out, one byte each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
}

impl Layout {
    pub const fn channels(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::GrayAlpha => 2,
            Self::Rgb => 3,
            Self::Rgba => 4,
        }
    }

    const fn pixel_type(self) -> PixelType {
        match self {
            Self::Gray => PixelType::U8,
            Self::GrayAlpha => PixelType::U8x2,
            Self::Rgb => PixelType::U8x3,
            Self::Rgba => PixelType::U8x4,
        }
    }
}

/// An image in memory, rows top to bottom without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub data: Vec<u8>,
}

impl Pixels {
    /// Resizes to exactly `width` x `height` with a Lanczos3 convolution; alpha is premultiplied
    /// while filtering so that transparent pixels do not bleed their colour into the edges.
    pub fn resize(self, width: u32, height: u32) -> Result<Self, ImageError> {
        if (width, height) == (self.width, self.height) {
            return Ok(self);
        }
        let pixel_type = self.layout.pixel_type();
        let source = ImageRef::new(self.width, self.height, &self.data, pixel_type)
            .map_err(|error| ImageError::Internal(format!("resize source: {error}")))?;
        let mut target = Image::new(width, height, pixel_type);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        Resizer::new()
            .resize(&source, &mut target, &options)
            .map_err(|error| ImageError::Internal(format!("resize: {error}")))?;
        Ok(Self {
            width,
            height,
            layout: self.layout,
            data: target.into_vec(),
        })
    }

    /// Turns the stored image upright according to an EXIF orientation (1 to 8).
    pub fn orient(self, orientation: u8) -> Self {
        if !(2..=8).contains(&orientation) {
            return self;
        }
        let (width, height) = (self.width as usize, self.height as usize);
        let channels = self.layout.channels();
        let transposed = orientation >= 5;
        let (out_width, out_height) = if transposed { (height, width) } else { (width, height) };
        let mut data = vec![0; self.data.len()];
        for out_y in 0..out_height {
            for out_x in 0..out_width {
                let (x, y) = source_position(orientation, out_x, out_y, width, height);
                let from = (y * width + x) * channels;
                let to = (out_y * out_width + out_x) * channels;
                data[to..to + channels].copy_from_slice(&self.data[from..from + channels]);
            }
        }
        Self {
            width: if transposed { self.height } else { self.width },
            height: if transposed { self.width } else { self.height },
            layout: self.layout,
            data,
        }
    }

    /// Composites the image over an opaque `background`, dropping the alpha channel. A grey image
    /// stays grey when the background is a grey level.
    pub fn flatten(self, background: [u8; 3]) -> Self {
        match self.layout {
            Layout::Gray | Layout::Rgb => self,
            Layout::Rgba => self.flatten_rgba(background),
            Layout::GrayAlpha if background[0] == background[1] && background[1] == background[2] => {
                let data = self
                    .data
                    .chunks_exact(2)
                    .map(|pixel| blend(pixel[0], background[0], pixel[1]))
                    .collect();
                Self {
                    layout: Layout::Gray,
                    data,
                    ..self
                }
            }
            Layout::GrayAlpha => self.into_rgba().flatten_rgba(background),
        }
    }

    fn flatten_rgba(self, background: [u8; 3]) -> Self {
        let mut data = Vec::with_capacity(self.data.len() / 4 * 3);
        for pixel in self.data.chunks_exact(4) {
            let alpha = pixel[3];
            data.extend([0, 1, 2].map(|channel| blend(pixel[channel], background[channel], alpha)));
        }
        Self {
            layout: Layout::Rgb,
            data,
            ..self
        }
    }

    fn into_rgba(self) -> Self {
        let data = self
            .data
            .chunks_exact(2)
            .flat_map(|pixel| [pixel[0], pixel[0], pixel[0], pixel[1]])
            .collect();
        Self {
            layout: Layout::Rgba,
            data,
            ..self
        }
    }
}

/// Where output pixel (`x`, `y`) of the upright image comes from in the stored `width` x `height`
/// image, for each EXIF orientation.
fn source_position(orientation: u8, x: usize, y: usize, width: usize, height: usize) -> (usize, usize) {
    match orientation {
        2 => (width - 1 - x, y),
        3 => (width - 1 - x, height - 1 - y),
        4 => (x, height - 1 - y),
        5 => (y, x),
        6 => (y, height - 1 - x),
        7 => (width - 1 - y, height - 1 - x),
        8 => (width - 1 - y, x),
        _ => (x, y),
    }
}

/// `foreground` over `background` with coverage `alpha`, rounded to nearest.
fn blend(foreground: u8, background: u8, alpha: u8) -> u8 {
    let (foreground, background, alpha) = (u32::from(foreground), u32::from(background), u32::from(alpha));
    let mixed = foreground * alpha + background * (255 - alpha);
    // Exact rounding division by 255 for values up to 255 * 255.
    let quotient = (mixed + 128 + ((mixed + 128) >> 8)) >> 8;
    u8::try_from(quotient).unwrap_or(u8::MAX)
}

/// Scales a 16-bit sample to 8 bits, rounding to nearest so that 65535 stays 255 and nothing clips.
pub fn narrow_sample(high: u8, low: u8) -> u8 {
    let value = u32::from(u16::from_be_bytes([high, low]));
    u8::try_from((value * 255 + 32_767) / 65_535).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(width: u32, height: u32) -> Pixels {
        let data = (0..width * height).map(|value| u8::try_from(value).unwrap()).collect();
        Pixels {
            width,
            height,
            layout: Layout::Gray,
            data,
        }
    }

    #[test]
    fn orientations_match_their_exif_meaning() {
        // The stored image is 3 wide and 2 high:
        //   0 1 2
        //   3 4 5
        let cases: [(u8, (u32, u32), [u8; 6]); 8] = [
            (1, (3, 2), [0, 1, 2, 3, 4, 5]),
            (2, (3, 2), [2, 1, 0, 5, 4, 3]),
            (3, (3, 2), [5, 4, 3, 2, 1, 0]),
            (4, (3, 2), [3, 4, 5, 0, 1, 2]),
            (5, (2, 3), [0, 3, 1, 4, 2, 5]),
            (6, (2, 3), [3, 0, 4, 1, 5, 2]),
            (7, (2, 3), [5, 2, 4, 1, 3, 0]),
            (8, (2, 3), [2, 5, 1, 4, 0, 3]),
        ];
        for (orientation, size, expected) in cases {
            let upright = numbered(3, 2).orient(orientation);
            assert_eq!((upright.width, upright.height), size, "orientation {orientation}");
            assert_eq!(upright.data, expected, "orientation {orientation}");
        }
    }

    #[test]
    fn flatten_blends_over_the_background() {
        let pixels = Pixels {
            width: 3,
            height: 1,
            layout: Layout::Rgba,
            data: vec![10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128],
        };
        let flat = pixels.flatten([255, 255, 255]);
        assert_eq!(flat.layout, Layout::Rgb);
        assert_eq!(flat.data, vec![10, 20, 30, 255, 255, 255, 127, 127, 127]);
    }

    #[test]
    fn grey_with_alpha_on_a_coloured_background_becomes_rgb() {
        let pixels = Pixels {
            width: 1,
            height: 1,
            layout: Layout::GrayAlpha,
            data: vec![0, 0],
        };
        assert_eq!(pixels.clone().flatten([9, 9, 9]).data, vec![9]);
        assert_eq!(pixels.flatten([255, 0, 0]).data, vec![255, 0, 0]);
    }

    #[test]
    fn sixteen_bit_samples_round_to_nearest() {
        assert_eq!(narrow_sample(0xFF, 0xFF), 255);
        assert_eq!(narrow_sample(0, 0), 0);
        assert_eq!(narrow_sample(0x80, 0x00), 128);
        assert_eq!(narrow_sample(0x00, 0x80), 0);
    }

    #[test]
    fn resize_keeps_a_flat_colour_flat() {
        let pixels = Pixels {
            width: 40,
            height: 30,
            layout: Layout::Rgb,
            data: [200, 100, 50].repeat(40 * 30),
        };
        let small = pixels.resize(4, 3).unwrap();
        assert_eq!((small.width, small.height), (4, 3));
        assert!(small.data.chunks(3).all(|pixel| pixel == [200, 100, 50]));
    }
}
