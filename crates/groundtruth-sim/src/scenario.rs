//! The scenario: every knob of the simulator, read from TOML.
//!
//! Every field has a default; the defaults together are the realistic week of
//! `pipelines/sim-week.toml` ([`Scenario::default_week`]). Unknown keys are an
//! error, and validation reports every problem at once.

use serde::Deserialize;

use crate::SimError;

/// A complete simulation scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Free-form name of the scenario (for logs only). Default `"week"`.
    pub name: String,
    /// Random seed; the same seed and scenario give byte-identical output. Default `20261102`.
    pub seed: u64,
    /// First simulated day, `YYYY-MM-DD`, local time Asia/Shanghai (+08:00). Default `"2026-11-02"` (a Monday).
    pub start_date: String,
    /// Number of simulated days, 1..=366. Default `7`.
    pub days: u32,
    /// Who lives in the simulated world.
    pub population: Population,
    /// How honest people behave.
    pub honest: Honest,
    /// Honest behaviour that looks suspicious on purpose (labelled `honest`).
    pub confounders: Confounders,
    /// Injected fraud.
    pub fraud: Fraud,
}

/// One administrative division with its location and address pool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// 6-digit administrative division code, e.g. `"450102"`.
    pub code: String,
    /// Centre latitude (WGS84 degrees).
    pub lat: f64,
    /// Centre longitude (WGS84 degrees).
    pub lon: f64,
    /// First two octets of the region's IPv4 pool, e.g. `"113.12"`.
    pub ip_prefix: String,
}

/// Population parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Population {
    /// Regions (districts). Default: 6 districts of Nanning (4501xx) and 5 of Guilin (4503xx), Guangxi.
    pub regions: Vec<RegionSpec>,
    /// Number of officials (each with their own phone), including those used by confounders and fraud. Default `1200`.
    pub officials: u32,
    /// Residents already registered in `resident-service` before the first day. Default `500`.
    pub residents: u32,
    /// Units (offices) per region. Default `4`.
    pub units_per_region: u32,
    /// Share of officials who patrol rivers or forests. Default `0.25`.
    pub patrol_share: f64,
    /// Share of patrollers on a river (the rest guard forests). Default `0.6`.
    pub river_share: f64,
    /// Share of officials who edit a registry (population, disputes, ...). Default `0.08`.
    pub registry_share: f64,
    /// Share of officials who file grid reports. Default `0.2`.
    pub grid_share: f64,
    /// Honest new residents registering per day (all regions together). Default `15`.
    pub registrations_per_day: u32,
    /// Chance a resident opens the resident app on a given day. Default `0.25`.
    pub resident_active_prob: f64,
    /// IPv4 prefix of the mobile carrier pool (cellular addresses). Default `"223.104"`.
    pub mobile_ip_prefix: String,
}

/// Honest routine parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Honest {
    /// Chance an official checks in on a weekday. Default `0.93`.
    pub checkin_prob_weekday: f64,
    /// Chance an official checks in on a weekend day (duty). Default `0.08`.
    pub checkin_prob_weekend: f64,
    /// Mean local check-in time, `HH:MM`. Default `"08:30"`.
    pub checkin_time: String,
    /// Standard deviation of the check-in time, minutes. Default `6.0`.
    pub checkin_spread_min: f64,
    /// Study sessions per weekday, `[min, max]`. Default `[1, 3]`.
    pub study_sessions_weekday: [u32; 2],
    /// Study sessions per weekend day, `[min, max]`. Default `[0, 2]`.
    pub study_sessions_weekend: [u32; 2],
    /// Chance a patroller patrols on a weekday. Default `0.6`.
    pub patrol_prob_weekday: f64,
    /// Chance a patroller patrols on a weekend day. Default `0.15`.
    pub patrol_prob_weekend: f64,
    /// Shares of walk / bike / car among honest patrollers (boat is a confounder). Default `[0.65, 0.2, 0.15]`.
    pub mode_shares: [f64; 3],
    /// GPS fix interval range in seconds `[min, max]` (each phone picks one). Default `[5.0, 10.0]`.
    pub fix_interval_s: [f64; 2],
    /// Chance a patrol has one or two GPS gaps of 30-180 s. Default `0.3`.
    pub gps_gap_prob: f64,
    /// Record operations per registry worker per weekday `[min, max]`. Default `[10, 40]`.
    pub record_ops_per_day: [u32; 2],
    /// Reports per grid worker per weekday `[min, max]`. Default `[0, 4]`.
    pub reports_per_day: [u32; 2],
    /// Reports carry a free-text `summary` (a template filled with a place,
    /// a category and a figure; a unit inflating its count repeats one
    /// text). Default `false`.
    pub report_text: bool,
    /// The attendance app records the duty point's registered coordinates
    /// (QR code, beacon) instead of the phone's fix, so every honest
    /// check-in at a post repeats them exactly. Default `false`.
    pub checkin_registered_coords: bool,
}

/// Honest look-alikes of fraud.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Confounders {
    /// Staff of one office doing the 09:00 study session together on the office Wi-Fi (0 = off). Default `30`.
    pub office_wifi_study: u32,
    /// Families sharing one phone between 2-3 accounts. Default `2`.
    pub family_shared_phone: u32,
    /// Community workers registering elderly residents on their own phone. Default `1`.
    pub help_desk_workers: u32,
    /// Residents each help-desk worker registers per weekday `[min, max]`. Default `[2, 5]`.
    pub help_desk_per_day: [u32; 2],
    /// Registry clean-up after a census: one worker, one day of bulk real changes. Default `true`.
    pub census_cleanup: bool,
    /// Day index (0-based) of the census clean-up. Default `2`.
    pub census_day: u32,
    /// Updates during the clean-up. Default `150`.
    pub census_updates: u32,
    /// Deletions of distinct records during the clean-up. Default `30`.
    pub census_deletes: u32,
    /// A grid unit having a genuinely bad week (many distinct reports). Default `true`.
    pub bad_week: bool,
    /// Report multiplier for the bad-week unit. Default `3.0`.
    pub bad_week_factor: f64,
    /// River chiefs who patrol by boat. Default `2`.
    pub boat_patrollers: u32,
    /// Patrollers whose phone has poor GPS (50-100 m accuracy). Default `2`.
    pub poor_gps_patrollers: u32,
    /// Honest officials who survey a small site (a plot, a plantation, a
    /// building site): transects back and forth or visits to points
    /// across it, stopping to inspect; winding, slow and confined, like a
    /// dog, but a person. Default `0`.
    pub site_surveyors: u32,
    /// Honest officials whose patrol includes a train ride (40-83 m/s,
    /// signal lost in tunnels) between two walks. Default `0`.
    pub train_riders: u32,
}

/// All fraud blocks.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Fraud {
    pub phone_farm: PhoneFarm,
    pub bulk_check_in: BulkCheckIn,
    pub registration_farm: RegistrationFarm,
    pub record_churn: RecordChurn,
    pub report_inflation: ReportInflation,
    pub non_human_track: NonHumanTrack,
}

/// One operator sweeping through many phones bound to colleagues' accounts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhoneFarm {
    /// Default `true`.
    pub enabled: bool,
    /// Number of farms. Default `1`.
    pub farms: u32,
    /// Accounts (colleagues) per farm (>= 2). Default `30`.
    pub phones: u32,
    /// Most colleagues' accounts one phone of the farm carries (each phone
    /// carries 1 to this many, switched in turn). Default `1`.
    pub accounts_per_phone: u32,
    /// Local time the morning sweep starts, `HH:MM`. Default `"06:40"`.
    pub sweep_time: String,
    /// Sweeps per day (1 or 2; the second one in the evening). Default `1`.
    pub sweeps_per_day: u32,
    /// Session length on each phone in seconds `[min, max]`. Default `[60, 180]`.
    pub session_s: [u32; 2],
    /// Share of farm accounts that also have genuine activity on their own phone. Default `0.3`.
    pub camouflage_share: f64,
    /// Chance the operator skips a phone in a sweep. Default `0.05`.
    pub skip_share: f64,
    /// Chance the operator is interrupted for 3-10 minutes between two phones. Default `0.03`.
    pub pause_share: f64,
    /// How many of the farms are automated racks: a script runs all their phones at once
    /// (within 90 s) instead of one person working them in turn. Default `0`.
    pub racks: u32,
}

/// One device checking in many accounts at machine-regular times.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkCheckIn {
    /// Default `true`.
    pub enabled: bool,
    /// Number of operators. Default `1`.
    pub operators: u32,
    /// Accounts checked in by each operator besides their own (>= 2). Default `12`.
    pub accounts: u32,
    /// Local time of the first check-in, `HH:MM:SS`. Default `"08:29:00"`.
    pub time: String,
    /// Seconds between consecutive check-ins. Default `7`.
    pub step_s: u32,
    /// Share of accounts whose duty point is kilometres from where the check-in happens. Default `0.3`.
    pub far_share: f64,
}

/// A promoter mass-producing registrations.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationFarm {
    /// Default `true`.
    pub enabled: bool,
    /// Number of farms (promoter codes). Default `1`.
    pub farms: u32,
    /// Registrations per farm burst. Default `120`.
    pub registrations: u32,
    /// Length of the burst in minutes. Default `90`.
    pub window_min: u32,
    /// Devices used for the registrations (each reused many times). Default `6`.
    pub devices: u32,
    /// IP addresses used. Default `3`.
    pub ips: u32,
    /// Day indices (0-based) with a burst. Default `[2]`.
    pub days: Vec<u32>,
    /// Local time the burst starts, `HH:MM`. Default `"14:10"`.
    pub start_time: String,
    /// IPv4 prefix of the (other province's) pool the farm's IPs come from. Default `"112.96"`.
    pub ip_prefix: String,
}

/// A registry worker churning records.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordChurn {
    /// Default `true`.
    pub enabled: bool,
    /// Number of churning workers. Default `1`.
    pub workers: u32,
    /// Delete-then-recreate cycles of the same record key per weekday. Default `25`.
    pub churn_per_day: u32,
    /// Distinct record keys churned by one worker. Default `6`.
    pub churn_keys: u32,
    /// No-op updates (`changed_fields: 0`) per weekday. Default `40`.
    pub noop_updates_per_day: u32,
}

/// A unit inflating reports before an assessment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportInflation {
    /// Default `true`.
    pub enabled: bool,
    /// Number of inflating units. Default `1`.
    pub units: u32,
    /// Workers per inflating unit. Default `5`.
    pub workers: u32,
    /// Assessment date `YYYY-MM-DD`; empty = the 5th simulated day. Default `""`.
    pub assessment_date: String,
    /// Days before the assessment with bursts. Default `2`.
    pub days_before: u32,
    /// Bursts per worker per such day. Default `3`.
    pub bursts_per_day: u32,
    /// Reports per burst `[min, max]`. Default `[8, 15]`.
    pub burst_size: [u32; 2],
    /// Categories a burst's filler is spread over (each report picks one
    /// of the burst's). Default `1`.
    pub categories: u32,
    /// Texts a burst's filler cycles through, each with its figure redrawn
    /// per report (near-identical, not word for word). Default `1` (one
    /// text, repeated as is).
    pub texts: u32,
    /// How far a burst's reports lie from its spot, metres (standard
    /// deviation): `2` files them from one spot (same-spot copies); a few
    /// hundred spreads them over a neighbourhood. Default `2.0`.
    pub spot_spread_m: f64,
    /// Share of filler reports that carry a position. Default `1.0`.
    pub located_share: f64,
}

/// Patrols that are not a person walking.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NonHumanTrack {
    /// Default `true`.
    pub enabled: bool,
    /// Accounts whose phone goes out on a dog. Default `3`.
    pub dog_leg: u32,
    /// Accounts using a mock-location app drawing straight lines. Default `3`.
    pub straight_line: u32,
    /// Accounts whose tracks jump kilometres between fixes. Default `2`.
    pub teleport: u32,
    /// Accounts replaying an earlier honest patrol. Default `3`.
    pub replay: u32,
    /// Chance that such an account's patrol on a day is faked (else honest). Default `0.8`.
    pub fake_day_share: f64,
    /// Share of straight-line patrols whose fixes carry `mock_location: true`. Default `0.3`.
    pub mock_flag_share: f64,
    /// Share of dogs that never run: they sniff, walk and come back at a
    /// walker's pace (only turning, stops and a small range give them
    /// away). Default `0.0`.
    pub slow_dog_share: f64,
    /// Replays varied as a careful faker would: shifted up to 10 m, half
    /// of them resampled at another fix interval (positions interpolated
    /// along the source), half played faster or slower (a clock shift of
    /// -15% to +15%). Default `false` (shifted 1-6 m, some fixes dropped).
    pub replay_variants: bool,
}

fn region(code: &str, lat: f64, lon: f64, ip: &str) -> RegionSpec {
    RegionSpec {
        code: code.into(),
        lat,
        lon,
        ip_prefix: ip.into(),
    }
}

/// The built-in regions: districts of Nanning and Guilin (Guangxi).
pub fn default_regions() -> Vec<RegionSpec> {
    vec![
        region("450102", 22.8167, 108.3211, "113.12"),
        region("450103", 22.8170, 108.3910, "113.13"),
        region("450105", 22.7860, 108.2857, "116.252"),
        region("450107", 22.8330, 108.2640, "171.104"),
        region("450108", 22.7530, 108.4360, "171.105"),
        region("450109", 22.6040, 108.4870, "171.106"),
        region("450302", 25.2800, 110.2940, "116.1"),
        region("450303", 25.2870, 110.2730, "116.2"),
        region("450304", 25.2580, 110.2690, "180.136"),
        region("450305", 25.2490, 110.3140, "180.137"),
        region("450311", 25.2350, 110.3950, "180.138"),
    ]
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "week".into(),
            seed: 20261102,
            start_date: "2026-11-02".into(),
            days: 7,
            population: Population::default(),
            honest: Honest::default(),
            confounders: Confounders::default(),
            fraud: Fraud::default(),
        }
    }
}

impl Default for Population {
    fn default() -> Self {
        Population {
            regions: default_regions(),
            officials: 1200,
            residents: 500,
            units_per_region: 4,
            patrol_share: 0.25,
            river_share: 0.6,
            registry_share: 0.08,
            grid_share: 0.2,
            registrations_per_day: 15,
            resident_active_prob: 0.25,
            mobile_ip_prefix: "223.104".into(),
        }
    }
}

impl Default for Honest {
    fn default() -> Self {
        Honest {
            checkin_prob_weekday: 0.93,
            checkin_prob_weekend: 0.08,
            checkin_time: "08:30".into(),
            checkin_spread_min: 6.0,
            study_sessions_weekday: [1, 3],
            study_sessions_weekend: [0, 2],
            patrol_prob_weekday: 0.6,
            patrol_prob_weekend: 0.15,
            mode_shares: [0.65, 0.2, 0.15],
            fix_interval_s: [5.0, 10.0],
            gps_gap_prob: 0.3,
            record_ops_per_day: [10, 40],
            reports_per_day: [0, 4],
            report_text: false,
            checkin_registered_coords: false,
        }
    }
}

impl Default for Confounders {
    fn default() -> Self {
        Confounders {
            office_wifi_study: 30,
            family_shared_phone: 2,
            help_desk_workers: 1,
            help_desk_per_day: [2, 5],
            census_cleanup: true,
            census_day: 2,
            census_updates: 150,
            census_deletes: 30,
            bad_week: true,
            bad_week_factor: 3.0,
            boat_patrollers: 2,
            poor_gps_patrollers: 2,
            site_surveyors: 0,
            train_riders: 0,
        }
    }
}

impl Default for PhoneFarm {
    fn default() -> Self {
        PhoneFarm {
            enabled: true,
            farms: 1,
            phones: 30,
            accounts_per_phone: 1,
            sweep_time: "06:40".into(),
            sweeps_per_day: 1,
            session_s: [60, 180],
            camouflage_share: 0.3,
            skip_share: 0.05,
            pause_share: 0.03,
            racks: 0,
        }
    }
}

impl Default for BulkCheckIn {
    fn default() -> Self {
        BulkCheckIn {
            enabled: true,
            operators: 1,
            accounts: 12,
            time: "08:29:00".into(),
            step_s: 7,
            far_share: 0.3,
        }
    }
}

impl Default for RegistrationFarm {
    fn default() -> Self {
        RegistrationFarm {
            enabled: true,
            farms: 1,
            registrations: 120,
            window_min: 90,
            devices: 6,
            ips: 3,
            days: vec![2],
            start_time: "14:10".into(),
            ip_prefix: "112.96".into(),
        }
    }
}

impl Default for RecordChurn {
    fn default() -> Self {
        RecordChurn {
            enabled: true,
            workers: 1,
            churn_per_day: 25,
            churn_keys: 6,
            noop_updates_per_day: 40,
        }
    }
}

impl Default for ReportInflation {
    fn default() -> Self {
        ReportInflation {
            enabled: true,
            units: 1,
            workers: 5,
            assessment_date: String::new(),
            days_before: 2,
            bursts_per_day: 3,
            burst_size: [8, 15],
            categories: 1,
            texts: 1,
            spot_spread_m: 2.0,
            located_share: 1.0,
        }
    }
}

impl Default for NonHumanTrack {
    fn default() -> Self {
        NonHumanTrack {
            enabled: true,
            dog_leg: 3,
            straight_line: 3,
            teleport: 2,
            replay: 3,
            fake_day_share: 0.8,
            mock_flag_share: 0.3,
            slow_dog_share: 0.0,
            replay_variants: false,
        }
    }
}

/// Parses `HH:MM` or `HH:MM:SS` into seconds after local midnight.
pub(crate) fn parse_hms(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let mut v = [0u32; 3];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v[i] = p.parse().ok()?;
    }
    if v[0] > 23 || v[1] > 59 || v[2] > 59 {
        return None;
    }
    Some(v[0] * 3600 + v[1] * 60 + v[2])
}

pub(crate) fn parse_date(s: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn parse_ip_prefix(s: &str) -> Option<(u8, u8)> {
    let mut it = s.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((a, b))
}

pub(crate) fn ip_prefix(s: &str) -> (u8, u8) {
    parse_ip_prefix(s).unwrap_or((10, 0))
}

struct Check {
    problems: Vec<String>,
}

impl Check {
    fn prob(&mut self, name: &str, v: f64) {
        if !(0.0..=1.0).contains(&v) || v.is_nan() {
            self.problems
                .push(format!("{name} must be between 0 and 1, got {v}"));
        }
    }
    fn min(&mut self, name: &str, v: u32, min: u32) {
        if v < min {
            self.problems
                .push(format!("{name} must be >= {min}, got {v}"));
        }
    }
    fn max(&mut self, name: &str, v: u32, max: u32) {
        if v > max {
            self.problems
                .push(format!("{name} must be <= {max}, got {v}"));
        }
    }
    fn range(&mut self, name: &str, v: [u32; 2]) {
        if v[0] > v[1] {
            self.problems.push(format!(
                "{name} must be [min, max] with min <= max, got [{}, {}]",
                v[0], v[1]
            ));
        }
    }
    fn time(&mut self, name: &str, v: &str, with_seconds: bool) {
        let ok = parse_hms(v).is_some() && (v.len() == 8) == with_seconds;
        if !ok {
            let want = if with_seconds { "HH:MM:SS" } else { "HH:MM" };
            self.problems
                .push(format!("{name} must be a local time {want}, got {v:?}"));
        }
    }
    fn ip(&mut self, name: &str, v: &str) {
        match parse_ip_prefix(v) {
            Some((a, _)) if a != 0 && a != 10 && a != 127 && a < 224 => {}
            _ => self.problems.push(format!(
                "{name} must be the first two octets of a public IPv4 pool like \"113.12\", got {v:?}"
            )),
        }
    }
}

impl Scenario {
    /// The realistic default week; identical to `pipelines/sim-week.toml`.
    pub fn default_week() -> Scenario {
        Scenario::default()
    }

    /// Parses a scenario from TOML and validates it. All validation problems
    /// are reported together in one [`SimError::InvalidScenario`].
    pub fn from_toml_str(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario =
            toml::from_str(text).map_err(|e| SimError::ScenarioSyntax(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Checks every parameter; returns all problems at once.
    pub fn validate(&self) -> Result<(), SimError> {
        let mut c = Check {
            problems: Vec::new(),
        };
        if parse_date(&self.start_date).is_none() {
            c.problems.push(format!(
                "start_date must be a date YYYY-MM-DD, got {:?}",
                self.start_date
            ));
        }
        c.min("days", self.days, 1);
        c.max("days", self.days, 366);

        self.check_population(&mut c);
        self.check_honest(&mut c);
        self.check_confounders(&mut c);
        self.check_phone_farm(&mut c);
        self.check_bulk_check_in(&mut c);
        self.check_registration_farm(&mut c);
        self.check_record_churn(&mut c);
        self.check_report_inflation(&mut c);
        self.check_non_human_track(&mut c);
        let p = &self.population;
        // Enough officials for every special role?
        let need = self.special_officials();
        if need > p.officials as u64 {
            c.problems.push(format!(
                "population.officials must be >= {need} to staff the confounders and fraud blocks, got {}",
                p.officials
            ));
        }
        if c.problems.is_empty() {
            Ok(())
        } else {
            Err(SimError::InvalidScenario {
                problems: c.problems,
            })
        }
    }

    /// `[population]`: regions, shares, address blocks.
    fn check_population(&self, c: &mut Check) {
        let p = &self.population;
        if p.regions.is_empty() {
            c.problems
                .push("population.regions must list at least one region".into());
        }
        for (i, r) in p.regions.iter().enumerate() {
            if r.code.len() != 6 || !r.code.bytes().all(|b| b.is_ascii_digit()) {
                c.problems.push(format!(
                    "population.regions[{i}].code must be a 6-digit division code, got {:?}",
                    r.code
                ));
            }
            if !(-90.0..=90.0).contains(&r.lat) || !(-180.0..=180.0).contains(&r.lon) {
                c.problems.push(format!(
                    "population.regions[{i}] lat/lon must be WGS84 degrees, got ({}, {})",
                    r.lat, r.lon
                ));
            }
            c.ip(&format!("population.regions[{i}].ip_prefix"), &r.ip_prefix);
        }
        c.min("population.units_per_region", p.units_per_region, 1);
        c.prob("population.patrol_share", p.patrol_share);
        c.prob("population.river_share", p.river_share);
        c.prob("population.registry_share", p.registry_share);
        c.prob("population.grid_share", p.grid_share);
        c.prob("population.resident_active_prob", p.resident_active_prob);
        c.ip("population.mobile_ip_prefix", &p.mobile_ip_prefix);
        if p.patrol_share + p.registry_share + p.grid_share > 1.0 {
            c.problems.push(format!(
                "population.patrol_share + registry_share + grid_share must be <= 1, got {}",
                p.patrol_share + p.registry_share + p.grid_share
            ));
        }
    }

    /// `[honest]`: the routines of honest people.
    fn check_honest(&self, c: &mut Check) {
        let h = &self.honest;
        c.prob("honest.checkin_prob_weekday", h.checkin_prob_weekday);
        c.prob("honest.checkin_prob_weekend", h.checkin_prob_weekend);
        c.time("honest.checkin_time", &h.checkin_time, false);
        if !(h.checkin_spread_min >= 0.0 && h.checkin_spread_min <= 120.0) {
            c.problems.push(format!(
                "honest.checkin_spread_min must be between 0 and 120, got {}",
                h.checkin_spread_min
            ));
        }
        c.range("honest.study_sessions_weekday", h.study_sessions_weekday);
        c.range("honest.study_sessions_weekend", h.study_sessions_weekend);
        c.max(
            "honest.study_sessions_weekday[1]",
            h.study_sessions_weekday[1],
            10,
        );
        c.max(
            "honest.study_sessions_weekend[1]",
            h.study_sessions_weekend[1],
            10,
        );
        c.prob("honest.patrol_prob_weekday", h.patrol_prob_weekday);
        c.prob("honest.patrol_prob_weekend", h.patrol_prob_weekend);
        for (i, v) in h.mode_shares.iter().enumerate() {
            c.prob(&format!("honest.mode_shares[{i}]"), *v);
        }
        if h.mode_shares.iter().sum::<f64>() <= 0.0 {
            c.problems
                .push("honest.mode_shares must not all be 0".into());
        }
        if !(h.fix_interval_s[0] >= 1.0
            && h.fix_interval_s[0] <= h.fix_interval_s[1]
            && h.fix_interval_s[1] <= 60.0)
        {
            c.problems.push(format!(
                "honest.fix_interval_s must be [min, max] with 1 <= min <= max <= 60, got [{}, {}]",
                h.fix_interval_s[0], h.fix_interval_s[1]
            ));
        }
        c.prob("honest.gps_gap_prob", h.gps_gap_prob);
        c.range("honest.record_ops_per_day", h.record_ops_per_day);
        c.range("honest.reports_per_day", h.reports_per_day);
    }

    /// `[confounders]`: honest look-alikes.
    fn check_confounders(&self, c: &mut Check) {
        let k = &self.confounders;
        c.range("confounders.help_desk_per_day", k.help_desk_per_day);
        if k.census_cleanup && k.census_day >= self.days {
            c.problems.push(format!(
                "confounders.census_day must be a day index < days ({}), got {}",
                self.days, k.census_day
            ));
        }
        if !(k.bad_week_factor >= 1.0 && k.bad_week_factor <= 20.0) {
            c.problems.push(format!(
                "confounders.bad_week_factor must be between 1 and 20, got {}",
                k.bad_week_factor
            ));
        }
    }

    /// `[fraud.phone_farm]`, when enabled.
    fn check_phone_farm(&self, c: &mut Check) {
        let f = &self.fraud;
        if f.phone_farm.enabled {
            c.min("fraud.phone_farm.farms", f.phone_farm.farms, 1);
            c.min("fraud.phone_farm.phones", f.phone_farm.phones, 2);
            c.time(
                "fraud.phone_farm.sweep_time",
                &f.phone_farm.sweep_time,
                false,
            );
            c.min(
                "fraud.phone_farm.sweeps_per_day",
                f.phone_farm.sweeps_per_day,
                1,
            );
            c.max(
                "fraud.phone_farm.sweeps_per_day",
                f.phone_farm.sweeps_per_day,
                2,
            );
            c.range("fraud.phone_farm.session_s", f.phone_farm.session_s);
            c.min(
                "fraud.phone_farm.session_s[0]",
                f.phone_farm.session_s[0],
                10,
            );
            c.max(
                "fraud.phone_farm.session_s[1]",
                f.phone_farm.session_s[1],
                1800,
            );
            c.prob(
                "fraud.phone_farm.camouflage_share",
                f.phone_farm.camouflage_share,
            );
            c.prob("fraud.phone_farm.skip_share", f.phone_farm.skip_share);
            c.prob("fraud.phone_farm.pause_share", f.phone_farm.pause_share);
            c.max(
                "fraud.phone_farm.racks",
                f.phone_farm.racks,
                f.phone_farm.farms,
            );
        }
    }

    /// `[fraud.bulk_check_in]`, when enabled.
    fn check_bulk_check_in(&self, c: &mut Check) {
        let f = &self.fraud;
        if f.bulk_check_in.enabled {
            c.min(
                "fraud.bulk_check_in.operators",
                f.bulk_check_in.operators,
                1,
            );
            c.min("fraud.bulk_check_in.accounts", f.bulk_check_in.accounts, 2);
            c.time("fraud.bulk_check_in.time", &f.bulk_check_in.time, true);
            c.min("fraud.bulk_check_in.step_s", f.bulk_check_in.step_s, 1);
            c.max("fraud.bulk_check_in.step_s", f.bulk_check_in.step_s, 600);
            c.prob("fraud.bulk_check_in.far_share", f.bulk_check_in.far_share);
        }
    }

    /// `[fraud.registration_farm]`, when enabled.
    fn check_registration_farm(&self, c: &mut Check) {
        let f = &self.fraud;
        let r = &f.registration_farm;
        if r.enabled {
            c.min("fraud.registration_farm.farms", r.farms, 1);
            c.min("fraud.registration_farm.registrations", r.registrations, 2);
            c.min("fraud.registration_farm.window_min", r.window_min, 1);
            c.max("fraud.registration_farm.window_min", r.window_min, 600);
            c.min("fraud.registration_farm.devices", r.devices, 1);
            c.min("fraud.registration_farm.ips", r.ips, 1);
            if r.devices > r.registrations {
                c.problems.push(format!(
                    "fraud.registration_farm.devices must be <= registrations ({}), got {}",
                    r.registrations, r.devices
                ));
            }
            for d in &r.days {
                if *d >= self.days {
                    c.problems.push(format!(
                        "fraud.registration_farm.days must be day indices < days ({}), got {d}",
                        self.days
                    ));
                }
            }
            c.time("fraud.registration_farm.start_time", &r.start_time, false);
            c.ip("fraud.registration_farm.ip_prefix", &r.ip_prefix);
        }
    }

    /// `[fraud.record_churn]`, when enabled.
    fn check_record_churn(&self, c: &mut Check) {
        let f = &self.fraud;
        let rc = &f.record_churn;
        if rc.enabled {
            c.min("fraud.record_churn.workers", rc.workers, 1);
            c.min("fraud.record_churn.churn_keys", rc.churn_keys, 1);
            c.max("fraud.record_churn.churn_per_day", rc.churn_per_day, 2000);
            c.max(
                "fraud.record_churn.noop_updates_per_day",
                rc.noop_updates_per_day,
                5000,
            );
        }
    }

    /// `[fraud.report_inflation]`, when enabled.
    fn check_report_inflation(&self, c: &mut Check) {
        let f = &self.fraud;
        let ri = &f.report_inflation;
        if ri.enabled {
            c.min("fraud.report_inflation.units", ri.units, 1);
            c.min("fraud.report_inflation.workers", ri.workers, 1);
            if !ri.assessment_date.is_empty() && parse_date(&ri.assessment_date).is_none() {
                c.problems.push(format!(
                    "fraud.report_inflation.assessment_date must be YYYY-MM-DD or empty, got {:?}",
                    ri.assessment_date
                ));
            }
            c.min("fraud.report_inflation.days_before", ri.days_before, 1);
            c.range("fraud.report_inflation.burst_size", ri.burst_size);
            c.min("fraud.report_inflation.burst_size[0]", ri.burst_size[0], 2);
            c.max(
                "fraud.report_inflation.burst_size[1]",
                ri.burst_size[1],
                500,
            );
            c.min("fraud.report_inflation.categories", ri.categories, 1);
            c.min("fraud.report_inflation.texts", ri.texts, 1);
            if !(0.0..=5000.0).contains(&ri.spot_spread_m) {
                c.problems.push(format!(
                    "fraud.report_inflation.spot_spread_m must be between 0 and 5000 metres, got {}",
                    ri.spot_spread_m
                ));
            }
            c.prob("fraud.report_inflation.located_share", ri.located_share);
        }
    }

    /// `[fraud.non_human_track]`, when enabled.
    fn check_non_human_track(&self, c: &mut Check) {
        let f = &self.fraud;
        let n = &f.non_human_track;
        if n.enabled {
            c.prob("fraud.non_human_track.fake_day_share", n.fake_day_share);
            c.prob("fraud.non_human_track.mock_flag_share", n.mock_flag_share);
            c.prob("fraud.non_human_track.slow_dog_share", n.slow_dog_share);
        }
    }

    /// Number of officials taken by confounders and fraud blocks (plus a margin).
    pub(crate) fn special_officials(&self) -> u64 {
        let k = &self.confounders;
        let f = &self.fraud;
        let mut n: u64 = k.office_wifi_study as u64
            + 2 * k.family_shared_phone as u64
            + k.help_desk_workers as u64
            + k.census_cleanup as u64
            + k.boat_patrollers as u64
            + k.poor_gps_patrollers as u64
            + k.site_surveyors as u64
            + k.train_riders as u64;
        if f.phone_farm.enabled {
            n += f.phone_farm.farms as u64 * (f.phone_farm.phones as u64 + 1);
        }
        if f.bulk_check_in.enabled {
            n += f.bulk_check_in.operators as u64 * (f.bulk_check_in.accounts as u64 + 1);
        }
        if f.record_churn.enabled {
            n += f.record_churn.workers as u64;
        }
        if f.report_inflation.enabled {
            n += f.report_inflation.units as u64 * f.report_inflation.workers as u64;
        }
        if f.non_human_track.enabled {
            let t = &f.non_human_track;
            n += (t.dog_leg + t.straight_line + t.teleport + t.replay) as u64;
        }
        n + 10
    }
}
