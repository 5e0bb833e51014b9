//! fastric's native core: the Lambda Runtime API client and invocation loop, and the JSON codecs.

mod decode;
mod encode;
mod python;
pub mod runtime_api;

pub use python::_fastric;
