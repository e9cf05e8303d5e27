//! Accepted events → Arrow `RecordBatch` with [`event_schema`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::error::ArrowError;

use crate::decode::RawEvent;
use crate::schema::{event_schema, local_date, DayZone, UTC};

/// Column builders for the `events` schema. Rows are appended one event at
/// a time, straight from the borrowed [`RawEvent`].
pub struct EventBatchBuilder {
    zone: DayZone,
    event_id: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    event_date: Date32Builder,
    app_id: StringBuilder,
    account_id: StringBuilder,
    kind: StringBuilder,
    region: StringBuilder,
    device_id: StringBuilder,
    device_model: StringBuilder,
    os_version: StringBuilder,
    app_version: StringBuilder,
    ip: StringBuilder,
    network_id: StringBuilder,
    integrity: StringBuilder,
    lat: Float64Builder,
    lon: Float64Builder,
    accuracy_m: Float64Builder,
    speed_mps: Float64Builder,
    mock_location: BooleanBuilder,
    module: StringBuilder,
    session_id: StringBuilder,
    attrs: StringBuilder,
    patrol_id: StringBuilder,
    route_id: StringBuilder,
    task_id: StringBuilder,
    point_id: StringBuilder,
    referrer: StringBuilder,
    claimed_region: StringBuilder,
    registry: StringBuilder,
    record_key: StringBuilder,
    category: StringBuilder,
    changed_fields: Int64Builder,
    duration_s: Float64Builder,
    rows: usize,
    bytes: usize,
}

impl EventBatchBuilder {
    pub fn new(zone: DayZone) -> Self {
        EventBatchBuilder::with_capacity(zone, 1024)
    }

    pub fn with_capacity(zone: DayZone, rows: usize) -> Self {
        let s = || StringBuilder::with_capacity(rows, rows * 8);
        let f = || Float64Builder::with_capacity(rows);
        EventBatchBuilder {
            zone,
            event_id: s(),
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC),
            event_date: Date32Builder::with_capacity(rows),
            app_id: s(),
            account_id: s(),
            kind: s(),
            region: s(),
            device_id: s(),
            device_model: s(),
            os_version: s(),
            app_version: s(),
            ip: s(),
            network_id: s(),
            integrity: s(),
            lat: f(),
            lon: f(),
            accuracy_m: f(),
            speed_mps: f(),
            mock_location: BooleanBuilder::with_capacity(rows),
            module: s(),
            session_id: s(),
            attrs: s(),
            patrol_id: s(),
            route_id: s(),
            task_id: s(),
            point_id: s(),
            referrer: s(),
            claimed_region: s(),
            registry: s(),
            record_key: s(),
            category: s(),
            changed_fields: Int64Builder::with_capacity(rows),
            duration_s: f(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Approximate size of the buffered rows (bytes of the source messages).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Appends one accepted event. `source_len` is the size of the message it
    /// came from, used only for [`buffered_bytes`](Self::buffered_bytes).
    pub fn append(&mut self, e: &RawEvent<'_>, source_len: usize) {
        self.event_id.append_value(&e.event_id);
        self.ts.append_value(e.ts_micros);
        self.event_date
            .append_value(local_date(e.ts_micros, self.zone));
        self.app_id.append_value(&e.app_id);
        self.account_id.append_value(&e.account_id);
        self.kind.append_value(e.kind.as_str());
        self.region.append_option(e.region.as_deref());
        self.device_id.append_option(e.device_id.as_deref());
        self.device_model.append_option(e.device_model.as_deref());
        self.os_version.append_option(e.os_version.as_deref());
        self.app_version.append_option(e.app_version.as_deref());
        self.ip.append_option(e.ip.as_deref());
        self.network_id.append_option(e.network_id.as_deref());
        self.integrity
            .append_option(e.integrity.map(|i| i.as_str()));
        self.lat.append_option(e.lat);
        self.lon.append_option(e.lon);
        self.accuracy_m.append_option(e.accuracy_m);
        self.speed_mps.append_option(e.speed_mps);
        self.mock_location.append_option(e.mock_location);
        self.module.append_option(e.module.as_deref());
        self.session_id.append_option(e.session_id.as_deref());
        self.attrs.append_option(e.attrs);
        let a = &e.typed_attrs;
        self.patrol_id.append_option(a.patrol_id.as_deref());
        self.route_id.append_option(a.route_id.as_deref());
        self.task_id.append_option(a.task_id.as_deref());
        self.point_id.append_option(a.point_id.as_deref());
        self.referrer.append_option(a.referrer.as_deref());
        self.claimed_region
            .append_option(a.claimed_region.as_deref());
        self.registry.append_option(a.registry.as_deref());
        self.record_key.append_option(a.record_key.as_deref());
        self.category.append_option(a.category.as_deref());
        self.changed_fields.append_option(a.changed_fields);
        self.duration_s.append_option(a.duration_s);
        self.rows += 1;
        self.bytes += source_len;
    }

    /// Takes the buffered rows as a batch and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.event_date.finish()),
            Arc::new(self.app_id.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.device_id.finish()),
            Arc::new(self.device_model.finish()),
            Arc::new(self.os_version.finish()),
            Arc::new(self.app_version.finish()),
            Arc::new(self.ip.finish()),
            Arc::new(self.network_id.finish()),
            Arc::new(self.integrity.finish()),
            Arc::new(self.lat.finish()),
            Arc::new(self.lon.finish()),
            Arc::new(self.accuracy_m.finish()),
            Arc::new(self.speed_mps.finish()),
            Arc::new(self.mock_location.finish()),
            Arc::new(self.module.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.attrs.finish()),
            Arc::new(self.patrol_id.finish()),
            Arc::new(self.route_id.finish()),
            Arc::new(self.task_id.finish()),
            Arc::new(self.point_id.finish()),
            Arc::new(self.referrer.finish()),
            Arc::new(self.claimed_region.finish()),
            Arc::new(self.registry.finish()),
            Arc::new(self.record_key.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.changed_fields.finish()),
            Arc::new(self.duration_s.finish()),
        ];
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(event_schema(), columns)
    }
}
