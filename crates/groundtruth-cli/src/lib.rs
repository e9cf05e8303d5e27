//! The `groundtruth` command line.

mod cmd;
mod commands;
mod runtime;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// groundtruth: finds faked activity in government apps and measures how
/// much of the activity is real.
#[derive(Debug, Parser)]
#[command(name = "groundtruth", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings flags shared by every command (see `groundtruth-config`).
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// TOML config file.
    #[arg(long, global = true, env = "GROUNDTRUTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override one setting: `section.key=value` (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Lake directory (same as --set lake.dir=DIR).
    #[arg(long, global = true)]
    pub lake: Option<PathBuf>,
    /// Kafka bootstrap servers (same as --set kafka.brokers=...).
    #[arg(long, global = true)]
    pub brokers: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a week into a local lake and summarise it (no Kafka needed).
    Demo(DemoArgs),
    /// Load events into the lake from Kafka, NDJSON files or the simulator.
    Ingest(IngestArgs),
    /// Generate a labelled week of activity with fraud scenarios.
    Simulate(SimulateArgs),
    /// Run a read-only SQL query over the lake (tables `events`, `dead_letters`).
    Sql(SqlArgs),
    /// The live service: Kafka into the lake, detectors on window close,
    /// findings to the store and the `findings` topic, until stopped.
    Run(RunArgs),
    /// Lake maintenance.
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Run the detectors over NDJSON event files and write findings (the
    /// contract's batch command: replay, backfill, evaluation).
    Detect(DetectArgs),
    /// The current findings of the review store (upserted by id).
    Findings(FindingsArgs),
    /// Serve the review API over an existing review store and lake.
    Serve(ServeArgs),
    /// Create, list and revoke the API's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Measure the detectors against labelled and real data.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Refit the detectors' score calibration to the inspectors' verdicts
    /// in the review store (confirmed: real, dismissed: not) and write it
    /// to a file for `detect.calibration`; detectors with fewer than 20
    /// decided findings keep the curve in use.
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// State directory of `groundtruth run`, where the review store is by
    /// default (same as --set live.state_dir=DIR).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Where to write the calibration (JSON).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Event files (NDJSON, plain or .gz); repeat or list several.
    #[arg(long, short, value_name = "EVENTS", required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Where to write the findings, one JSON object per line.
    #[arg(long, short, value_name = "FINDINGS")]
    pub output: PathBuf,
    /// Where to write the bad events with their reasons (NDJSON).
    /// Default: FINDINGS with `.dead-letters.ndjson` in place of its extension.
    #[arg(long, value_name = "FILE")]
    pub dead_letters: Option<PathBuf>,
    /// Also publish every finding to this Kafka topic (created if missing;
    /// brokers from `kafka.brokers`), keyed by `finding_id` so a compacted
    /// topic keeps one message per finding however often it is re-run.
    #[arg(long, value_name = "TOPIC")]
    pub findings_topic: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// non_human_track: precision and recall per fraud type on a labelled
    /// simulation, and the share of real GeoLife people flagged.
    Tracks(EvalTracksArgs),
    /// phone_farm, bulk_check_in, registration_farm, record_churn,
    /// report_inflation: account-level precision and recall per detector
    /// over a matrix of simulated scenarios with every honest look-alike.
    Behaviour(EvalBehaviourArgs),
    /// The detectors over a family of simulated worlds drawn from seeds,
    /// every parameter from a wide range: per world the figures, per
    /// detector (and per track fraud type) the worst precision and recall,
    /// and the reliability of the scores (do findings scored p come true
    /// p of the time?).
    Worlds(EvalWorldsArgs),
    /// The reliability of a findings file's scores against labels (a
    /// `kind,id,label` CSV such as the validation world's `labels.csv`):
    /// per detector, findings binned by score beside the share confirmed,
    /// Brier score and calibration error.
    Reliability(EvalReliabilityArgs),
}

#[derive(Debug, Args)]
pub struct EvalReliabilityArgs {
    /// Findings (NDJSON), as `groundtruth detect` writes them.
    #[arg(long, value_name = "FILE")]
    pub findings: PathBuf,
    /// Labels: `kind,id,label` with a header; kind `account` or `patrol`,
    /// label `honest` or the detector that should flag it.
    #[arg(long, value_name = "FILE")]
    pub labels: PathBuf,
    /// Also write the table as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalWorldsArgs {
    /// How many worlds to draw.
    #[arg(long, default_value_t = 20)]
    pub worlds: u32,
    /// Seed of the draw (the same seed draws the same worlds).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days per world (2-7).
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Leave out non_human_track (judged on each world's patrols otherwise).
    #[arg(long)]
    pub no_tracks: bool,
    /// Write every drawn patrol's world, scenario, verdicts and features
    /// here (NDJSON), to look into misses and false alarms.
    #[arg(long, value_name = "FILE", conflicts_with = "no_tracks")]
    pub details: Option<PathBuf>,
    /// Fit each detector's calibration (raw score to the share of findings
    /// that were real) on these worlds and write it here; `detect.calibration`
    /// reads it, and the file beside groundtruth-finding is the built-in one.
    #[arg(long, value_name = "FILE")]
    pub fit_calibration: Option<PathBuf>,
    /// Also write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalBehaviourArgs {
    /// Scenario TOML files to run instead of the built-in matrix (repeatable).
    #[arg(long, value_name = "FILE")]
    pub scenario: Vec<PathBuf>,
    /// Days per scenario of the built-in matrix (2-7).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Also write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalTracksArgs {
    /// Scenario TOML; default: the built-in week.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Directory with the GeoLife files (geolife_sample.txt.gz, demodata_geolife.csv).
    #[arg(long, value_name = "DIR")]
    pub geolife: Option<PathBuf>,
    /// Also write the figures as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write every patrol's scenario, verdicts and features here (NDJSON),
    /// to look into misses.
    #[arg(long, value_name = "FILE")]
    pub details: Option<PathBuf>,
    /// Instead of simulating, judge the patrols of these NDJSON event files
    /// (another world, real people's tracks) and write each one's verdicts
    /// and features to --details (repeatable).
    #[arg(long, value_name = "FILE", requires = "details", conflicts_with_all = ["scenario", "geolife", "json"])]
    pub events: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// NDJSON files (plain or .gz) to ingest.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Consume the Kafka topics of the config ([kafka]).
    #[arg(long, conflicts_with_all = ["files", "simulate"])]
    pub kafka: bool,
    /// Topic(s) to consume (same as --set kafka.topics=a,b).
    #[arg(long, requires = "kafka")]
    pub topic: Vec<String>,
    /// Consumer group (same as --set kafka.group_id=...).
    #[arg(long, requires = "kafka")]
    pub group: Option<String>,
    /// With --kafka: stop after this many seconds without a message.
    #[arg(long, value_name = "SECONDS", requires = "kafka")]
    pub exit_when_idle: Option<f64>,
    /// Run the simulator in-process with this scenario file (TOML).
    #[arg(long, value_name = "SCENARIO", conflicts_with = "files")]
    pub simulate: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Scenario file (TOML); default: the built-in week (pipelines/sim-week.toml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Review store directory (default data/demo-state).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Address of the review API (default api.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Summarise and exit instead of serving the API.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of the review store (same as --set live.state_dir=DIR).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Address to serve on (same as --set api.listen=ADDR).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown only once).
    Create(TokenCreateArgs),
    /// List the tokens (never their secrets).
    List(TokenStateArgs),
    /// Revoke a token by its id (tok_...).
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenStateArgs {
    /// Directory of the review store (same as --set live.state_dir=DIR).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// inspector, analyst, admin or unit.
    #[arg(long)]
    pub role: String,
    /// Division-code prefix the token may see: 45 (province), 4501 (city),
    /// 450102 (district), or "" for nationwide.
    #[arg(long)]
    pub region: String,
    /// Who holds it (default: the role and region, e.g. inspector-4501).
    #[arg(long)]
    pub subject: Option<String>,
    /// Lifetime in seconds (default: until revoked).
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<i64>,
    #[command(flatten)]
    pub store: TokenStateArgs,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    pub token_id: String,
    #[command(flatten)]
    pub store: TokenStateArgs,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML); default: the built-in week (pipelines/sim-week.toml).
    #[arg(long, conflicts_with = "world")]
    pub scenario: Option<PathBuf>,
    /// One of the worlds `groundtruth eval worlds` draws, by the name it
    /// reports (`world-SEED-INDEX`), with `--days` as given to it (default
    /// 3): to look into a world's misses and false alarms.
    #[arg(long, value_name = "NAME", conflicts_with = "seed")]
    pub world: Option<String>,
    /// With `--world`: the world as its patrols are judged (patrols drawn
    /// from wide ranges too, as `eval worlds` does unless `--no-tracks`).
    #[arg(long, requires = "world")]
    pub drawn_patrols: bool,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the scenario's number of days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Write events to this NDJSON file (`.gz` compresses); `-` = stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Produce events to this Kafka topic instead (created if missing).
    #[arg(long, value_name = "TOPIC", conflicts_with = "output")]
    pub kafka_topic: Option<String>,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Write the ground truth to DIR/accounts.csv and DIR/patrols.csv.
    #[arg(long, value_name = "DIR")]
    pub labels: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct FindingsArgs {
    /// State directory of `groundtruth run`, where the review store is by
    /// default (same as --set live.state_dir=DIR).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Only this detector's findings (repeatable).
    #[arg(long)]
    pub detector: Vec<String>,
    /// `table`: one line per finding; `json`: the contract's JSON, one per line.
    #[arg(long, value_enum, default_value = "table")]
    pub format: FindingsFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FindingsFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT kind, count(*) FROM events GROUP BY kind".
    pub query: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Topic(s) to consume (same as --set kafka.topics=a,b).
    #[arg(long)]
    pub topic: Vec<String>,
    /// Checkpoint and findings store directory (same as --set live.state_dir=DIR).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// A bounded run (backfills, tests): once the topics are drained and
    /// quiet for SECONDS, close every window that holds data, as at the
    /// end of a file, and exit.
    #[arg(long, value_name = "SECONDS")]
    pub drain_when_idle: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Merge every partition's small files now.
    Compact,
}

/// Parses the arguments, runs the command, prints any error.
pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // clap keeps only one level's `--set` values when the flag is given
    // both before and after the subcommand: take them all, in order.
    cli.global.set = set_flags(std::env::args_os().skip(1));
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every `--set` value in `args`, in order (up to a `--`).
fn set_flags(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = args.map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        } else if a == "--set" {
            out.extend(args.next());
        } else if let Some(v) = a.strip_prefix("--set=") {
            out.push(v.to_string());
        }
    }
    out
}

#[cfg(test)]
mod set_tests {
    use super::*;

    #[test]
    fn set_flags_before_and_after_the_subcommand_all_count() {
        let args = [
            "--set",
            "a=1",
            "run",
            "--set=b=2",
            "--state",
            "s",
            "--set",
            "c=\"--set\"",
            "--",
            "--set",
            "d=4",
        ];
        let got = set_flags(args.iter().map(std::ffi::OsString::from));
        assert_eq!(got, ["a=1", "b=2", "c=\"--set\""]);
        let cli =
            Cli::try_parse_from(["groundtruth", "--set", "a=1", "run", "--set", "b=2"]).unwrap();
        assert_eq!(
            cli.global.set,
            ["b=2"],
            "clap alone drops a=1: why main re-reads them"
        );
    }
}
