//! fastric's native core: the Lambda Runtime API client and invocation loop, the JSON codecs and the
//! decoders of event-source records.

mod decode;
mod encode;
mod events;
mod python;
pub mod runtime_api;

pub use python::_fastric;
