use super::*;

#[test]
fn defaults_are_valid() {
    let c = Config::defaults();
    assert_eq!(c.kafka.topics, vec!["app-events"]);
    assert_eq!(c.lake.day_zone, DayZone::default());
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9898".parse().unwrap()));
}

#[test]
fn file_env_and_flags_layer_in_order() {
    let dir = std::env::temp_dir().join(format!("gt-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gt.toml");
    std::fs::write(
        &file,
        "[lake]\ndir = \"/from/file\"\n[kafka]\nbrokers = \"file:9092\"\ngroup_id = \"g-file\"\n",
    )
    .unwrap();
    let src = Sources {
        file: Some(&file),
        env: vec![
            ("GROUNDTRUTH_KAFKA__BROKERS".into(), "env:9092".into()),
            ("GROUNDTRUTH_KAFKA__TOPICS".into(), "a, b".into()),
            ("PATH".into(), "/bin".into()),
        ],
        overrides: vec![
            "kafka.brokers=flag:9092".into(),
            "kafka.properties.fetch.wait.max.ms=50".into(),
        ],
    };
    let c = Config::load(&src).unwrap();
    assert_eq!(c.lake.dir, PathBuf::from("/from/file"));
    assert_eq!(c.kafka.group_id, "g-file");
    assert_eq!(c.kafka.brokers, "flag:9092");
    assert_eq!(c.kafka.topics, vec!["a", "b"]);
    assert_eq!(
        c.kafka
            .properties
            .get("fetch.wait.max.ms")
            .map(String::as_str),
        Some("50")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_error_is_listed_at_once() {
    let src = Sources {
        file: None,
        env: vec![("GROUNDTRUTH_LAKE__TARGET_FILE_ROWS".into(), "lots".into())],
        overrides: vec![
            "lake.day_zone=Mars/Olympus".into(),
            "kafka.session_timeout_ms=5".into(),
            "kafka.bogus=1".into(),
            "log.format=xml".into(),
            "metrics.listen=nowhere".into(),
            "no-equals-sign".into(),
            "lake.member=\"../gt 1\"".into(),
        ],
    };
    let e = Config::load(&src).unwrap_err();
    let text = e.to_string();
    assert_eq!(e.0.len(), 8, "{text}");
    for needle in [
        "lake.target_file_rows",
        "GROUNDTRUTH_LAKE__TARGET_FILE_ROWS",
        "Mars/Olympus",
        "kafka.session_timeout_ms",
        "kafka.bogus",
        "log.format",
        "metrics.listen",
        "no-equals-sign",
        "`../gt 1` is not a member name",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
}

#[test]
fn the_wires_tls_needs_both_files() {
    assert_eq!(Config::defaults().pgwire.tls, None);
    let load = |overrides: &[&str]| {
        Config::load(&Sources {
            file: None,
            env: vec![],
            overrides: overrides.iter().map(|o| o.to_string()).collect(),
        })
    };
    let text = load(&["pgwire.tls_cert=\"/no/such/cert.pem\""])
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("pgwire.tls_cert") && text.contains("not a readable file"),
        "{text}"
    );
    assert!(
        text.contains("pgwire.tls_key") && text.contains("is needed"),
        "{text}"
    );
    let dir = std::env::temp_dir().join(format!("gt-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let c = load(&[
        &format!("pgwire.tls_cert=\"{}\"", cert.display()),
        &format!("pgwire.tls_key=\"{}\"", key.display()),
    ])
    .unwrap();
    assert_eq!(c.pgwire.tls, Some(TlsFiles { cert, key }));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn windows_are_read_per_detector_and_checked() {
    let c = Config::defaults();
    let s = c.schedule();
    assert_eq!(s.utc_offset_s, 8 * 3600);
    assert_eq!(c.windows.len(), 6);
    assert_eq!(c.windows["registration_farm"].delay_s, 90_000);
    let src = Sources {
        file: None,
        env: Vec::new(),
        overrides: vec![
            "windows.phone_farm.size_s=3600".into(),
            "windows.bulk_check_in.size_s=7000".into(),
            "windows.record_churn.lookback_s=-5".into(),
            "windows.report_inflation.sizes=1".into(),
            "windows.phone_farms.size_s=60".into(),
        ],
    };
    let e = Config::load(&src).unwrap_err().0;
    let all = e.join("\n");
    assert_eq!(e.len(), 4, "{all}");
    for needle in [
        "windows.bulk_check_in",
        "must divide a day",
        "windows.record_churn.lookback_s",
        "windows.report_inflation.sizes",
        "windows.phone_farms",
    ] {
        assert!(all.contains(needle), "{needle} missing in {all}");
    }
    let ok = Config::load(&Sources {
        file: None,
        env: Vec::new(),
        overrides: vec!["windows.phone_farm.size_s=3600".into()],
    })
    .unwrap();
    assert_eq!(ok.windows["phone_farm"].size_s, 3600);
    assert_eq!(ok.windows["phone_farm"].lookback_s, 518_400);
    // phone_farm (hourly here); non_human_track (two weeks of context);
    // registration_farm (a day's delay); the other day detectors.
    assert_eq!(ok.schedule().groups.len(), 4);
}

#[test]
fn the_calibration_is_built_in_or_a_checked_file() {
    let c = Config::defaults();
    assert_eq!(c.detect.calibration_file, None);
    assert_eq!(c.detect.calibration, Calibration::builtin());
    let e = Config::load(&Sources {
        overrides: vec!["detect.calibration=/nonexistent/cal.json".into()],
        ..Sources::default()
    })
    .unwrap_err()
    .0
    .join("\n");
    assert!(
        e.contains("detect.calibration") && e.contains("/nonexistent/cal.json"),
        "{e}"
    );
}

#[test]
fn the_live_pipeline_file_loads_and_matches_the_built_in_windows() {
    // Run-time CARGO_MANIFEST_DIR: the compile-time one may be another
    // checkout sharing the build cache.
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let file = Path::new(&dir).join("../../pipelines/live.toml");
    let c = Config::load(&Sources {
        file: Some(&file),
        env: Vec::new(),
        overrides: Vec::new(),
    })
    .unwrap();
    assert_eq!(c.windows, Config::defaults().windows);
    assert_eq!(c.live.findings_topic.as_deref(), Some("findings"));
    assert_eq!(c.kafka.group_id, "groundtruth-live");
}

#[test]
fn store_and_api_settings() {
    let c = Config::defaults();
    assert_eq!(c.store.url, None);
    assert!(c.store.four_eyes.is_empty());
    assert_eq!(
        c.store_url(Path::new("/var/gt")),
        "/var/gt/review.db".to_string()
    );
    assert_eq!(c.api.listen, Some("127.0.0.1:8080".parse().unwrap()));
    let c = Config::load(&Sources {
        overrides: vec![
            "store.url=\"postgres://gt@db:5432/review\"".into(),
            "api.listen=\"\"".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.store_url(Path::new("x")), "postgres://gt@db:5432/review");
    assert_eq!(c.api.listen, None);
    let e = Config::load(&Sources {
        overrides: vec![
            "api.listen=everywhere".into(),
            "api.max_body_bytes=1".into(),
            "store.max_connections=0".into(),
            "store.four_eyes=\"phone_farm,dogs\"".into(),
        ],
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.0.len(), 4, "{e}");
    assert!(e.to_string().contains("`dogs` is not a detector"), "{e}");
    let c = Config::load(&Sources {
        overrides: vec!["store.four_eyes=[\"phone_farm\", \"report_inflation\"]".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.store.four_eyes, ["phone_farm", "report_inflation"]);
}

#[test]
fn bad_file_is_reported() {
    let dir = std::env::temp_dir().join(format!("gt-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[lake\n").unwrap();
    let e = Config::load(&Sources {
        file: Some(&file),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("not valid TOML"), "{e}");
    let missing = dir.join("missing.toml");
    let e = Config::load(&Sources {
        file: Some(&missing),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("cannot read config file"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn off_is_none_and_the_speed_up_switches_are_settings() {
    let c = Config::defaults();
    assert!(c.detect.close_cache && c.query.join_statistics);
    assert_eq!(c.live.findings_topic.as_deref(), Some("findings"));
    assert_eq!(c.lake.member, None);
    let c = Config::load(&Sources {
        env: vec![
            ("GROUNDTRUTH_DETECT__CLOSE_CACHE".into(), "false".into()),
            ("GROUNDTRUTH_LIVE__FINDINGS_TOPIC".into(), "".into()),
            // Not settings: the config file's path and the tests' binary.
            ("GROUNDTRUTH_CONFIG".into(), "/etc/gt.toml".into()),
            ("GROUNDTRUTH_BIN".into(), "/usr/bin/groundtruth".into()),
        ],
        overrides: vec![
            "query.join_statistics=false".into(),
            "metrics.listen=\"\"".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    assert!(!c.detect.close_cache && !c.query.join_statistics);
    assert_eq!((c.live.findings_topic, c.metrics.listen), (None, None));
}

#[test]
fn a_variable_that_is_no_setting_and_several_problems_in_one_section_are_all_listed() {
    let e = Config::load(&Sources {
        env: vec![("GROUNDTRUTH_CLOSE_CACHE".into(), "off".into())],
        overrides: vec![
            "query.memory_mb=lots".into(),
            "query.max_rows=0".into(),
            "query.bogus=1".into(),
            "query.join_statistics=off".into(),
            "bogus.key=1".into(),
        ],
        ..Default::default()
    })
    .unwrap_err();
    let text = e.to_string();
    assert_eq!(e.0.len(), 6, "{text}");
    for needle in [
        "`GROUNDTRUTH_CLOSE_CACHE` is not of the form",
        "`query.memory_mb` (--set): expected an integer, got string `\"lots\"`",
        "`query.max_rows` (--set): 0 is outside 1..=100000000",
        "`query.bogus` (--set): unknown setting",
        "`query.join_statistics` (--set): expected true or false",
        "`bogus` (--set): unknown setting",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
}

#[test]
fn the_defaults_name_every_setting() {
    // The typed settings have no defaults of their own: reading the
    // built-in table alone must give every field (a key missing from
    // DEFAULTS fails here, a key in DEFAULTS the structs do not know too).
    let defaults: Table = DEFAULTS.parse().unwrap();
    let c: Config = toml::Value::Table(defaults).try_into().unwrap();
    assert_eq!(c.kafka.topics, ["app-events"]);
}
