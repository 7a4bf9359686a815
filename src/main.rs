//! The `cnnc` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cnnc::Error;
use cnnc::verify::{self, Backend, Outcome, Tolerance};

#[derive(Parser)]
#[command(
    name = "cnnc",
    version,
    about = "Ahead-of-time compiler for convolutional neural networks (ONNX)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ONNX test-data folders (model.onnx + test_data_set_N/) and compare outputs.
    Verify(VerifyArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// The reference interpreter.
    Ref,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Case folders, or folders of case folders.
    cases: Vec<PathBuf>,
    /// Also run the cases listed in this file, one path per line, relative to the file.
    #[arg(long, value_name = "FILE")]
    cases_from: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "ref")]
    backend: BackendArg,
    /// Relative tolerance.
    #[arg(long, default_value_t = 1e-3)]
    rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-7)]
    atol: f64,
    /// Count unsupported cases as failures.
    #[arg(long)]
    strict: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => run_verify(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cnnc: {e}");
            ExitCode::from(if e.is_user_error() { 2 } else { 1 })
        }
    }
}

fn run_verify(args: VerifyArgs) -> Result<ExitCode, Error> {
    let mut paths = args.cases.clone();
    if let Some(list) = &args.cases_from {
        let text = std::fs::read_to_string(list).map_err(|source| Error::Io {
            path: list.clone(),
            source,
        })?;
        let base = list.parent().unwrap_or(std::path::Path::new("."));
        paths.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| base.join(l)),
        );
    }
    if paths.is_empty() {
        return Err(Error::Usage("no cases given".into()));
    }
    let cases = verify::expand_cases(&paths)?;
    let backend = match args.backend {
        BackendArg::Ref => Backend::Ref,
    };
    let tol = Tolerance {
        rtol: args.rtol,
        atol: args.atol,
    };
    let (mut passed, mut failed, mut unsupported) = (0, 0, 0);
    for case in &cases {
        let outcome = verify::verify_case(case, backend, tol);
        match &outcome {
            Outcome::Pass => passed += 1,
            Outcome::Fail(_) => failed += 1,
            Outcome::Unsupported(_) => unsupported += 1,
        }
        println!("{}: {outcome}", case.display());
    }
    println!("{passed} passed, {failed} failed, {unsupported} unsupported");
    let ok = failed == 0 && !(args.strict && unsupported > 0);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
