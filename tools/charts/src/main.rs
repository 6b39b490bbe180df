//! `podstack-charts`: draw the book's benchmark charts; see the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Draws docs/src/images/charts/*.svg from the benchmark scripts' JSON results.
#[derive(Debug, Parser)]
#[command(name = "podstack-charts")]
struct Args {
    /// The folder of the JSON results (bench-sync.json, bench-supervisor.json,
    /// plan-vs-docker.json).
    #[arg(long, default_value = "docs/src/images/charts/data")]
    data: PathBuf,
    /// Where the SVGs go.
    #[arg(long, default_value = "docs/src/images/charts")]
    out: PathBuf,
    /// Write nothing; fail when the SVGs there are not what the results draw.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.check {
        podstack_charts::check_all(&args.data, &args.out).map(|()| Vec::new())
    } else {
        podstack_charts::write_all(&args.data, &args.out)
    };
    match result {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
