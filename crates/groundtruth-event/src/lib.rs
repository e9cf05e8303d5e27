//! The activity event of the groundtruth contract (`shared/contract/README.md`).
//!
//! * [`decode`] turns one JSON message into a borrowed [`RawEvent`] and
//!   validates it exactly as the contract says, or returns a [`Reject`]
//!   naming what is wrong and where.
//! * [`EventBatchBuilder`] appends accepted events straight into Arrow
//!   builders and yields `RecordBatch`es with the one fixed [`event_schema`].
//! * [`DeadLetter`] and [`DeadLetterBatchBuilder`] keep bad messages whole,
//!   with their source position and reason.
//!
//! This crate does no I/O.

mod builder;
mod dead_letter;
mod decode;
mod kind;
mod reject;
mod schema;

pub use builder::EventBatchBuilder;
pub use dead_letter::{DeadLetter, DeadLetterBatchBuilder, SourcePosition};
pub use decode::{decode, Attrs, DecodeOptions, RawEvent};
pub use kind::{EventKind, Integrity};
pub use reject::{Reject, RejectCode};
pub use schema::{
    date32_to_string, dead_letter_schema, event_schema, local_date, string_to_date32, DayZone,
    DICTIONARY_COLUMNS,
};

/// Largest message accepted by default (bytes). Larger messages are
/// dead-lettered as `too_large`, with only a prefix of the raw bytes kept.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// How many leading bytes of an oversized message the dead-letter store keeps.
pub const DEAD_LETTER_RAW_PREFIX: usize = 64 * 1024;
