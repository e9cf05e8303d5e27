//! How each kind of setting is read from its TOML value: serde
//! `deserialize_with` functions that take the value whatever layer it came
//! from (a file's typed TOML, or the text of an environment variable or a
//! `--set` flag, read as TOML where it parses and as a string otherwise)
//! and say in plain words what is wrong with it.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;

use groundtruth_event::DayZone;
use serde::{Deserialize, Deserializer};
use toml::Value;

fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Value::deserialize(d)
}

fn fail<E: serde::de::Error>(what: impl Display) -> E {
    E::custom(what)
}

/// An integer in `MIN..=MAX`, as any integer type.
pub(crate) fn within<'de, D, T, const MIN: i64, const MAX: i64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    match value(d)? {
        Value::Integer(n) if (MIN..=MAX).contains(&n) => {
            T::try_from(n).map_err(|_| fail(format!("{n} does not fit")))
        }
        Value::Integer(n) => Err(fail(format!("{n} is outside {MIN}..={MAX}"))),
        v => Err(fail(format!(
            "expected an integer, got {} `{v}`",
            v.type_str()
        ))),
    }
}

pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match value(d)? {
        Value::Boolean(b) => Ok(b),
        v => Err(fail(format!(
            "expected true or false, got {} `{v}`",
            v.type_str()
        ))),
    }
}

fn string_of<E: serde::de::Error>(v: Value) -> Result<String, E> {
    match v {
        Value::String(s) => Ok(s),
        v => Err(fail(format!("expected a string, got {}", v.type_str()))),
    }
}

/// A string that is not empty.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = string_of(value(d)?)?;
    if s.trim().is_empty() {
        return Err(fail("must not be empty"));
    }
    Ok(s)
}

/// A path that is not empty.
pub(crate) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    text(d).map(PathBuf::from)
}

/// A string, or `None` for `""` (off).
pub(crate) fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = string_of(value(d)?)?;
    let s = s.trim();
    Ok((!s.is_empty()).then(|| s.to_string()))
}

/// A path, or `None` for `""` (none).
pub(crate) fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    optional_text(d).map(|s| s.map(PathBuf::from))
}

/// An address to listen on, or `None` for `""` (off).
pub(crate) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let Some(s) = optional_text(d)? else {
        return Ok(None);
    };
    s.parse::<SocketAddr>().map(Some).map_err(|_| {
        fail(format!(
            "`{s}` is not an address like 127.0.0.1:8080 (or \"\" for off)"
        ))
    })
}

/// An IANA time zone.
pub(crate) fn zone<'de, D: Deserializer<'de>>(d: D) -> Result<DayZone, D::Error> {
    let s = text(d)?;
    DayZone::parse(&s).ok_or_else(|| {
        fail(format!(
            "`{s}` is not an IANA time zone such as Asia/Shanghai"
        ))
    })
}

/// A lake member name, or `None` for `""` (the lake's only writer).
pub(crate) fn member<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(v) = optional_text(d)? else {
        return Ok(None);
    };
    let ok = v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(fail(format!(
            "`{v}` is not a member name; use 1 to 64 letters, digits, `-` or `_`, or \"\" for a lake with one writer"
        )));
    }
    Ok(Some(v))
}

/// Strings, as a TOML array or (from the environment or a flag) one
/// comma-separated string.
fn names<E: serde::de::Error>(v: Value, what: &str) -> Result<Vec<String>, E> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                other => Err(fail(format!("every item must be {what}, got `{other}`"))),
            })
            .collect(),
        Value::String(s) => Ok(s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()),
        v => Err(fail(format!(
            "expected a list of {what}s, got {}",
            v.type_str()
        ))),
    }
}

/// Kafka topics: at least one.
pub(crate) fn topics<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let out = names(value(d)?, "a non-empty string")?;
    if out.is_empty() {
        return Err(fail("must name at least one topic"));
    }
    Ok(out)
}

/// Detector names (or `all`); may be empty.
pub(crate) fn detectors<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let out = names(value(d)?, "a detector's name")?;
    if let Some(n) = out
        .iter()
        .find(|n| *n != "all" && !groundtruth_finding::DETECTORS.contains(&n.as_str()))
    {
        return Err(fail(format!(
            "`{n}` is not a detector; use `all` or some of {}",
            groundtruth_finding::DETECTORS.join(", ")
        )));
    }
    Ok(out)
}

/// librdkafka properties: names to strings (numbers and booleans are
/// written as text).
pub(crate) fn properties<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let Value::Table(t) = value(d)? else {
        return Err(fail("expected a table of librdkafka properties"));
    };
    t.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            v @ (Value::Integer(_) | Value::Boolean(_) | Value::Float(_)) => Ok((k, v.to_string())),
            other => Err(fail(format!(
                "property `{k}`: expected a string, got {}",
                other.type_str()
            ))),
        })
        .collect()
}
