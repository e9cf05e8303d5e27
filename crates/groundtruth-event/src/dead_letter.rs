//! Bad events kept whole, with where they came from and why they failed.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Int32Builder, Int64Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::error::ArrowError;

use crate::reject::Reject;
use crate::schema::{dead_letter_schema, local_date, DayZone, UTC};
use crate::DEAD_LETTER_RAW_PREFIX;

/// Where a message was read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourcePosition {
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// `line` is 1-based.
    File {
        path: String,
        line: u64,
    },
    Simulator {
        seq: u64,
    },
}

impl SourcePosition {
    pub fn kind(&self) -> &'static str {
        match self {
            SourcePosition::Kafka { .. } => "kafka",
            SourcePosition::File { .. } => "file",
            SourcePosition::Simulator { .. } => "simulator",
        }
    }

    pub fn source(&self) -> &str {
        match self {
            SourcePosition::Kafka { topic, .. } => topic,
            SourcePosition::File { path, .. } => path,
            SourcePosition::Simulator { .. } => "simulator",
        }
    }

    pub fn partition(&self) -> Option<i32> {
        match self {
            SourcePosition::Kafka { partition, .. } => Some(*partition),
            _ => None,
        }
    }

    pub fn offset(&self) -> i64 {
        match self {
            SourcePosition::Kafka { offset, .. } => *offset,
            SourcePosition::File { line, .. } => *line as i64,
            SourcePosition::Simulator { seq } => *seq as i64,
        }
    }
}

impl std::fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourcePosition::Kafka {
                topic,
                partition,
                offset,
            } => write!(f, "{topic}[{partition}]@{offset}"),
            SourcePosition::File { path, line } => write!(f, "{path}:{line}"),
            SourcePosition::Simulator { seq } => write!(f, "simulator#{seq}"),
        }
    }
}

/// A bad event.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub position: &'a SourcePosition,
    pub raw: &'a [u8],
    /// Length of the original message (`raw` may be only a prefix of it).
    pub raw_len: usize,
    pub reject: &'a Reject,
    pub received_at_micros: i64,
}

/// Column builders for the `dead_letters` schema.
pub struct DeadLetterBatchBuilder {
    zone: DayZone,
    source_kind: StringBuilder,
    source: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    reason_code: StringBuilder,
    field: StringBuilder,
    reason: StringBuilder,
    raw: BinaryBuilder,
    raw_len: Int64Builder,
    raw_truncated: BooleanBuilder,
    received_at: TimestampMicrosecondBuilder,
    received_date: Date32Builder,
    rows: usize,
}

impl DeadLetterBatchBuilder {
    pub fn new(zone: DayZone) -> Self {
        DeadLetterBatchBuilder {
            zone,
            source_kind: StringBuilder::new(),
            source: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            reason_code: StringBuilder::new(),
            field: StringBuilder::new(),
            reason: StringBuilder::new(),
            raw: BinaryBuilder::new(),
            raw_len: Int64Builder::new(),
            raw_truncated: BooleanBuilder::new(),
            received_at: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            received_date: Date32Builder::new(),
            rows: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one dead letter; keeps at most [`DEAD_LETTER_RAW_PREFIX`]
    /// bytes of the raw message.
    pub fn append(&mut self, d: &DeadLetter<'_>) {
        let kept = &d.raw[..d.raw.len().min(DEAD_LETTER_RAW_PREFIX)];
        self.source_kind.append_value(d.position.kind());
        self.source.append_value(d.position.source());
        self.partition.append_option(d.position.partition());
        self.offset.append_value(d.position.offset());
        self.reason_code.append_value(d.reject.code.as_str());
        self.field.append_option(d.reject.field);
        self.reason.append_value(&d.reject.detail);
        self.raw.append_value(kept);
        self.raw_len.append_value(d.raw_len as i64);
        self.raw_truncated.append_value(kept.len() < d.raw_len);
        self.received_at.append_value(d.received_at_micros);
        self.received_date
            .append_value(local_date(d.received_at_micros, self.zone));
        self.rows += 1;
    }

    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.source_kind.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.reason_code.finish()),
            Arc::new(self.field.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.raw_len.finish()),
            Arc::new(self.raw_truncated.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.received_date.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(dead_letter_schema(), columns)
    }
}
