//! JSON → validated, borrowed [`RawEvent`].
//!
//! The message is parsed once with serde_json into a struct of borrowed
//! string slices (no allocation unless a string holds escapes), then checked
//! field by field against the contract. Nothing is appended anywhere until
//! the whole event is known to be good, so a bad event never leaves a
//! half-written row behind.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::net::IpAddr;

use chrono::DateTime;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::kind::{EventKind, Integrity};
use crate::reject::{Reject, RejectCode};
use crate::DEFAULT_MAX_EVENT_BYTES;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Messages longer than this are rejected as `too_large` before parsing.
    pub max_event_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

/// The `attrs` that detectors need, typed. Unknown attrs stay in
/// [`RawEvent::attrs`] only.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Attrs<'a> {
    pub patrol_id: Option<Cow<'a, str>>,
    pub route_id: Option<Cow<'a, str>>,
    pub task_id: Option<Cow<'a, str>>,
    pub point_id: Option<Cow<'a, str>>,
    pub referrer: Option<Cow<'a, str>>,
    pub claimed_region: Option<Cow<'a, str>>,
    pub registry: Option<Cow<'a, str>>,
    pub record_key: Option<Cow<'a, str>>,
    pub category: Option<Cow<'a, str>>,
    pub changed_fields: Option<i64>,
    pub duration_s: Option<f64>,
}

/// One accepted event, borrowing from the message bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent<'a> {
    pub event_id: Cow<'a, str>,
    /// Event time, microseconds since the Unix epoch (UTC).
    pub ts_micros: i64,
    pub app_id: Cow<'a, str>,
    pub account_id: Cow<'a, str>,
    pub kind: EventKind,
    pub region: Option<Cow<'a, str>>,
    pub device_id: Option<Cow<'a, str>>,
    pub device_model: Option<Cow<'a, str>>,
    pub os_version: Option<Cow<'a, str>>,
    pub app_version: Option<Cow<'a, str>>,
    pub ip: Option<Cow<'a, str>>,
    pub network_id: Option<Cow<'a, str>>,
    pub integrity: Option<Integrity>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub mock_location: Option<bool>,
    pub module: Option<Cow<'a, str>>,
    pub session_id: Option<Cow<'a, str>>,
    /// The `attrs` object as sent (JSON text).
    pub attrs: Option<&'a str>,
    pub typed_attrs: Attrs<'a>,
}

/// Decodes and validates one message.
pub fn decode<'a>(bytes: &'a [u8], opts: &DecodeOptions) -> Result<RawEvent<'a>, Reject> {
    if bytes.len() > opts.max_event_bytes {
        return Err(Reject::new(
            RejectCode::TooLarge,
            None,
            format!(
                "message is {} bytes, over the limit of {} bytes (ingest.max_event_bytes)",
                bytes.len(),
                opts.max_event_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Reject::new(
            RejectCode::InvalidUtf8,
            None,
            format!("message is not UTF-8: {e}"),
        )
    })?;
    let fields = parse_object(text, TOP_FIELDS, Top::default())?;
    fields.validate()
}

// ---------------------------------------------------------------- parsing

/// A string that borrows from the input when it holds no escapes.
struct BStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for BStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An integer (JSON number without fraction, or a float with an integral
/// value such as `3.0`).
struct Int(i64);

impl<'de> de::Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Int(v as i64))
                } else {
                    Err(E::invalid_type(de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// What went wrong while walking an object, beyond what serde reports.
#[derive(Default)]
struct WalkState {
    field: Cell<Option<&'static str>>,
    duplicate: Cell<Option<&'static str>>,
}

/// A set of fields that a [`FieldSink`] knows how to read.
type FieldTable = &'static [&'static str];

trait FieldSink<'de>: Sized {
    /// Reads the value of known field number `idx` from `map`.
    fn read<A: MapAccess<'de>>(&mut self, idx: usize, map: &mut A) -> Result<bool, A::Error>;
}

struct ObjectVisitor<'s, T> {
    table: FieldTable,
    sink: T,
    state: &'s WalkState,
}

impl<'de, T: FieldSink<'de>> Visitor<'de> for ObjectVisitor<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<T, A::Error> {
        while let Some(key) = map.next_key::<BStr<'de>>()? {
            match self.table.iter().position(|k| *k == key.0) {
                Some(idx) => {
                    let name = self.table[idx];
                    self.state.field.set(Some(name));
                    let fresh = self.sink.read(idx, &mut map)?;
                    if !fresh {
                        self.state.duplicate.set(Some(name));
                        return Err(de::Error::custom("duplicate field"));
                    }
                    self.state.field.set(None);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(self.sink)
    }
}

impl<'de, T: FieldSink<'de>> DeserializeSeed<'de> for ObjectVisitor<'_, T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

/// Parses `text` as one JSON object whose known fields are `table`, turning
/// serde errors into contract rejections that name the field at fault.
fn parse_object<'de, T: FieldSink<'de> + FieldPaths>(
    text: &'de str,
    table: FieldTable,
    sink: T,
) -> Result<T, Reject> {
    let state = WalkState::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let visitor = ObjectVisitor {
        table,
        sink,
        state: &state,
    };
    let result = visitor
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    result.map_err(|e| {
        if let Some(name) = state.duplicate.get() {
            let path = T::path(name);
            return Reject::new(
                RejectCode::DuplicateField,
                Some(path),
                format!("field `{path}` appears more than once"),
            );
        }
        use serde_json::error::Category;
        match (e.classify(), state.field.get()) {
            (Category::Data, Some(name)) => {
                let path = T::path(name);
                Reject::new(
                    RejectCode::WrongType,
                    Some(path),
                    format!("field `{path}` has the wrong type: {}", strip_position(&e)),
                )
            }
            (Category::Data, None) => T::not_an_object(&e),
            _ => Reject::new(
                RejectCode::InvalidJson,
                state.field.get().map(T::path),
                format!("not valid JSON: {e}"),
            ),
        }
    })
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Maps field names of a table to their full dotted path.
trait FieldPaths {
    fn path(name: &'static str) -> &'static str;
    fn not_an_object(e: &serde_json::Error) -> Reject;
}

macro_rules! put {
    ($slot:expr, $map:expr) => {{
        let v = $map.next_value()?;
        let fresh = $slot.is_none();
        $slot = Some(v);
        Ok(fresh)
    }};
}

const TOP_FIELDS: FieldTable = &[
    "event_id",
    "ts",
    "app_id",
    "account_id",
    "kind",
    "region",
    "device_id",
    "device_model",
    "os_version",
    "app_version",
    "ip",
    "network_id",
    "integrity",
    "module",
    "session_id",
    "lat",
    "lon",
    "accuracy_m",
    "speed_mps",
    "mock_location",
    "attrs",
];

// Indexes into `Top::strs`, in TOP_FIELDS order.
const S_EVENT_ID: usize = 0;
const S_TS: usize = 1;
const S_APP_ID: usize = 2;
const S_ACCOUNT_ID: usize = 3;
const S_KIND: usize = 4;
const S_REGION: usize = 5;
const S_DEVICE_ID: usize = 6;
const S_DEVICE_MODEL: usize = 7;
const S_OS_VERSION: usize = 8;
const S_APP_VERSION: usize = 9;
const S_IP: usize = 10;
const S_NETWORK_ID: usize = 11;
const S_INTEGRITY: usize = 12;
const S_MODULE: usize = 13;
const S_SESSION_ID: usize = 14;
const N_STRS: usize = 15;

#[derive(Default)]
struct Top<'de> {
    strs: [Option<BStr<'de>>; N_STRS],
    nums: [Option<f64>; 4],
    mock_location: Option<bool>,
    attrs: Option<&'de RawValue>,
}

impl<'de> FieldSink<'de> for Top<'de> {
    fn read<A: MapAccess<'de>>(&mut self, idx: usize, map: &mut A) -> Result<bool, A::Error> {
        match idx {
            0..N_STRS => put!(self.strs[idx], map),
            15..=18 => put!(self.nums[idx - N_STRS], map),
            19 => put!(self.mock_location, map),
            _ => put!(self.attrs, map),
        }
    }
}

impl FieldPaths for Top<'_> {
    fn path(name: &'static str) -> &'static str {
        name
    }
    fn not_an_object(e: &serde_json::Error) -> Reject {
        Reject::new(
            RejectCode::NotAnObject,
            None,
            format!("an event must be a JSON object: {}", strip_position(e)),
        )
    }
}

/// Contract string limits (characters), from `events.schema.json`.
fn check_len(field: &'static str, v: &str, min: usize, max: usize) -> Result<(), Reject> {
    let n = v.chars().count();
    if n < min {
        return Err(Reject::invalid(field, "must not be empty"));
    }
    if n > max {
        return Err(Reject::invalid(
            field,
            format!("is {n} characters long, over the limit of {max}"),
        ));
    }
    Ok(())
}

fn take_str<'de>(
    slot: &mut Option<BStr<'de>>,
    field: &'static str,
    max: usize,
) -> Result<Option<Cow<'de, str>>, Reject> {
    match slot.take() {
        None => Ok(None),
        Some(BStr(v)) => {
            check_len(field, &v, 0, max)?;
            Ok(Some(v))
        }
    }
}

fn required<'de>(
    slot: &mut Option<BStr<'de>>,
    field: &'static str,
    max: usize,
) -> Result<Cow<'de, str>, Reject> {
    let v = slot.take().ok_or_else(|| Reject::missing(field))?.0;
    check_len(field, &v, 1, max)?;
    Ok(v)
}

fn non_negative(field: &'static str, v: Option<f64>) -> Result<Option<f64>, Reject> {
    match v {
        Some(x) if x < 0.0 => Err(Reject::invalid(field, format!("must be >= 0, got {x}"))),
        _ => Ok(v),
    }
}

/// Timestamps outside these years are impossible for a phone event and
/// would overflow microsecond arithmetic downstream.
const MIN_YEAR_MICROS: i64 = 0; // 1970-01-01
const MAX_YEAR_MICROS: i64 = 7_258_118_400_000_000; // 2200-01-01

impl<'de> Top<'de> {
    fn validate(mut self) -> Result<RawEvent<'de>, Reject> {
        let s = &mut self.strs;
        let event_id = required(&mut s[S_EVENT_ID], "event_id", 128)?;
        let ts_text = required(&mut s[S_TS], "ts", 64)?;
        let app_id = required(&mut s[S_APP_ID], "app_id", 128)?;
        let account_id = required(&mut s[S_ACCOUNT_ID], "account_id", 128)?;
        let kind_text = required(&mut s[S_KIND], "kind", 64)?;

        let kind = EventKind::parse(&kind_text).ok_or_else(|| {
            Reject::invalid(
                "kind",
                format!("is `{kind_text}`, not one of the contract's kinds"),
            )
        })?;
        let ts = DateTime::parse_from_rfc3339(&ts_text).map_err(|e| {
            Reject::invalid(
                "ts",
                format!("is `{ts_text}`, not an RFC 3339 time with offset ({e})"),
            )
        })?;
        let ts_micros = ts.timestamp_micros();
        if !(MIN_YEAR_MICROS..MAX_YEAR_MICROS).contains(&ts_micros) {
            return Err(Reject::invalid(
                "ts",
                format!("is `{ts_text}`, outside 1970..2200"),
            ));
        }

        let region = take_str(&mut s[S_REGION], "region", 6)?;
        if let Some(r) = &region {
            if r.len() != 6 || !r.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Reject::invalid(
                    "region",
                    format!("is `{r}`, not a 6-digit division code"),
                ));
            }
        }
        let device_id = take_str(&mut s[S_DEVICE_ID], "device_id", 128)?;
        let device_model = take_str(&mut s[S_DEVICE_MODEL], "device_model", 128)?;
        let os_version = take_str(&mut s[S_OS_VERSION], "os_version", 64)?;
        let app_version = take_str(&mut s[S_APP_VERSION], "app_version", 64)?;
        let ip = take_str(&mut s[S_IP], "ip", 64)?;
        if let Some(ip) = &ip {
            if ip.parse::<IpAddr>().is_err() {
                return Err(Reject::invalid(
                    "ip",
                    format!("is `{ip}`, not an IPv4 or IPv6 address"),
                ));
            }
        }
        let network_id = take_str(&mut s[S_NETWORK_ID], "network_id", 128)?;
        let integrity = match s[S_INTEGRITY].take() {
            None => None,
            Some(BStr(v)) => Some(Integrity::parse(&v).ok_or_else(|| {
                Reject::invalid(
                    "integrity",
                    format!("is `{v}`, not one of strong, device, basic, virtual, none"),
                )
            })?),
        };
        let module = take_str(&mut s[S_MODULE], "module", 64)?;
        let session_id = take_str(&mut s[S_SESSION_ID], "session_id", 128)?;

        let [lat, lon, accuracy_m, speed_mps] = self.nums;
        match (lat, lon) {
            (Some(_), None) => {
                return Err(
                    Reject::missing("lon").with_detail("`lat` is given, so `lon` is required")
                )
            }
            (None, Some(_)) => {
                return Err(
                    Reject::missing("lat").with_detail("`lon` is given, so `lat` is required")
                )
            }
            _ => {}
        }
        if let Some(v) = lat {
            if !(-90.0..=90.0).contains(&v) {
                return Err(Reject::invalid("lat", format!("is {v}, outside -90..90")));
            }
        }
        if let Some(v) = lon {
            if !(-180.0..=180.0).contains(&v) {
                return Err(Reject::invalid("lon", format!("is {v}, outside -180..180")));
            }
        }
        let accuracy_m = non_negative("accuracy_m", accuracy_m)?;
        let speed_mps = non_negative("speed_mps", speed_mps)?;

        let (attrs, typed_attrs) = match self.attrs {
            None => (None, Attrs::default()),
            Some(raw) => {
                let text = raw.get();
                let typed = parse_object(text, ATTR_FIELDS, AttrSlots::default())?.validate()?;
                (Some(text), typed)
            }
        };
        if kind.needs_patrol_id() {
            if attrs.is_none() {
                return Err(Reject::missing("attrs").with_detail(format!(
                    "`{}` events need `attrs` with `patrol_id`",
                    kind.as_str()
                )));
            }
            if typed_attrs.patrol_id.is_none() {
                return Err(Reject::missing("attrs.patrol_id")
                    .with_detail(format!("`{}` events need `attrs.patrol_id`", kind.as_str())));
            }
        }
        if kind == EventKind::TrackPoint && lat.is_none() {
            return Err(
                Reject::missing("lat").with_detail("`track_point` events need `lat` and `lon`")
            );
        }

        Ok(RawEvent {
            event_id,
            ts_micros,
            app_id,
            account_id,
            kind,
            region,
            device_id,
            device_model,
            os_version,
            app_version,
            ip,
            network_id,
            integrity,
            lat,
            lon,
            accuracy_m,
            speed_mps,
            mock_location: self.mock_location,
            module,
            session_id,
            attrs,
            typed_attrs,
        })
    }
}

const ATTR_FIELDS: FieldTable = &[
    "patrol_id",
    "route_id",
    "task_id",
    "point_id",
    "referrer",
    "claimed_region",
    "registry",
    "record_key",
    "category",
    "changed_fields",
    "duration_s",
];
const N_ATTR_STRS: usize = 9;

#[derive(Default)]
struct AttrSlots<'de> {
    strs: [Option<BStr<'de>>; N_ATTR_STRS],
    changed_fields: Option<Int>,
    duration_s: Option<f64>,
}

impl<'de> FieldSink<'de> for AttrSlots<'de> {
    fn read<A: MapAccess<'de>>(&mut self, idx: usize, map: &mut A) -> Result<bool, A::Error> {
        match idx {
            0..N_ATTR_STRS => put!(self.strs[idx], map),
            N_ATTR_STRS => put!(self.changed_fields, map),
            _ => put!(self.duration_s, map),
        }
    }
}

impl FieldPaths for AttrSlots<'_> {
    fn path(name: &'static str) -> &'static str {
        match name {
            "patrol_id" => "attrs.patrol_id",
            "route_id" => "attrs.route_id",
            "task_id" => "attrs.task_id",
            "point_id" => "attrs.point_id",
            "referrer" => "attrs.referrer",
            "claimed_region" => "attrs.claimed_region",
            "registry" => "attrs.registry",
            "record_key" => "attrs.record_key",
            "category" => "attrs.category",
            "changed_fields" => "attrs.changed_fields",
            "duration_s" => "attrs.duration_s",
            _ => "attrs",
        }
    }
    fn not_an_object(e: &serde_json::Error) -> Reject {
        Reject::new(
            RejectCode::WrongType,
            Some("attrs"),
            format!("field `attrs` must be a JSON object: {}", strip_position(e)),
        )
    }
}

impl<'de> AttrSlots<'de> {
    fn validate(mut self) -> Result<Attrs<'de>, Reject> {
        let mut out: [Option<Cow<'de, str>>; N_ATTR_STRS] = Default::default();
        for (i, slot) in self.strs.iter_mut().enumerate() {
            let path = Self::path(ATTR_FIELDS[i]);
            out[i] = take_str(slot, path, 128)?;
            if i == 0 {
                if let Some(p) = &out[0] {
                    check_len(path, p, 1, 128)?;
                }
            }
        }
        if let Some(Int(n)) = self.changed_fields {
            if n < 0 {
                return Err(Reject::invalid(
                    "attrs.changed_fields",
                    format!("must be >= 0, got {n}"),
                ));
            }
        }
        let duration_s = non_negative("attrs.duration_s", self.duration_s)?;
        let [patrol_id, route_id, task_id, point_id, referrer, claimed_region, registry, record_key, category] =
            out;
        Ok(Attrs {
            patrol_id,
            route_id,
            task_id,
            point_id,
            referrer,
            claimed_region,
            registry,
            record_key,
            category,
            changed_fields: self.changed_fields.map(|i| i.0),
            duration_s,
        })
    }
}
