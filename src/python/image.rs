//! The thumbnail functions: argument plumbing around `crate::image`, run without the GIL.

use std::num::NonZeroUsize;
use std::thread;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::image::{self, ImageError, Options, OutputFormat, Thumbnail};

/// The Python exception types, defined in `fastric.errors` so they can subclass stdlib types.
mod exceptions {
    pyo3::import_exception!(fastric.errors, ImageError);
    pyo3::import_exception!(fastric.errors, UnidentifiedImageError);
    pyo3::import_exception!(fastric.errors, DecompressionBombError);
    pyo3::import_exception!(fastric.errors, CorruptImageError);
    pyo3::import_exception!(fastric.errors, UnsupportedImageError);
}

impl From<ImageError> for PyErr {
    fn from(error: ImageError) -> Self {
        let message = error.to_string();
        match error {
            ImageError::NotAnImage { .. } => exceptions::UnidentifiedImageError::new_err(message),
            ImageError::TooLarge { .. } => exceptions::DecompressionBombError::new_err(message),
            ImageError::Corrupt { .. } => exceptions::CorruptImageError::new_err(message),
            ImageError::Unsupported { .. } => exceptions::UnsupportedImageError::new_err(message),
            ImageError::InvalidOption(_) | ImageError::Internal(_) => exceptions::ImageError::new_err(message),
        }
    }
}

fn options(
    size: (u32, u32),
    format: &str,
    quality: u8,
    background: (u8, u8, u8),
    max_pixels: Option<u64>,
    shrink_on_load: bool,
) -> Result<Options, ImageError> {
    Ok(Options {
        size,
        format: OutputFormat::parse(format)?,
        quality,
        background: [background.0, background.1, background.2],
        max_pixels,
        shrink_on_load,
    })
}

fn to_python<'py>(py: Python<'py>, thumbnail: &Thumbnail) -> PyResult<Bound<'py, PyTuple>> {
    let data = PyBytes::new(py, &thumbnail.data);
    (data, thumbnail.width, thumbnail.height, thumbnail.format.content_type()).into_pyobject(py)
}

/// Makes one thumbnail; returns `(data, width, height, content_type)`.
#[pyfunction]
#[pyo3(signature = (data, size=(200, 200), *, format="JPEG", quality=85, background=(255, 255, 255), max_pixels=Some(image::DEFAULT_MAX_PIXELS), shrink_on_load=true))]
#[expect(clippy::too_many_arguments, reason = "the Python API's keyword arguments")]
pub fn thumbnail<'py>(
    py: Python<'py>,
    data: &[u8],
    size: (u32, u32),
    format: &str,
    quality: u8,
    background: (u8, u8, u8),
    max_pixels: Option<u64>,
    shrink_on_load: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let options = options(size, format, quality, background, max_pixels, shrink_on_load)?;
    let thumbnail = py.detach(|| image::thumbnail(data, &options))?;
    to_python(py, &thumbnail)
}

/// Makes thumbnails of many images on a thread pool; returns a list with, per image, the tuple
/// `thumbnail` returns or the exception it would have raised.
#[pyfunction]
#[pyo3(signature = (images, size=(200, 200), *, format="JPEG", quality=85, background=(255, 255, 255), max_pixels=Some(image::DEFAULT_MAX_PIXELS), shrink_on_load=true, workers=None))]
#[expect(clippy::too_many_arguments, reason = "the Python API's keyword arguments")]
#[expect(
    clippy::needless_pass_by_value,
    reason = "pyo3 extracts a sequence argument as a Vec"
)]
pub fn thumbnails<'py>(
    py: Python<'py>,
    images: Vec<Bound<'py, PyBytes>>,
    size: (u32, u32),
    format: &str,
    quality: u8,
    background: (u8, u8, u8),
    max_pixels: Option<u64>,
    shrink_on_load: bool,
    workers: Option<NonZeroUsize>,
) -> PyResult<Bound<'py, PyList>> {
    let options = options(size, format, quality, background, max_pixels, shrink_on_load)?;
    let workers = workers
        .or_else(|| thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let slices: Vec<&[u8]> = images.iter().map(PyBytesMethods::as_bytes).collect();
    let results = py.detach(|| image::thumbnails(&slices, &options, workers));
    let items = results
        .into_iter()
        .map(|result| match result {
            Ok(thumbnail) => Ok(to_python(py, &thumbnail)?.into_any()),
            Err(error) => Ok(PyErr::from(error).into_value(py).into_bound(py).into_any()),
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}
