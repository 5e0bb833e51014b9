//! PNG, GIF and WebP through maintained pure-Rust codecs, and the PNG encoder. None of these
//! formats can be decoded at reduced scale, so the header check is all that bounds memory.

use std::borrow::Cow;
use std::io::Cursor;
use std::num::NonZeroU64;

use super::pixels::{narrow_sample, Layout, Pixels};
use super::{check_size, exif, Decoded, ImageError, Options};

pub fn decode_png(data: &[u8], options: &Options) -> Result<Decoded, ImageError> {
    const FORMAT: &str = "PNG";
    let corrupt = |error: png::DecodingError| ImageError::corrupt(FORMAT, error);

    // IHDR is the first chunk: its size is checked before the decoder allocates anything.
    let (width, height) = match data.get(16..24) {
        Some(&[w0, w1, w2, w3, h0, h1, h2, h3]) if data.get(12..16) == Some(b"IHDR") => (
            u32::from_be_bytes([w0, w1, w2, w3]),
            u32::from_be_bytes([h0, h1, h2, h3]),
        ),
        _ => return Err(ImageError::corrupt(FORMAT, "the header is missing or cut short")),
    };
    check_size(width, height, options, FORMAT)?;

    // Palettes, transparency chunks and low bit depths expand to plain 8- or 16-bit channels.
    let mut decoder = png::Decoder::new(Cursor::new(data));
    decoder.set_transformations(png::Transformations::EXPAND);
    decoder.set_limits(png::Limits { bytes: usize::MAX });
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| ImageError::corrupt(FORMAT, "the image is too large for memory"))?;
    let mut buffer = vec![0; size];
    let frame = reader.next_frame(&mut buffer).map_err(corrupt)?;
    buffer.truncate(frame.buffer_size());

    let layout = match frame.color_type {
        png::ColorType::Grayscale => Layout::Gray,
        png::ColorType::GrayscaleAlpha => Layout::GrayAlpha,
        png::ColorType::Rgb => Layout::Rgb,
        png::ColorType::Rgba => Layout::Rgba,
        png::ColorType::Indexed => return Err(ImageError::unsupported(FORMAT, "palette left unexpanded")),
    };
    if frame.bit_depth == png::BitDepth::Sixteen {
        buffer = buffer
            .chunks_exact(2)
            .map(|sample| narrow_sample(sample[0], sample[1]))
            .collect();
    }
    let info = reader.info();
    Ok(Decoded {
        pixels: Pixels {
            width: frame.width,
            height: frame.height,
            layout,
            data: buffer,
        },
        full_size: (frame.width, frame.height),
        orientation: info.exif_metadata.as_deref().map_or(1, exif::orientation),
        icc_profile: info.icc_profile.clone().map(Cow::into_owned),
    })
}

pub fn decode_gif(data: &[u8], options: &Options) -> Result<Decoded, ImageError> {
    const FORMAT: &str = "GIF";
    let corrupt = |error: gif::DecodingError| ImageError::corrupt(FORMAT, error);

    let (width, height) = match data.get(6..10) {
        Some(&[w0, w1, h0, h1]) => (
            u32::from(u16::from_le_bytes([w0, w1])),
            u32::from(u16::from_le_bytes([h0, h1])),
        ),
        _ => return Err(ImageError::corrupt(FORMAT, "the header is cut short")),
    };
    check_size(width, height, options, FORMAT)?;

    // The first frame is the image; it may be smaller than the screen and sit at an offset. A frame
    // larger than the pixel limit is refused by the decoder before it allocates.
    let mut gif_options = gif::DecodeOptions::new();
    gif_options.set_color_output(gif::ColorOutput::RGBA);
    let limit = options
        .max_pixels
        .and_then(|pixels| NonZeroU64::new(pixels.saturating_mul(4)));
    gif_options.set_memory_limit(limit.map_or(gif::MemoryLimit::Unlimited, gif::MemoryLimit::Bytes));
    let mut decoder = gif_options.read_info(Cursor::new(data)).map_err(corrupt)?;
    let frame = decoder
        .read_next_frame()
        .map_err(corrupt)?
        .ok_or_else(|| ImageError::corrupt(FORMAT, "the file has no frame"))?;

    let (canvas_width, canvas_height) = (width as usize, height as usize);
    let mut canvas = vec![0; canvas_width * canvas_height * 4];
    let (left, top) = (usize::from(frame.left), usize::from(frame.top));
    let frame_width = usize::from(frame.width);
    for (row, line) in frame.buffer.chunks_exact(frame_width.max(1) * 4).enumerate() {
        let y = top + row;
        if y >= canvas_height || left >= canvas_width {
            continue;
        }
        let visible = frame_width.min(canvas_width - left) * 4;
        let start = (y * canvas_width + left) * 4;
        canvas[start..start + visible].copy_from_slice(&line[..visible]);
    }
    Ok(Decoded {
        pixels: Pixels {
            width,
            height,
            layout: Layout::Rgba,
            data: canvas,
        },
        full_size: (width, height),
        orientation: 1,
        icc_profile: None,
    })
}

pub fn decode_webp(data: &[u8], options: &Options) -> Result<Decoded, ImageError> {
    const FORMAT: &str = "WebP";
    let corrupt = |error: image_webp::DecodingError| ImageError::corrupt(FORMAT, error);

    // Creating the decoder reads the chunk headers only; pixels come with `read_image`.
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(data)).map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, options, FORMAT)?;
    let layout = if decoder.has_alpha() { Layout::Rgba } else { Layout::Rgb };
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| ImageError::corrupt(FORMAT, "the image is too large for memory"))?;
    let mut buffer = vec![0; size];
    // For an animation this is the first frame.
    decoder.read_image(&mut buffer).map_err(corrupt)?;
    let icc_profile = decoder.icc_profile().ok().flatten();
    let orientation = decoder
        .exif_metadata()
        .ok()
        .flatten()
        .map_or(1, |exif| exif::orientation(&exif));
    Ok(Decoded {
        pixels: Pixels {
            width,
            height,
            layout,
            data: buffer,
        },
        full_size: (width, height),
        orientation,
        icc_profile,
    })
}

/// Encodes 8-bit pixels as PNG, alpha included, embedding `icc_profile`.
pub fn encode_png(pixels: &Pixels, icc_profile: Option<&[u8]>) -> Result<Vec<u8>, ImageError> {
    let failed = |error: png::EncodingError| ImageError::Internal(format!("PNG encoding failed: {error}"));
    let mut info = png::Info::with_size(pixels.width, pixels.height);
    info.color_type = match pixels.layout {
        Layout::Gray => png::ColorType::Grayscale,
        Layout::GrayAlpha => png::ColorType::GrayscaleAlpha,
        Layout::Rgb => png::ColorType::Rgb,
        Layout::Rgba => png::ColorType::Rgba,
    };
    info.bit_depth = png::BitDepth::Eight;
    info.icc_profile = icc_profile.map(Cow::Borrowed);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::with_info(&mut out, info).map_err(failed)?;
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&pixels.data).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}
