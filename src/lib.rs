//! fastric's native core: the Lambda Runtime API client and invocation loop, the JSON codecs, the
//! decoders of event-source records and the thumbnail pipeline.

mod decode;
mod encode;
mod events;
pub mod image;
mod python;
pub mod runtime_api;
mod text;

pub use python::_fastric;
