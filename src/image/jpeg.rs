//! JPEG: the header read before decoding, scaled decoding with libjpeg-turbo, and encoding.

use turbojpeg::{Colorspace, Compressor, Decompressor, Image, PixelFormat, ScalingFactor, Subsamp};

use super::pixels::{Layout, Pixels};
use super::{check_size, exif, progressive, stored_target, Decoded, ImageError, Options};

const FORMAT: &str = "JPEG";
const ICC_SIGNATURE: &[u8] = b"ICC_PROFILE\0";
/// The most profile bytes one APP2 segment carries: 65535 less the length, signature and numbering.
const ICC_CHUNK: usize = 65_519;

/// What the marker segments before the first scan say about the image.
#[derive(Debug, Default)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub components: u8,
    pub precision: u8,
    /// Progressive with Huffman coding (SOF2), the kind the DC-scan path reads.
    pub progressive: bool,
    pub orientation: u8,
    pub icc_profile: Option<Vec<u8>>,
    /// An Adobe APP14 segment is present: CMYK samples are then stored inverted.
    pub adobe: bool,
}

/// Iterates over marker segments from just after SOI up to the first SOS, as (marker, payload).
pub struct Segments<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Segments<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, position: 2 }
    }

    /// Where the next segment starts (just after the last one read).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Continues at `position`, past entropy-coded data the caller has stepped over.
    pub fn seek(&mut self, position: usize) {
        self.position = position;
    }

    /// Reads the next segment as (marker, payload); markers without a payload (EOI, `RSTn`) come with
    /// an empty one.
    pub fn next_segment(&mut self) -> Result<(u8, &'a [u8]), ImageError> {
        let data = self.data;
        // Markers may be preceded by any number of 0xFF fill bytes.
        let mut at = self.position;
        if data.get(at) != Some(&0xFF) {
            return Err(truncated_or(data, at, "a marker was expected"));
        }
        while data.get(at) == Some(&0xFF) {
            at += 1;
        }
        let marker = *data.get(at).ok_or_else(truncated)?;
        at += 1;
        if marker == 0xD9 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            self.position = at;
            return Ok((marker, &[]));
        }
        let length = data.get(at..at + 2).ok_or_else(truncated)?;
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        if length < 2 {
            return Err(ImageError::corrupt(FORMAT, "a marker segment has a length below 2"));
        }
        let payload = data.get(at + 2..at + length).ok_or_else(truncated)?;
        self.position = at + length;
        Ok((marker, payload))
    }
}

fn truncated() -> ImageError {
    ImageError::corrupt(FORMAT, "the data ends in the middle of the image")
}

fn truncated_or(data: &[u8], at: usize, reason: &str) -> ImageError {
    if at >= data.len() {
        truncated()
    } else {
        ImageError::corrupt(FORMAT, reason)
    }
}

/// Reads the header up to the first scan without decoding anything.
pub fn read_header(data: &[u8]) -> Result<Header, ImageError> {
    let mut header = Header {
        orientation: 1,
        ..Header::default()
    };
    let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut segments = Segments::new(data);
    loop {
        let (marker, payload) = segments.next_segment()?;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => read_frame(&mut header, marker, payload)?,
            0xE1 if payload.starts_with(b"Exif\0\0") && header.orientation == 1 => {
                header.orientation = exif::orientation(payload);
            }
            0xE2 if payload.starts_with(ICC_SIGNATURE) && payload.len() > ICC_SIGNATURE.len() + 2 => {
                icc_chunks.push((payload[ICC_SIGNATURE.len()], &payload[ICC_SIGNATURE.len() + 2..]));
            }
            0xEE if payload.starts_with(b"Adobe") => header.adobe = true,
            0xDA | 0xD9 => break,
            _ => {}
        }
    }
    if header.components == 0 {
        return Err(ImageError::corrupt(FORMAT, "no frame header before the first scan"));
    }
    header.icc_profile = assemble_icc(icc_chunks);
    Ok(header)
}

fn read_frame(header: &mut Header, marker: u8, payload: &[u8]) -> Result<(), ImageError> {
    let [precision, h0, h1, w0, w1, components, ..] = *payload else {
        return Err(ImageError::corrupt(FORMAT, "the frame header is too short"));
    };
    header.precision = precision;
    header.height = u32::from(u16::from_be_bytes([h0, h1]));
    header.width = u32::from(u16::from_be_bytes([w0, w1]));
    header.components = components;
    header.progressive = marker == 0xC2;
    // Sequential and progressive, Huffman or arithmetic coded, are what libjpeg-turbo decodes at
    // reduced scale.
    match marker {
        0xC0..=0xC2 | 0xC9 | 0xCA if precision == 8 => Ok(()),
        0xC0..=0xC2 | 0xC9 | 0xCA => Err(ImageError::unsupported(FORMAT, format_args!("{precision}-bit samples"))),
        0xC3 | 0xCB => Err(ImageError::unsupported(FORMAT, "lossless coding")),
        _ => Err(ImageError::unsupported(FORMAT, "hierarchical coding")),
    }
}

/// Joins the numbered APP2 chunks of an ICC profile; an incomplete set is ignored, as a profile
/// cut short would be worse than none.
fn assemble_icc(mut chunks: Vec<(u8, &[u8])>) -> Option<Vec<u8>> {
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|(sequence, _)| *sequence);
    let numbered_in_order = chunks
        .iter()
        .enumerate()
        .all(|(index, (sequence, _))| usize::from(*sequence) == index + 1);
    numbered_in_order.then(|| chunks.iter().flat_map(|(_, bytes)| bytes.iter().copied()).collect())
}

/// The eighths to decode at: the smallest scale whose output keeps at least twice the target size
/// on both axes, which is where the resize afterwards loses nothing visible.
fn scale_eighths(full: (u32, u32), target: (u32, u32)) -> u32 {
    (1..8)
        .find(|&eighths| {
            let scaled = |side: u32| (u64::from(side) * u64::from(eighths)).div_ceil(8);
            scaled(full.0) >= 2 * u64::from(target.0) && scaled(full.1) >= 2 * u64::from(target.1)
        })
        .unwrap_or(8)
}

pub fn decode(data: &[u8], options: &Options) -> Result<Decoded, ImageError> {
    // Everything needed to plan the decode comes from the header, before any pixel memory.
    let header = read_header(data)?;
    check_size(header.width, header.height, options, FORMAT)?;
    let full_size = (header.width, header.height);
    let target = stored_target(full_size, header.orientation, options.size);
    let eighths = if options.shrink_on_load {
        scale_eighths(full_size, target)
    } else {
        8
    };

    // At 1/8, a progressive file's DC scans hold every pixel needed; the AC scans are skipped.
    let fast = if eighths == 1 && header.progressive && matches!(header.components, 1 | 3) {
        progressive::decode_dc(data)?
    } else {
        None
    };
    let pixels = match fast {
        Some(pixels) => pixels,
        None => decode_scaled(data, &header, eighths)?,
    };
    Ok(Decoded {
        pixels,
        full_size,
        orientation: header.orientation,
        icc_profile: header.icc_profile,
    })
}

fn decode_scaled(data: &[u8], header: &Header, eighths: u32) -> Result<Pixels, ImageError> {
    let mut decompressor = Decompressor::new().map_err(internal)?;
    let tj_header = decompressor.read_header(data).map_err(corrupt)?;
    let scaling = ScalingFactor::new(eighths as usize, 8);
    decompressor.set_scaling_factor(scaling).map_err(internal)?;
    let scaled = tj_header.scaled(scaling);
    let (format, layout) = match tj_header.colorspace {
        Colorspace::Gray => (PixelFormat::GRAY, Layout::Gray),
        Colorspace::CMYK | Colorspace::YCCK => (PixelFormat::CMYK, Layout::Rgb),
        Colorspace::RGB | Colorspace::YCbCr => (PixelFormat::RGB, Layout::Rgb),
    };
    let (width, height) = (to_u32(scaled.width)?, to_u32(scaled.height)?);
    let mut buffer = vec![0; scaled.width * scaled.height * format.size()];
    let image = Image {
        pixels: buffer.as_mut_slice(),
        width: scaled.width,
        pitch: scaled.width * format.size(),
        height: scaled.height,
        format,
    };
    // libjpeg-turbo reports a truncated or damaged stream as an error, never as grey pixels.
    decompressor.decompress(data, image).map_err(corrupt)?;
    let data = if format == PixelFormat::CMYK {
        cmyk_to_srgb(&buffer, header.adobe, header.icc_profile.as_deref())
    } else {
        buffer
    };
    Ok(Pixels {
        width,
        height,
        layout,
        data,
    })
}

/// Converts CMYK samples to sRGB through the file's embedded CMYK profile, with the profile's own
/// rendering intent; without a usable one, with the formula Pillow uses.
fn cmyk_to_srgb(cmyk: &[u8], inverted: bool, profile: Option<&[u8]>) -> Vec<u8> {
    profile
        .and_then(|profile| cmyk_through_profile(cmyk, inverted, profile))
        .unwrap_or_else(|| cmyk_to_rgb(cmyk, inverted))
}

fn cmyk_through_profile(cmyk: &[u8], inverted: bool, profile: &[u8]) -> Option<Vec<u8>> {
    let input = lcms2::Profile::new_icc(profile).ok()?;
    if input.color_space() != lcms2::ColorSpaceSignature::CmykData {
        return None;
    }
    // Adobe's files store 255 for no ink, which is what the reversed layout reads.
    let layout = if inverted {
        lcms2::PixelFormat::CMYK_8_REV
    } else {
        lcms2::PixelFormat::CMYK_8
    };
    let srgb = lcms2::Profile::new_srgb();
    let intent = input.header_rendering_intent();
    let transform =
        lcms2::Transform::<[u8; 4], [u8; 3]>::new(&input, layout, &srgb, lcms2::PixelFormat::RGB_8, intent).ok()?;
    let (pixels, _) = cmyk.as_chunks::<4>();
    let mut rgb = vec![[0_u8; 3]; pixels.len()];
    transform.transform_pixels(pixels, &mut rgb);
    Some(rgb.into_flattened())
}

/// Converts CMYK to RGB the way Pillow does, `(255 - C) * (255 - K) / 255`; Adobe files store the
/// samples inverted, so there it is `C * K / 255`.
fn cmyk_to_rgb(cmyk: &[u8], inverted: bool) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for pixel in cmyk.chunks_exact(4) {
        let ink = |value: u8| {
            if inverted {
                u32::from(value)
            } else {
                255 - u32::from(value)
            }
        };
        let black = ink(pixel[3]);
        for &colour in &pixel[..3] {
            let product = ink(colour) * black;
            let rounded = (product + 128 + ((product + 128) >> 8)) >> 8;
            rgb.push(u8::try_from(rounded).unwrap_or(u8::MAX));
        }
    }
    rgb
}

/// Encodes 8-bit grey or RGB pixels as a baseline JPEG with 4:2:0 chroma, embedding `icc_profile`.
pub fn encode(pixels: &Pixels, quality: u8, icc_profile: Option<&[u8]>) -> Result<Vec<u8>, ImageError> {
    let (format, subsampling) = match pixels.layout {
        Layout::Gray => (PixelFormat::GRAY, Subsamp::Gray),
        Layout::Rgb => (PixelFormat::RGB, Subsamp::Sub2x2),
        Layout::GrayAlpha | Layout::Rgba => {
            return Err(ImageError::Internal(
                "JPEG output needs the alpha channel flattened".to_owned(),
            ))
        }
    };
    let mut compressor = Compressor::new().map_err(internal)?;
    compressor.set_quality(i32::from(quality)).map_err(internal)?;
    compressor.set_subsamp(subsampling).map_err(internal)?;
    let width = pixels.width as usize;
    let image = Image {
        pixels: pixels.data.as_slice(),
        width,
        pitch: width * format.size(),
        height: pixels.height as usize,
        format,
    };
    let jpeg = compressor.compress_to_vec(image).map_err(internal)?;
    Ok(match icc_profile {
        Some(profile) => with_icc_profile(&jpeg, profile),
        None => jpeg,
    })
}

/// Inserts `profile` as numbered APP2 segments after the JFIF segment that follows SOI.
fn with_icc_profile(jpeg: &[u8], profile: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = profile.chunks(ICC_CHUNK).collect();
    // The ICC numbering is one byte; a profile over 255 chunks (16 MB) is left out.
    let Ok(count) = u8::try_from(chunks.len()) else {
        return jpeg.to_vec();
    };
    let insert_at = match jpeg.get(2..6) {
        Some([0xFF, 0xE0, high, low]) => 4 + usize::from(u16::from_be_bytes([*high, *low])),
        _ => 2,
    };
    let mut out = Vec::with_capacity(jpeg.len() + profile.len() + 18 * chunks.len());
    out.extend_from_slice(&jpeg[..insert_at.min(jpeg.len())]);
    for (sequence, chunk) in (1..=count).zip(&chunks) {
        let length = u16::try_from(2 + ICC_SIGNATURE.len() + 2 + chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(ICC_SIGNATURE);
        out.extend_from_slice(&[sequence, count]);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&jpeg[insert_at.min(jpeg.len())..]);
    out
}

fn to_u32(value: usize) -> Result<u32, ImageError> {
    u32::try_from(value).map_err(|_| ImageError::corrupt(FORMAT, "the decoded size overflows"))
}

fn corrupt(error: turbojpeg::Error) -> ImageError {
    let message = match error {
        turbojpeg::Error::TurboJpegError(message) => message,
        other => other.to_string(),
    };
    ImageError::corrupt(FORMAT, message.trim_end_matches('.').to_lowercase())
}

fn internal(error: impl std::fmt::Display) -> ImageError {
    ImageError::Internal(format!("libjpeg-turbo: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_jpeg(width: usize, height: usize) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|index| u8::try_from(index % 251).unwrap())
            .collect();
        let image = Image {
            pixels: pixels.as_slice(),
            width,
            pitch: width * 3,
            height,
            format: PixelFormat::RGB,
        };
        let mut compressor = Compressor::new().unwrap();
        compressor.compress_to_vec(image).unwrap()
    }

    #[test]
    fn scale_keeps_twice_the_target() {
        let cases = [
            ((4032, 3024), (200, 150), 1),
            ((1920, 1080), (200, 113), 2),
            ((6000, 4000), (200, 133), 1),
            ((800, 600), (200, 150), 4),
            ((300, 200), (200, 133), 8),
            ((4000, 10), (200, 1), 1),
        ];
        for (full, target, expected) in cases {
            assert_eq!(scale_eighths(full, target), expected, "{full:?} to {target:?}");
        }
    }

    #[test]
    fn header_reads_size_and_kind() {
        let header = read_header(&sample_jpeg(33, 17)).unwrap();
        assert_eq!((header.width, header.height, header.components), (33, 17, 3));
        assert!(!header.progressive);
        assert_eq!(header.orientation, 1);
        assert!(header.icc_profile.is_none());
    }

    #[test]
    fn icc_profile_round_trips_through_app2_chunks() {
        let mut profile = vec![0; 140_000];
        profile[16..20].copy_from_slice(b"RGB ");
        for (index, byte) in profile.iter_mut().enumerate().skip(20) {
            *byte = u8::try_from(index % 253).unwrap();
        }
        let jpeg = with_icc_profile(&sample_jpeg(8, 8), &profile);
        let header = read_header(&jpeg).unwrap();
        assert_eq!(header.icc_profile.as_deref(), Some(profile.as_slice()));
        // libjpeg-turbo still decodes the result.
        assert!(Decompressor::new().unwrap().read_header(&jpeg).is_ok());
    }

    #[test]
    fn incomplete_icc_is_ignored() {
        assert_eq!(assemble_icc(vec![(1, b"ab"), (3, b"cd")]), None);
        assert_eq!(assemble_icc(vec![(2, b"cd"), (1, b"ab")]), Some(b"abcd".to_vec()));
    }

    #[test]
    fn truncated_header_is_an_error() {
        let jpeg = sample_jpeg(8, 8);
        for end in [3, 10, 20] {
            assert!(
                matches!(read_header(&jpeg[..end]), Err(ImageError::Corrupt { .. })),
                "cut at {end}"
            );
        }
    }

    #[test]
    fn ycck_jpeg_gives_the_right_colours() {
        // Left half cyan, right half magenta, stored inverted as Adobe software stores CMYK.
        let (width, height) = (64, 32);
        let mut cmyk = Vec::new();
        for _ in 0..height {
            for x in 0..width {
                cmyk.extend(if x < width / 2 {
                    [0, 255, 255, 255]
                } else {
                    [255, 0, 255, 255]
                });
            }
        }
        let image = Image {
            pixels: cmyk.as_slice(),
            width,
            pitch: width * 4,
            height,
            format: PixelFormat::CMYK,
        };
        let mut compressor = Compressor::new().unwrap();
        compressor.set_colorspace(Colorspace::YCCK).unwrap();
        compressor.set_quality(95).unwrap();
        let jpeg = compressor.compress_to_vec(image).unwrap();
        assert_eq!(
            Decompressor::new().unwrap().read_header(&jpeg).unwrap().colorspace,
            Colorspace::YCCK
        );

        let options = super::super::Options {
            size: (32, 32),
            format: super::super::OutputFormat::Png,
            ..super::super::Options::default()
        };
        let decoded = decode(&jpeg, &options).unwrap();
        let pixel = |x: usize, y: usize| {
            let at = (y * decoded.pixels.width as usize + x) * 3;
            decoded.pixels.data[at..at + 3].to_vec()
        };
        let near = |actual: Vec<u8>, expected: [u8; 3]| actual.iter().zip(expected).all(|(a, e)| a.abs_diff(e) <= 8);
        let right = decoded.pixels.width as usize - 4;
        assert!(near(pixel(3, 3), [0, 255, 255]), "{:?}", pixel(3, 3));
        assert!(near(pixel(right, 3), [255, 0, 255]), "{:?}", pixel(right, 3));
    }

    #[test]
    fn cmyk_conversion_follows_the_adobe_inversion() {
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0], false), vec![255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 255], true), vec![255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 0, 0, 0], false), vec![0, 255, 255]);
    }
}
