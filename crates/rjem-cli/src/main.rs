//! `rjem`: the command-line tool. Arguments are parsed with clap; each
//! subcommand lives in its own module:
//!
//! - `rjem run` ([`run`]): run a program on rjem (optionally explaining its
//!   allocator statistics when it exits, or snapshotting them);
//! - `rjem bench` ([`bench`]): the side-by-side allocator benchmarks;
//! - `rjem stats` ([`stats`]): read, explain, compare and draw
//!   `malloc_stats_print` output from rjem, jemalloc 5.x and Redis;
//! - `rjem prof` ([`prof`]): read heap profiles (top sites, flame graphs,
//!   growth between dumps); `rjem run --prof` profiles a whole run.

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod prof;
mod run;
mod stats;
mod svg;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

/// Run programs on the rjem allocator, benchmark allocators, and explain
/// allocator statistics (rjem's and jemalloc's).
#[derive(Parser)]
#[command(name = "rjem", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Run(run::Args),
    Bench(bench::Args),
    #[command(subcommand)]
    Stats(stats::Cmd),
    /// Read heap profiles: top sites, flame graphs, growth between dumps.
    #[command(subcommand)]
    Prof(prof::Cmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        shell: clap_complete::Shell,
    },
}

/// The exit status of a usage error: `rjem run` keeps 125 for its own
/// failures (the program's statuses pass through), the others use 2.
fn usage_status(args: &[std::ffi::OsString]) -> u8 {
    match args.get(1).and_then(|a| a.to_str()) {
        Some("bench" | "stats" | "prof" | "completions") => 2,
        _ => run::FAILED,
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::InvalidSubcommand {
                let name = args.get(1).map(|a| a.to_string_lossy().into_owned());
                eprintln!("rjem: unknown command '{}'", name.unwrap_or_default());
            }
            let _ = e.print();
            return ExitCode::from(usage_status(&args));
        }
    };
    match cli.command {
        Cmd::Run(a) => run::main(a),
        Cmd::Bench(a) => bench::main(a),
        Cmd::Stats(c) => stats::main(c),
        Cmd::Prof(c) => prof::main(c),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rjem", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}
