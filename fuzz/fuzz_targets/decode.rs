//! The event decoder on arbitrary bytes: it never panics, never hangs, and
//! what it accepts is a valid event (ids and kind set, timestamps in range,
//! coordinates on the globe); what it refuses names a reason code.
#![no_main]

use groundtruth_event::{decode, DecodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits too, so the size and depth checks are reached often.
    for opts in [
        DecodeOptions::default(),
        DecodeOptions {
            max_event_bytes: 256,
            ..DecodeOptions::default()
        },
    ] {
        match decode(data, &opts) {
            Ok(e) => {
                assert!(data.len() <= opts.max_event_bytes);
                assert!(!e.event_id.is_empty());
                assert!(!e.app_id.is_empty());
                assert!(!e.account_id.is_empty());
                if let (Some(lat), Some(lon)) = (e.lat, e.lon) {
                    assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
                }
            }
            Err(reject) => {
                assert!(!reject.code.as_str().is_empty());
                assert!(!reject.to_string().is_empty());
            }
        }
    }
});
