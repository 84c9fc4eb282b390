//! The binary: parse the command line, start logging, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use rtc_quality_sync::{app, cli::Cli, telemetry};

/// Usage errors exit 64 (EX_USAGE), as PRODUCT.md fixes.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    telemetry::init(cli.log_format, cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(app::EXIT_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(app::run(cli)))
}
