//! Thumbnails: uploaded image bytes in, a small upright JPEG or PNG out. JPEGs are decoded at the
//! smallest DCT scale that keeps twice the target size, progressive ones from their DC scans alone.

mod codecs;
mod exif;
mod jpeg;
mod pixels;
mod progressive;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use self::pixels::{Layout, Pixels};

/// Pillow's `Image.MAX_IMAGE_PIXELS`: larger images are refused as decompression bombs.
pub const DEFAULT_MAX_PIXELS: u64 = 89_478_485;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Jpeg,
    Png,
}

impl OutputFormat {
    pub fn parse(name: &str) -> Result<Self, ImageError> {
        match name.to_ascii_uppercase().as_str() {
            "JPEG" | "JPG" => Ok(Self::Jpeg),
            "PNG" => Ok(Self::Png),
            _ => Err(ImageError::InvalidOption(format!(
                "unknown output format {name:?}: expected \"JPEG\" or \"PNG\""
            ))),
        }
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }
}

/// How to make a thumbnail.
#[derive(Debug, Clone)]
pub struct Options {
    /// The box the thumbnail must fit in, width and height.
    pub size: (u32, u32),
    pub format: OutputFormat,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// The colour transparent pixels are flattened onto for JPEG output.
    pub background: [u8; 3],
    /// The largest width x height decoded; `None` for no limit.
    pub max_pixels: Option<u64>,
    /// Decode JPEGs at a reduced DCT scale (the fast path); `false` decodes every pixel first.
    pub shrink_on_load: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size: (200, 200),
            format: OutputFormat::Jpeg,
            quality: 85,
            background: [255, 255, 255],
            max_pixels: Some(DEFAULT_MAX_PIXELS),
            shrink_on_load: true,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<(), ImageError> {
        if self.size.0 == 0 || self.size.1 == 0 {
            let (width, height) = self.size;
            return Err(ImageError::InvalidOption(format!(
                "size must be at least 1x1, got {width}x{height}"
            )));
        }
        if !(1..=100).contains(&self.quality) {
            let quality = self.quality;
            return Err(ImageError::InvalidOption(format!(
                "quality must be between 1 and 100, got {quality}"
            )));
        }
        Ok(())
    }
}

/// An encoded thumbnail and its size.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// An option is out of range.
    InvalidOption(String),
    /// The data is in none of the formats read here.
    NotAnImage { magic: Vec<u8> },
    /// The header announces more pixels than allowed.
    TooLarge { width: u32, height: u32, limit: u64 },
    /// The data is truncated or damaged.
    Corrupt { format: &'static str, reason: String },
    /// The image is valid but uses a feature not supported here.
    Unsupported { format: &'static str, reason: String },
    /// Encoding the thumbnail failed, or a codec failed in a way that says nothing about the input.
    Internal(String),
}

impl ImageError {
    fn corrupt(format: &'static str, reason: impl fmt::Display) -> Self {
        Self::Corrupt {
            format,
            reason: reason.to_string(),
        }
    }

    fn unsupported(format: &'static str, reason: impl fmt::Display) -> Self {
        Self::Unsupported {
            format,
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidOption(message) | Self::Internal(message) => f.write_str(message),
            Self::NotAnImage { magic } => {
                write!(
                    f,
                    "not an image: the data is none of JPEG, PNG, GIF or WebP (it starts with"
                )?;
                if magic.is_empty() {
                    f.write_str(" nothing, it is empty)")
                } else {
                    magic.iter().try_for_each(|byte| write!(f, " {byte:02x}"))?;
                    f.write_str(")")
                }
            }
            Self::TooLarge { width, height, limit } => write!(
                f,
                "image of {width}x{height} pixels is over the limit of {limit} pixels and could be a \
                 decompression bomb; raise max_pixels to accept it"
            ),
            Self::Corrupt { format, reason } => write!(f, "corrupt or truncated {format} image: {reason}"),
            Self::Unsupported { format, reason } => write!(f, "unsupported {format} image: {reason}"),
        }
    }
}

impl std::error::Error for ImageError {}

/// An image decoded at a size at least that of its thumbnail, with what is needed to finish it.
struct Decoded {
    pixels: Pixels,
    /// The stored image's size before any reduction at decode time.
    full_size: (u32, u32),
    orientation: u8,
    icc_profile: Option<Vec<u8>>,
}

/// Makes one thumbnail. A panic inside a codec is reported as an error rather than unwinding.
pub fn thumbnail(data: &[u8], options: &Options) -> Result<Thumbnail, ImageError> {
    catch_unwind(AssertUnwindSafe(|| make_thumbnail(data, options)))
        .unwrap_or_else(|_| Err(ImageError::Internal("an image codec failed unexpectedly".to_owned())))
}

/// Makes thumbnails of `images` on up to `workers` threads, results in input order.
pub fn thumbnails(images: &[&[u8]], options: &Options, workers: usize) -> Vec<Result<Thumbnail, ImageError>> {
    let workers = workers.clamp(1, images.len().max(1));
    if workers == 1 {
        return images.iter().map(|data| thumbnail(data, options)).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Thumbnail, ImageError>>> = vec![None; images.len()];
    thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(data) = images.get(index) else { break done };
                        done.push((index, thumbnail(data, options)));
                    }
                })
            })
            .collect();
        for handle in handles {
            // Workers catch codec panics themselves, so joining only fails if the thread could not run.
            for (index, result) in handle.join().unwrap_or_default() {
                results[index] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| Err(ImageError::Internal("a worker thread failed".to_owned()))))
        .collect()
}

fn make_thumbnail(data: &[u8], options: &Options) -> Result<Thumbnail, ImageError> {
    options.validate()?;

    // Decode, at reduced scale where the format allows it.
    let decoded = match Format::sniff(data) {
        Some(Format::Jpeg) => jpeg::decode(data, options)?,
        Some(Format::Png) => codecs::decode_png(data, options)?,
        Some(Format::Gif) => codecs::decode_gif(data, options)?,
        Some(Format::WebP) => codecs::decode_webp(data, options)?,
        None => {
            let magic = data.iter().take(8).copied().collect();
            return Err(ImageError::NotAnImage { magic });
        }
    };

    // Resize in stored orientation to the size that fits the box once upright, then turn upright.
    let (width, height) = stored_target(decoded.full_size, decoded.orientation, options.size);
    let pixels = decoded.pixels.resize(width, height)?.orient(decoded.orientation);

    // Encode, keeping the colour profile when it describes the output's colour space.
    let (width, height) = (pixels.width, pixels.height);
    let data = match options.format {
        OutputFormat::Jpeg => {
            let pixels = pixels.flatten(options.background);
            let profile = decoded
                .icc_profile
                .filter(|profile| profile_fits(profile, pixels.layout));
            jpeg::encode(&pixels, options.quality, profile.as_deref())?
        }
        OutputFormat::Png => {
            let profile = decoded
                .icc_profile
                .filter(|profile| profile_fits(profile, pixels.layout));
            codecs::encode_png(&pixels, profile.as_deref())?
        }
    };
    Ok(Thumbnail {
        data,
        width,
        height,
        format: options.format,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
}

impl Format {
    fn sniff(data: &[u8]) -> Option<Self> {
        if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if data.len() >= 12 && data.starts_with(b"RIFF") && &data[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else {
            None
        }
    }
}

/// Refuses images over the pixel limit; called with the header's size, before any allocation.
fn check_size(width: u32, height: u32, options: &Options, format: &'static str) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::corrupt(
            format,
            format_args!("the header gives a size of {width}x{height}"),
        ));
    }
    match options.max_pixels {
        Some(limit) if u64::from(width) * u64::from(height) > limit => {
            Err(ImageError::TooLarge { width, height, limit })
        }
        _ => Ok(()),
    }
}

/// The size that fits (`box_width`, `box_height`), keeping the aspect ratio and never enlarging,
/// chosen as Pillow's `thumbnail` chooses it: of the floor and the ceiling of the short side, the
/// one whose aspect ratio is closer to the source's, and never below 1.
fn fit(width: u32, height: u32, (box_width, box_height): (u32, u32)) -> (u32, u32) {
    if width <= box_width && height <= box_height {
        return (width, height);
    }
    let aspect = f64::from(width) / f64::from(height);
    let (box_width_f, box_height_f) = (f64::from(box_width), f64::from(box_height));
    let pick = |exact: f64, error: &dyn Fn(f64) -> f64| -> u32 {
        let (floor, ceil) = (exact.floor(), exact.ceil());
        let best = if error(ceil) < error(floor) { ceil } else { floor };
        // `best` is at most the box side here, so it fits in a u32.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "0 <= best <= box side"
        )]
        let best = best as u32;
        best.max(1)
    };
    if box_width_f / box_height_f >= aspect {
        let width = pick(box_height_f * aspect, &|n| (aspect - n / box_height_f).abs());
        (width, box_height)
    } else {
        let height = pick(box_width_f / aspect, &|n| {
            if n == 0.0 {
                0.0
            } else {
                (aspect - box_width_f / n).abs()
            }
        });
        (box_width, height)
    }
}

/// The thumbnail size in the stored orientation: the box applies to the upright image, which is
/// the stored one turned a quarter for orientations 5 to 8.
fn stored_target((width, height): (u32, u32), orientation: u8, size: (u32, u32)) -> (u32, u32) {
    if orientation >= 5 {
        let (upright_width, upright_height) = fit(height, width, size);
        (upright_height, upright_width)
    } else {
        fit(width, height, size)
    }
}

/// Whether an ICC profile describes the colour space of pixels laid out as `layout`; a CMYK
/// profile, say, no longer describes a thumbnail converted to RGB.
fn profile_fits(profile: &[u8], layout: Layout) -> bool {
    match profile.get(16..20) {
        Some(b"RGB ") => matches!(layout, Layout::Rgb | Layout::Rgba),
        Some(b"GRAY") => matches!(layout, Layout::Gray | Layout::GrayAlpha),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_matches_pillow() {
        // (source, box, expected), checked against Pillow 12's Image.thumbnail.
        let cases = [
            ((4032, 3024), (200, 200), (200, 150)),
            ((1920, 1080), (200, 200), (200, 113)),
            ((6000, 4000), (200, 200), (200, 133)),
            ((4000, 10), (200, 200), (200, 1)),
            ((10, 4000), (200, 200), (1, 200)),
            ((1, 1), (200, 200), (1, 1)),
            ((300, 100), (200, 200), (200, 67)),
            ((100, 300), (200, 200), (67, 200)),
            ((150, 300), (200, 200), (100, 200)),
            ((800, 600), (100, 50), (67, 50)),
        ];
        for (source, size, expected) in cases {
            assert_eq!(fit(source.0, source.1, size), expected, "{source:?} in {size:?}");
        }
    }

    #[test]
    fn stored_target_swaps_for_quarter_turns() {
        assert_eq!(stored_target((4032, 3024), 1, (200, 100)), (133, 100));
        assert_eq!(stored_target((4032, 3024), 6, (200, 100)), (100, 75));
    }

    #[test]
    fn sniffs_the_four_formats_and_nothing_else() {
        assert_eq!(Format::sniff(b"\xff\xd8\xff\xe0"), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(Format::sniff(b"GIF89a"), Some(Format::Gif));
        assert_eq!(Format::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::WebP));
        assert_eq!(Format::sniff(b"%PDF-1.7"), None);
        assert_eq!(Format::sniff(b""), None);
    }

    #[test]
    fn not_an_image_says_so() {
        let error = thumbnail(b"%PDF-1.7 hello", &Options::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "not an image: the data is none of JPEG, PNG, GIF or WebP (it starts with 25 50 44 46 2d 31 2e 37)"
        );
    }

    #[test]
    fn options_are_checked() {
        let options = Options {
            quality: 0,
            ..Options::default()
        };
        assert!(matches!(thumbnail(b"", &options), Err(ImageError::InvalidOption(_))));
        let options = Options {
            size: (0, 10),
            ..Options::default()
        };
        assert!(matches!(thumbnail(b"", &options), Err(ImageError::InvalidOption(_))));
    }
}
