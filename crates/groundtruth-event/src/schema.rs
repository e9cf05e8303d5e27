//! The one fixed Arrow schema of the `events` table and of `dead_letters`.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Time zone of the UTC timestamps stored in the lake.
pub const UTC: &str = "UTC";

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn f64_col(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

fn ts_col(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        nullable,
    )
}

/// Schema of the `events` table, one column per contract field plus
/// `event_date` (the local day of `ts` in the configured [`DayZone`]) and
/// typed copies of the `attrs` that detectors need. `attrs` itself is kept
/// as JSON text.
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                utf8("event_id", false),
                ts_col("ts", false),
                Field::new("event_date", DataType::Date32, false),
                utf8("app_id", false),
                utf8("account_id", false),
                utf8("kind", false),
                utf8("region", true),
                utf8("device_id", true),
                utf8("device_model", true),
                utf8("os_version", true),
                utf8("app_version", true),
                utf8("ip", true),
                utf8("network_id", true),
                utf8("integrity", true),
                f64_col("lat"),
                f64_col("lon"),
                f64_col("accuracy_m"),
                f64_col("speed_mps"),
                Field::new("mock_location", DataType::Boolean, true),
                utf8("module", true),
                utf8("session_id", true),
                utf8("attrs", true),
                utf8("patrol_id", true),
                utf8("route_id", true),
                utf8("task_id", true),
                utf8("point_id", true),
                utf8("referrer", true),
                utf8("claimed_region", true),
                utf8("registry", true),
                utf8("record_key", true),
                utf8("category", true),
                Field::new("changed_fields", DataType::Int64, true),
                f64_col("duration_s"),
            ]))
        })
        .clone()
}

/// The `events` string columns that are keys: few distinct values per
/// Parquet column chunk (apps, accounts, kinds, regions, devices, ...; not
/// `event_id`, `session_id`, `attrs`). SQL reads them as the files' own
/// dictionaries when an aggregate groups by them (`groundtruth-sql`'s
/// `DictionaryKeys` rule). Declared here, beside the schema, and nowhere else.
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "app_id",
    "account_id",
    "kind",
    "region",
    "device_id",
    "device_model",
    "os_version",
    "app_version",
    "network_id",
    "integrity",
    "module",
    "referrer",
    "claimed_region",
    "registry",
    "category",
];

/// Schema of the `dead_letters` table.
pub fn dead_letter_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                // `kafka`, `file` or `simulator`
                utf8("source_kind", false),
                // topic name or file path
                utf8("source", false),
                Field::new("partition", DataType::Int32, true),
                // Kafka offset, or 1-based line number in a file
                Field::new("offset", DataType::Int64, false),
                utf8("reason_code", false),
                utf8("field", true),
                utf8("reason", false),
                // the message as received (a prefix when `raw_truncated`)
                Field::new("raw", DataType::Binary, false),
                Field::new("raw_len", DataType::Int64, false),
                Field::new("raw_truncated", DataType::Boolean, false),
                ts_col("received_at", false),
                Field::new("received_date", DataType::Date32, false),
            ]))
        })
        .clone()
}

/// The zone in which an event's "day" is reckoned (contract: Asia/Shanghai
/// unless configured otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayZone(pub Tz);

impl Default for DayZone {
    fn default() -> Self {
        DayZone(Tz::Asia__Shanghai)
    }
}

impl DayZone {
    /// Parses an IANA zone name such as `Asia/Shanghai`.
    pub fn parse(name: &str) -> Option<DayZone> {
        name.parse::<Tz>().ok().map(DayZone)
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Seconds east of UTC now (windows align to local midnight by it).
    pub fn utc_offset_s(&self) -> i64 {
        let now = chrono::Utc::now().naive_utc();
        i64::from(
            self.0
                .offset_from_utc_datetime(&now)
                .fix()
                .local_minus_utc(),
        )
    }
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Days since 1970-01-01 of the local date of `utc_micros` in `zone`
/// (Arrow `Date32`).
pub fn local_date(utc_micros: i64, zone: DayZone) -> i32 {
    let secs = utc_micros.div_euclid(1_000_000);
    let Some(utc) = DateTime::<Utc>::from_timestamp(secs, 0) else {
        return 0;
    };
    let offset = zone.0.offset_from_utc_datetime(&utc.naive_utc()).fix();
    let local = utc.naive_utc() + offset;
    local.date().num_days_from_ce_i32() - EPOCH_DAYS_FROM_CE
}

trait DaysFromCe {
    fn num_days_from_ce_i32(&self) -> i32;
}

impl DaysFromCe for NaiveDate {
    fn num_days_from_ce_i32(&self) -> i32 {
        chrono::Datelike::num_days_from_ce(self)
    }
}

/// `YYYY-MM-DD` of an Arrow `Date32` value.
pub fn date32_to_string(days: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_FROM_CE)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{days}"))
}

/// The Arrow `Date32` value of `YYYY-MM-DD` (the inverse of
/// [`date32_to_string`]), if it is one.
pub fn string_to_date32(text: &str) -> Option<i32> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_FROM_CE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_columns_are_string_columns_of_events() {
        let schema = event_schema();
        for name in DICTIONARY_COLUMNS {
            let field = schema.field_with_name(name).expect("a column of events");
            assert_eq!(field.data_type(), &DataType::Utf8, "{name}");
        }
        for high in ["event_id", "session_id", "attrs", "ip"] {
            assert!(!DICTIONARY_COLUMNS.contains(&high), "{high}");
        }
    }

    #[test]
    fn dates_round_trip_through_text() {
        for days in [0, 20_759, -365, 40_000] {
            assert_eq!(string_to_date32(&date32_to_string(days)), Some(days));
        }
        assert_eq!(string_to_date32("2026-11-02"), Some(20_759));
        assert_eq!(string_to_date32("_tmp"), None);
    }

    #[test]
    fn shanghai_day_starts_at_16_utc() {
        let zone = DayZone::default();
        // 2026-11-01T15:59:59Z is 23:59:59 in Shanghai on Nov 1.
        let a = DateTime::parse_from_rfc3339("2026-11-01T15:59:59Z").unwrap();
        let b = DateTime::parse_from_rfc3339("2026-11-01T16:00:00Z").unwrap();
        let da = local_date(a.timestamp_micros(), zone);
        let db = local_date(b.timestamp_micros(), zone);
        assert_eq!(date32_to_string(da), "2026-11-01");
        assert_eq!(date32_to_string(db), "2026-11-02");
    }

    #[test]
    fn other_zone() {
        let zone = DayZone::parse("UTC").unwrap();
        let b = DateTime::parse_from_rfc3339("2026-11-01T16:00:00+08:00").unwrap();
        assert_eq!(
            date32_to_string(local_date(b.timestamp_micros(), zone)),
            "2026-11-01"
        );
        assert!(DayZone::parse("Mars/Base").is_none());
    }
}
