//! The binary: parse the command line, start logging, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use rtc_quality_sync::error::{self, Error, Outcome};
use rtc_quality_sync::{app, cli::Cli, telemetry};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // `--help` and `--version` are answers, not errors.
            let ended = if e.use_stderr() {
                Err(Error::usage(e))
            } else {
                Ok(Outcome::Done)
            };
            return ExitCode::from(error::exit_code(&ended));
        }
    };
    telemetry::init(cli.log_format, cli.verbose, cli.quiet);
    let ended = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(app::run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            Err(e.into())
        }
    };
    ExitCode::from(error::exit_code(&ended))
}
