//! The commands: each subcommand's settings, then its module in `cmd/`.

use anyhow::Result;

use crate::cmd::demo::demo;
use crate::cmd::detect::detect;
use crate::cmd::eval::{eval_behaviour, eval_reliability, eval_tracks, eval_worlds};
use crate::cmd::ingest::ingest;
use crate::cmd::kafka::topic_overrides;
use crate::cmd::review;
use crate::cmd::run::run_service;
use crate::cmd::simulate::simulate_cmd;
use crate::cmd::sql::sql;
use crate::setup::{init_logging, lake_options, load_config, toml_string};
use crate::{Cli, Command, EvalCommand, LakeCommand};

pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => {
            let mut global = cli.global.clone();
            if global.lake.is_none() {
                global.lake = Some("data/demo-lake".into());
            }
            let cfg = load_config(&global, Vec::new())?;
            init_logging(&cfg);
            demo(&cfg, &args)
        }
        Command::Ingest(args) => {
            let mut extra = topic_overrides(&args.topic);
            if let Some(g) = &args.group {
                extra.push(format!("kafka.group_id={}", toml_string(g)));
            }
            let cfg = load_config(&cli.global, extra)?;
            init_logging(&cfg);
            ingest(&cfg, &args)
        }
        Command::Simulate(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            simulate_cmd(&cfg, &args)
        }
        Command::Sql(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            sql(&cfg, &args)
        }
        Command::Run(args) => {
            let extra = topic_overrides(&args.topic);
            let cfg = load_config(&cli.global, extra)?;
            init_logging(&cfg);
            run_service(&cfg, &args)
        }
        Command::Findings(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::findings(&cfg, &args)
        }
        Command::Serve(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::serve(&cfg, &args)
        }
        Command::Token(cmd) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::token(&cfg, &cmd)
        }
        Command::Detect(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            detect(&cfg, &args)
        }
        Command::Eval(EvalCommand::Tracks(args)) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            eval_tracks(&cfg, &args)
        }
        Command::Eval(EvalCommand::Behaviour(args)) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            eval_behaviour(&cfg, &args)
        }
        Command::Eval(EvalCommand::Worlds(args)) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            eval_worlds(&cfg, &args)
        }
        Command::Eval(EvalCommand::Reliability(args)) => eval_reliability(&args),
        Command::Calibrate(args) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            review::calibrate(&cfg, &args)
        }
        Command::Lake(LakeCommand::Compact) => {
            let cfg = load_config(&cli.global, Vec::new())?;
            init_logging(&cfg);
            let mut lake = groundtruth_lake::LakeWriter::open(&cfg.lake.dir, lake_options(&cfg))?;
            let s = lake.compact_all()?;
            eprintln!(
                "compacted {} files into {} ({} rows)",
                s.merged_files, s.output_files, s.rows
            );
            Ok(())
        }
    }
}
