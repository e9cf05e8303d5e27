//! The decoder against the contract: the sample file, every class of bad
//! event, and arbitrary bytes.

use groundtruth_event::{
    decode, event_schema, DayZone, DecodeOptions, EventBatchBuilder, EventKind, RejectCode,
};
use proptest::prelude::*;

/// The contract's sample events, read when a test runs (not compiled in: a
/// clone without the shared folder still builds, and only these tests say
/// what is missing).
fn sample() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/contract/sample-events.ndjson");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the contract's sample events at {}: {e}; these tests need the \
             project's shared folder (../shared/contract) beside the repository",
            path.display()
        )
    })
}

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

fn reject(line: &str) -> (RejectCode, Option<&'static str>, String) {
    match decode(line.as_bytes(), &opts()) {
        Ok(e) => panic!("accepted a bad event {line}: {e:?}"),
        Err(r) => (r.code, r.field, r.detail),
    }
}

const GOOD: &str = r#"{"event_id":"e1","ts":"2026-11-02T08:01:12+08:00","app_id":"a","account_id":"u","kind":"check_in","lat":22.8,"lon":108.3}"#;

/// `GOOD` with `patch` applied: a field replaced (`"field":value`) or removed
/// (`-field`).
fn with(patch: &str) -> String {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
    if let Some(name) = patch.strip_prefix('-') {
        v.remove(name);
    } else {
        let p: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&format!("{{{patch}}}")).unwrap();
        v.extend(p);
    }
    serde_json::to_string(&v).unwrap()
}

#[test]
fn sample_events_all_decode() {
    let mut b = EventBatchBuilder::new(DayZone::default());
    let mut kinds = std::collections::HashSet::new();
    let sample = sample();
    for (i, line) in sample.lines().enumerate() {
        let e = decode(line.as_bytes(), &opts())
            .unwrap_or_else(|r| panic!("sample line {} rejected: {r}", i + 1));
        kinds.insert(e.kind);
        b.append(&e, line.len());
    }
    assert_eq!(
        kinds.len(),
        EventKind::ALL.len(),
        "sample shows every kind once"
    );
    let batch = b.finish().unwrap();
    assert_eq!(batch.num_rows(), sample.lines().count());
    assert_eq!(batch.schema(), event_schema());
}

#[test]
fn sample_values_land_in_typed_columns() {
    let sample = sample();
    let line = sample.lines().find(|l| l.contains("\"e-0007\"")).unwrap();
    let e = decode(line.as_bytes(), &opts()).unwrap();
    assert_eq!(e.kind, EventKind::TrackPoint);
    assert_eq!(e.typed_attrs.patrol_id.as_deref(), Some("p-77"));
    assert_eq!(e.lat, Some(22.80107));
    assert_eq!(e.speed_mps, Some(1.3));
    assert_eq!(e.attrs, Some(r#"{"patrol_id":"p-77"}"#));
    // 09:10:05+08:00 = 01:10:05Z
    assert_eq!(e.ts_micros, 1_793_581_805_000_000);
    let upd = sample.lines().find(|l| l.contains("\"e-0011\"")).unwrap();
    let e = decode(upd.as_bytes(), &opts()).unwrap();
    assert_eq!(e.typed_attrs.changed_fields, Some(0));
    assert_eq!(e.typed_attrs.record_key.as_deref(), Some("h-5e1c"));
}

#[test]
fn bad_json() {
    for line in [
        "{",
        "not json",
        "",
        "{\"event_id\":\"x\",}",
        "{} trailing",
        "{\"a\":1}}",
    ] {
        let (code, _, _) = reject(line);
        assert_eq!(code, RejectCode::InvalidJson, "{line:?}");
    }
}

#[test]
fn not_an_object() {
    for line in ["[]", "42", "\"event\"", "null"] {
        assert_eq!(reject(line).0, RejectCode::NotAnObject, "{line:?}");
    }
}

#[test]
fn missing_fields() {
    for f in ["event_id", "ts", "app_id", "account_id", "kind"] {
        let (code, field, detail) = reject(&with(&format!("-{f}")));
        assert_eq!(code, RejectCode::MissingField);
        assert_eq!(field, Some(f));
        assert!(detail.contains(f), "{detail}");
    }
    let (code, field, _) = reject(&with("-lon"));
    assert_eq!((code, field), (RejectCode::MissingField, Some("lon")));
}

#[test]
fn wrong_types() {
    for (patch, f) in [
        (r#""event_id":5"#, "event_id"),
        (r#""ts":1730000000"#, "ts"),
        (r#""lat":"22.8""#, "lat"),
        (r#""mock_location":"no""#, "mock_location"),
        (r#""region":450102"#, "region"),
        (r#""region":null"#, "region"),
        (r#""attrs":[1,2]"#, "attrs"),
        (r#""attrs":{"duration_s":"long"}"#, "attrs.duration_s"),
        (r#""attrs":{"changed_fields":1.5}"#, "attrs.changed_fields"),
        (r#""attrs":{"patrol_id":7}"#, "attrs.patrol_id"),
    ] {
        let (code, field, detail) = reject(&with(patch));
        assert_eq!(code, RejectCode::WrongType, "{patch}: {detail}");
        assert_eq!(field, Some(f), "{patch}");
        assert!(detail.contains(f), "{detail}");
    }
}

#[test]
fn impossible_values() {
    for (patch, f) in [
        (r#""lat":123"#, "lat"),
        (r#""lon":-180.5"#, "lon"),
        (r#""kind":"teleport""#, "kind"),
        (r#""ts":"yesterday""#, "ts"),
        (r#""ts":"2026-11-02T08:01:12""#, "ts"),
        (r#""region":"45010""#, "region"),
        (r#""region":"45010x""#, "region"),
        (r#""ip":"999.1.1.1""#, "ip"),
        (r#""integrity":"great""#, "integrity"),
        (r#""accuracy_m":-1"#, "accuracy_m"),
        (r#""speed_mps":-0.1"#, "speed_mps"),
        (r#""event_id":"""#, "event_id"),
        (r#""attrs":{"changed_fields":-2}"#, "attrs.changed_fields"),
        (r#""attrs":{"duration_s":-2}"#, "attrs.duration_s"),
    ] {
        let (code, field, detail) = reject(&with(patch));
        assert_eq!(code, RejectCode::InvalidValue, "{patch}: {detail}");
        assert_eq!(field, Some(f), "{patch}");
    }
    let long = format!(r#""event_id":"{}""#, "x".repeat(129));
    assert_eq!(reject(&with(&long)).1, Some("event_id"));
    // 128 multi-byte characters are fine: limits count characters.
    let ok = format!(r#""event_id":"{}""#, "巡".repeat(128));
    assert!(decode(with(&ok).as_bytes(), &opts()).is_ok());
}

#[test]
fn track_point_needs_patrol_id_and_position() {
    let base = r#"{"event_id":"t","ts":"2026-11-02T09:10:05+08:00","app_id":"river-chief","account_id":"a","kind":"track_point","lat":22.8,"lon":108.3"#;
    let (code, field, _) = reject(&format!("{base}}}"));
    assert_eq!((code, field), (RejectCode::MissingField, Some("attrs")));
    let (code, field, _) = reject(&format!(r#"{base},"attrs":{{"route_id":"r"}}}}"#));
    assert_eq!(
        (code, field),
        (RejectCode::MissingField, Some("attrs.patrol_id"))
    );
    let (code, field, _) = reject(&format!(r#"{base},"attrs":{{"patrol_id":""}}}}"#));
    assert_eq!(
        (code, field),
        (RejectCode::InvalidValue, Some("attrs.patrol_id"))
    );
    let no_pos = r#"{"event_id":"t","ts":"2026-11-02T09:10:05+08:00","app_id":"r","account_id":"a","kind":"track_point","attrs":{"patrol_id":"p"}}"#;
    let (code, field, _) = reject(no_pos);
    assert_eq!((code, field), (RejectCode::MissingField, Some("lat")));
    let start = r#"{"event_id":"t","ts":"2026-11-02T09:10:05+08:00","app_id":"r","account_id":"a","kind":"patrol_end","attrs":{}}"#;
    assert_eq!(reject(start).1, Some("attrs.patrol_id"));
    assert!(decode(
        format!(r#"{base},"attrs":{{"patrol_id":"p"}}}}"#).as_bytes(),
        &opts()
    )
    .is_ok());
}

#[test]
fn ten_megabyte_line_is_too_large() {
    let pad = "x".repeat(10 * 1024 * 1024);
    let line = with(&format!(r#""device_model":"{pad}""#));
    let (code, field, detail) = reject(&line);
    assert_eq!(code, RejectCode::TooLarge);
    assert_eq!(field, None);
    assert!(detail.contains("max_event_bytes"), "{detail}");
}

#[test]
fn duplicate_field_is_refused() {
    let line = r#"{"event_id":"e1","event_id":"e2","ts":"2026-11-02T08:01:12+08:00","app_id":"a","account_id":"u","kind":"check_in"}"#;
    let (code, field, _) = reject(line);
    assert_eq!(
        (code, field),
        (RejectCode::DuplicateField, Some("event_id"))
    );
}

#[test]
fn invalid_utf8() {
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes[20] = 0xff;
    assert_eq!(
        decode(&bytes, &opts()).unwrap_err().code,
        RejectCode::InvalidUtf8
    );
}

#[test]
fn unknown_fields_are_ignored_and_escapes_decode() {
    let line = with(r#""future_field":{"deep":[1,2,{"x":null}]},"account_id":"acc-\u5de1\n""#);
    let e = decode(line.as_bytes(), &opts()).unwrap();
    assert_eq!(e.account_id, "acc-巡\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, &opts());
    }

    #[test]
    fn mutated_good_events_never_panic(cut in 0usize..GOOD.len(), byte in any::<u8>()) {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes[cut] = byte;
        let _ = decode(&bytes, &opts());
        let _ = decode(&bytes[..cut], &opts());
    }

    #[test]
    fn valid_events_round_trip_their_values(
        id in "[a-zA-Z0-9_-]{1,40}",
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        secs in 0i64..4_000_000_000,
        acc in 0.0f64..1000.0,
    ) {
        let ts = chrono::DateTime::from_timestamp(secs, 0).unwrap().to_rfc3339();
        let line = serde_json::json!({
            "event_id": id, "ts": ts, "app_id": "a", "account_id": "u", "kind": "track_point",
            "lat": lat, "lon": lon, "accuracy_m": acc, "attrs": {"patrol_id": "p"}
        }).to_string();
        let e = decode(line.as_bytes(), &opts()).unwrap();
        prop_assert_eq!(e.event_id.as_ref(), id.as_str());
        prop_assert_eq!(e.lat, Some(lat));
        prop_assert_eq!(e.lon, Some(lon));
        prop_assert_eq!(e.ts_micros, secs * 1_000_000);
        let mut b = EventBatchBuilder::new(DayZone::default());
        b.append(&e, line.len());
        prop_assert_eq!(b.finish().unwrap().num_rows(), 1);
    }
}
