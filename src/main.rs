//! The `cnnc` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use cnnc::verify::{self, Backend, Outcome, Tolerance};
use cnnc::{Compiler, Error, ListingKind, Model, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "cnnc",
    version,
    about = "Ahead-of-time compiler for convolutional neural networks (ONNX in, native code out)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    compile: CompileArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Compile in memory and run on .npy inputs, writing one .npy per output.
    Run(RunArgs),
    /// Compile in memory and time runs on random inputs.
    Bench(BenchArgs),
    /// Run ONNX test-data folders (model.onnx + test_data_set_N/) and compare outputs;
    /// -O and --after choose the passes of the jit and aot backends.
    Verify(VerifyArgs),
    /// Show the ops, totals, memory plan, pass log and IR of a compiled model.
    Inspect(InspectArgs),
}

#[derive(Args)]
struct InspectArgs {
    model: PathBuf,
    /// Also run the model (JIT, this many timed runs after one warm-up) and show each
    /// op's median time.
    #[arg(long, value_name = "RUNS")]
    time: Option<usize>,
    #[command(flatten)]
    model_args: ModelArgs,
}

/// How the model is imported (shared by every command that takes a model).
#[derive(Args, Clone)]
struct ModelArgs {
    /// Shape of an input with symbolic dimensions, e.g. `input=1x3x224x224`.
    #[arg(long, value_name = "NAME=DIMS")]
    input_shape: Vec<String>,
    /// Bind an input as a compile-time constant from a .npy file.
    #[arg(long = "const", value_name = "NAME=FILE.npy")]
    constant: Vec<String>,
    /// CPU to generate code for: native, x86-64-v2, x86-64-v3, a CPU name, or features (+fma,+avx2).
    #[arg(long)]
    cpu: Option<String>,
    #[command(flatten)]
    passes: PassArgs,
}

/// Which graph passes run (shared by every command that compiles).
#[derive(Args, Clone)]
struct PassArgs {
    /// Optimization level.
    #[arg(short = 'O', value_enum, default_value = "2")]
    opt: OptArg,
    /// Run the passes only up to and including PASS (`cnnc inspect` lists them).
    #[arg(long, value_name = "PASS")]
    after: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptArg {
    /// No graph passes.
    #[value(name = "0")]
    O0,
    /// Every pass.
    #[value(name = "2")]
    O2,
    /// Every pass but those that enlarge the constants (Winograd, space-to-depth): a
    /// smaller object, slower 3x3 and strided convolutions.
    #[value(name = "s")]
    Os,
}

impl PassArgs {
    /// Whether the options ask for anything but the default passes.
    fn chosen(&self) -> bool {
        self.opt != OptArg::O2 || self.after.is_some()
    }

    fn compiler(&self) -> Compiler {
        let c = Compiler::new().opt_level(match self.opt {
            OptArg::O0 => cnnc::OptLevel::O0,
            OptArg::O2 => cnnc::OptLevel::O2,
            OptArg::Os => cnnc::OptLevel::Os,
        });
        match &self.after {
            Some(pass) => c.stop_after(pass),
            None => c,
        }
    }
}

#[derive(Args)]
struct CompileArgs {
    /// The ONNX model.
    #[arg(required = true)]
    model: Option<PathBuf>,
    /// The object file to write (model.h and model.json go beside it).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Where to write the C header (default: beside the object, NAME.h).
    #[arg(long)]
    header: Option<PathBuf>,
    /// Symbol prefix of the entry points (default: the object file's name).
    #[arg(long)]
    name: Option<String>,
    /// Target triple (default: the host).
    #[arg(long)]
    target: Option<String>,
    /// Print an intermediate form instead of (or besides) writing the object.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    #[command(flatten)]
    model_args: ModelArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    /// The graph IR after the passes (see --after).
    Ir,
    /// Cranelift IR of every generated function.
    Clif,
    /// Disassembly of every generated function.
    Asm,
}

#[derive(Args)]
struct RunArgs {
    model: PathBuf,
    /// An input as `NAME=FILE.npy`, or just `FILE.npy` for a model with one input.
    #[arg(long, required = true)]
    input: Vec<String>,
    /// Folder for the outputs, one `<output name>.npy` each.
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    model_args: ModelArgs,
}

#[derive(Args)]
struct BenchArgs {
    model: PathBuf,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs (after warm-up).
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also time every layer (the kernels of each node): median ms, share and GFLOP/s
    /// per layer and per op kind.
    #[arg(long)]
    per_layer: bool,
    /// Also measure this core's 128-bit FMA peak after the timed runs: the ceiling of
    /// the generated kernels (the same code generator running independent `fma`
    /// chains), in GFLOP/s; with --per-layer, every layer's share of it (times the
    /// threads).
    #[arg(long)]
    fma_peak: bool,
    #[command(flatten)]
    model_args: ModelArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    /// The reference interpreter.
    Ref,
    /// Compiled in memory.
    Jit,
    /// Compiled to an object file and linked into a C program.
    Aot,
}

#[derive(Args)]
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
    // The passes the jit and aot backends run (`--after PASS` finds the pass that
    // changes an answer); clap shows no doc comment of a flattened field.
    #[command(flatten)]
    passes: PassArgs,
}

/// `print!` that ends the process quietly when stdout is a closed pipe
/// (`cnnc inspect m.onnx | head`) instead of panicking, and with an error message on
/// any other write error.
macro_rules! out {
    ($($arg:tt)*) => {
        write_stdout(format_args!($($arg)*))
    };
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {
        write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

fn write_stdout(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cnnc: writing to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run(args),
        Some(Command::Bench(args)) => bench(args),
        Some(Command::Verify(args)) => run_verify(args),
        Some(Command::Inspect(args)) => {
            let model = Model::load(&args.model);
            model
                .and_then(|m| cnnc::inspect::inspect(&compiler(&args.model_args)?, &m, args.time))
                .map(|report| {
                    out!("{report}");
                    ExitCode::SUCCESS
                })
        }
        None => compile(cli.compile),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cnnc: {e}");
            ExitCode::from(if e.is_user_error() { 2 } else { 1 })
        }
    }
}

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

/// `NAME=VALUE`.
fn split_pair<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str), Error> {
    s.split_once('=')
        .ok_or_else(|| usage(format!("{what} '{s}' must be NAME=VALUE")))
}

fn parse_dims(s: &str) -> Result<Vec<usize>, Error> {
    s.split(['x', 'X', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| usage(format!("'{s}' is not a shape like 1x3x224x224")))
        })
        .collect()
}

fn compiler(args: &ModelArgs) -> Result<Compiler, Error> {
    let mut c = args.passes.compiler();
    if let Some(cpu) = &args.cpu {
        c = c.cpu(cpu);
    }
    for s in &args.input_shape {
        let (name, dims) = split_pair(s, "--input-shape")?;
        c = c.input_shape(name, &parse_dims(dims)?);
    }
    for s in &args.constant {
        let (name, file) = split_pair(s, "--const")?;
        c = c.constant(name, cnnc::npy::read(Path::new(file))?);
    }
    Ok(c)
}

/// A spinner on stderr while `f` runs; nothing when stderr is not a terminal.
fn with_spinner<T>(msg: String, f: impl FnOnce() -> T) -> T {
    let pb = ProgressBar::new_spinner().with_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    let r = f();
    pb.finish_and_clear();
    r
}

fn compile(args: CompileArgs) -> Result<ExitCode, Error> {
    let path = args.model.expect("clap requires the model");
    let model = Model::load(&path)?;
    let mut c = compiler(&args.model_args)?;
    if let Some(t) = &args.target {
        c = c.target(t)?;
    }
    let stem = args
        .output
        .as_deref()
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    c = c.name(args.name.as_deref().unwrap_or(&stem));
    match args.emit {
        Some(Emit::Ir) => out!("{}", cnnc::ir::print(&c.optimize(&model)?.0)),
        Some(Emit::Clif) => out!("{}", c.listing(&model, ListingKind::Clif)?),
        Some(Emit::Asm) => out!("{}", c.listing(&model, ListingKind::Asm)?),
        None => {}
    }
    let Some(out) = args.output else {
        if args.emit.is_none() {
            return Err(usage(
                "give an output object with -o (or --emit ir|clif|asm)".into(),
            ));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let obj = with_spinner(format!("compiling {}", path.display()), || {
        c.object(&model, &stem)
    })?;
    let write = |p: &Path, bytes: &[u8]| {
        std::fs::write(p, bytes).map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    obj.write(&out)?;
    let header = args
        .header
        .unwrap_or_else(|| out.with_file_name(format!("{}.h", obj.info.name)));
    write(&header, obj.header.as_bytes())?;
    write(
        &out.with_file_name(format!("{}.json", obj.info.name)),
        obj.json.as_bytes(),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> Result<ExitCode, Error> {
    let model = Model::load(&args.model)?;
    let compiled = compiler(&args.model_args)?
        .threads(args.threads)
        .compile(&model)?;
    let names: Vec<String> = compiled.inputs().iter().map(|t| t.name.clone()).collect();
    let mut given: Vec<Option<Tensor>> = vec![None; names.len()];
    for s in &args.input {
        let (k, file) = match s.split_once('=') {
            Some((name, file)) => match names.iter().position(|n| n == name) {
                Some(k) => (k, file),
                None => {
                    return Err(usage(format!(
                        "'{name}' is not an input of the model (inputs: {})",
                        names.join(", ")
                    )));
                }
            },
            None if names.len() == 1 => (0, s.as_str()),
            None => {
                return Err(usage(format!(
                    "the model has {} inputs; name each with --input NAME=FILE.npy",
                    names.len()
                )));
            }
        };
        given[k] = Some(cnnc::npy::read(Path::new(file))?);
    }
    let inputs: Vec<Tensor> = given
        .into_iter()
        .zip(&names)
        .map(|(t, n)| t.ok_or_else(|| usage(format!("input '{n}' is not given"))))
        .collect::<Result<_, _>>()?;
    let outputs = compiled.run(&inputs)?;
    std::fs::create_dir_all(&args.output_dir).map_err(|source| Error::Io {
        path: args.output_dir.clone(),
        source,
    })?;
    for (t, info) in outputs.iter().zip(compiled.outputs()) {
        let file = format!("{}.npy", info.name.replace(['/', '\\'], "_"));
        cnnc::npy::write(&args.output_dir.join(file), t)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(args: BenchArgs) -> Result<ExitCode, Error> {
    let model = Model::load(&args.model)?;
    let c = compiler(&args.model_args)?
        .threads(args.threads)
        .profile(args.per_layer);
    let start = Instant::now();
    let (graph, compiled) = with_spinner(format!("compiling {}", args.model.display()), || {
        let graph = c.graph(&model)?;
        let compiled = c.compile_graph(&graph)?;
        Ok::<_, Error>((graph, compiled))
    })?;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    let inputs = cnnc::profile::random_inputs(&compiled)?;
    for _ in 0..args.warmup {
        compiled.run(&inputs)?;
    }
    let pb = ProgressBar::new(args.iters as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs").expect("a valid template"),
    );
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters.max(1) {
        let t = Instant::now();
        compiled.run(&inputs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        pb.inc(1);
    }
    pb.finish_and_clear();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let (min, max) = (times[0], times[times.len() - 1]);
    let layers = if args.per_layer {
        Some(cnnc::profile::per_layer(
            &compiled, &graph, &inputs, 0, args.iters,
        )?)
    } else {
        None
    };
    let fma_peak = if args.fma_peak {
        Some(cnnc_codegen::peak::FmaPeak::new()?.gflops())
    } else {
        None
    };
    if args.json {
        let mut j = serde_json::json!({
            "model": args.model.display().to_string(),
            "threads": compiled.threads(),
            "iters": times.len(),
            "median_ms": median,
            "min_ms": min,
            "max_ms": max,
            "compile_ms": compile_ms,
        });
        if let Some(layers) = &layers {
            j["layers"] = serde_json::to_value(layers).expect("plain data");
        }
        if let Some(g) = fma_peak {
            j["fma_peak_gflops"] = g.into();
        }
        outln!("{j}");
    } else {
        if let Some(layers) = &layers {
            let peak = fma_peak.map(|g| g * compiled.threads() as f64);
            out!("{}", cnnc::profile::table(layers, peak));
        }
        outln!(
            "{}: median {median:.3} ms, min {min:.3} ms, max {max:.3} ms ({} runs, {} threads); compile {compile_ms:.0} ms",
            args.model.display(),
            times.len(),
            compiled.threads()
        );
        if let Some(g) = fma_peak {
            outln!("128-bit FMA peak: {g:.1} GFLOP/s on one core");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_verify(args: VerifyArgs) -> Result<ExitCode, Error> {
    let mut paths = args.cases.clone();
    if let Some(list) = &args.cases_from {
        let text = std::fs::read_to_string(list).map_err(|source| Error::Io {
            path: list.clone(),
            source,
        })?;
        let base = list.parent().unwrap_or(Path::new("."));
        paths.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| base.join(l)),
        );
    }
    if paths.is_empty() {
        return Err(usage("no cases given".into()));
    }
    let cases = verify::expand_cases(&paths)?;
    let backend = match args.backend {
        BackendArg::Ref => Backend::Ref,
        BackendArg::Jit => Backend::Jit,
        BackendArg::Aot => Backend::Aot,
    };
    let tol = Tolerance {
        rtol: args.rtol,
        atol: args.atol,
    };
    if backend == Backend::Ref && args.passes.chosen() {
        return Err(usage(
            "-O and --after choose the passes of the jit and aot backends; the reference \
             interpreter runs the imported graph"
                .into(),
        ));
    }
    let compiler = args.passes.compiler();
    compiler.check_stop_after()?;
    let (mut passed, mut failed, mut unsupported) = (0, 0, 0);
    let pb = ProgressBar::new(cases.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("a valid template"),
    );
    for case in &cases {
        pb.set_message(case.display().to_string());
        let outcome = verify::verify_case(case, backend, tol, &compiler);
        match &outcome {
            Outcome::Pass => passed += 1,
            Outcome::Fail(_) => failed += 1,
            Outcome::Unsupported(_) => unsupported += 1,
        }
        pb.suspend(|| outln!("{}: {outcome}", case.display()));
        pb.inc(1);
    }
    pb.finish_and_clear();
    outln!("{passed} passed, {failed} failed, {unsupported} unsupported");
    let ok = failed == 0 && !(args.strict && unsupported > 0);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
