//! Reading the merged table into the typed settings with every problem
//! listed, not only the first: serde stops at the first error, so each
//! error is recorded (with where its value came from), the value at fault
//! is put back to its default (or removed, for a key that is not a
//! setting), and the table is read again.

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::layers::Layered;

/// More problems than this in one configuration are not all listed.
const MAX_PROBLEMS: usize = 100;

/// `T` read from `l.table`; `None` when a problem could not be set aside
/// (then `l.errors` says why).
pub(crate) fn extract<T: DeserializeOwned>(l: &mut Layered, defaults: &Table) -> Option<T> {
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..MAX_PROBLEMS {
        let e = match serde_path_to_error::deserialize::<_, T>(Value::Table(l.table.clone())) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { at };
        // (toml's errors end with the key they are in; the path says it.)
        let message = e.inner().to_string();
        let message = message
            .split_once("\nin `")
            .map_or(message.as_str(), |(m, _)| m)
            .trim_end()
            .to_string();
        // Each kind of error is set aside its own way: an unknown key
        // dropped, a table missing a key (made by an override of one of its
        // keys only) dropped, a bad value put back to its default (or
        // dropped when it has none).
        // (path reported, problem, path set aside, whether to its default)
        let (path, problem, aside, restore) = if let Some(key) = quoted(&message, "unknown field `")
        {
            let known = message
                .split_once(", expected ")
                .map(|(_, k)| format!("; expected {k}"))
                .unwrap_or_default();
            let path = join(&at, key);
            (path.clone(), format!("unknown setting{known}"), path, false)
        } else if let Some(key) = quoted(&message, "missing field `") {
            (join(&at, key), "missing".to_string(), at, false)
        } else {
            (at.clone(), message, at, true)
        };
        // The same key failing again could not be set aside.
        if seen.contains(&path) {
            return None;
        }
        l.problem(&path, problem);
        let fixed = match default_at(defaults, &aside).filter(|_| restore) {
            Some(v) => {
                l.set(&aside, v.clone());
                true
            }
            None => l.remove(&aside),
        };
        if !fixed {
            return None;
        }
        seen.push(path);
    }
    l.errors.push(format!(
        "more than {MAX_PROBLEMS} problems; the rest are not listed"
    ));
    None
}

/// The name quoted in `message` after `prefix` (serde's unknown and missing
/// field messages).
fn quoted<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

/// `key` under `parent`, unless the path already ends with it (the path of
/// an unknown key is the key's own).
fn join(parent: &str, key: &str) -> String {
    if parent == key || parent.ends_with(&format!(".{key}")) {
        parent.to_string()
    } else if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The built-in default at `path`, if the defaults have one.
fn default_at<'t>(defaults: &'t Table, path: &str) -> Option<&'t Value> {
    let mut t = Some(defaults);
    let mut v = None;
    for p in path.split('.') {
        v = t?.get(p);
        t = v.and_then(Value::as_table);
    }
    v
}
