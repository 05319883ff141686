//! The `pixelflow` command line: a thin layer over `pixelflow_app`.
//!
//! Exit codes are a contract that scripts rely on: 0 success; 1 the execution failed (its
//! `{"error", "cause"}` is printed on stdout); 2 the definition, the input or the command line
//! is invalid (messages on stderr); 3 the environment failed (database, files); 130 interrupted.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::sync::Arc;

use pixelflow_app::batch::{self, BatchOptions};
use pixelflow_app::execution::{self, ExecutionResult, Finished};
use pixelflow_app::{App, DataDir, Error, Workflow};
use pixelflow_engine::{CancelToken, Failure, TokenOutcome};
use pixelflow_history::{ExecutionFilter, ExecutionStatus, OriginalAction};
use serde_json::{json, Value};

/// Prints a line on stdout (`out!(to w; ...)`: on the writer `w` over it). A reader that went
/// away (`pixelflow history list | head`) ends the program quietly instead of panicking as
/// `println!` does.
macro_rules! out {
    (to $w:expr; $($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!($w, $($arg)*) {
            stdout_failed(e);
        }
    }};
    ($($arg:tt)*) => { out!(to std::io::stdout().lock(); $($arg)*) };
}

/// Ends the program after a write to stdout failed: quietly when the reader went away.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("pixelflow: cannot write to stdout: {e}");
    std::process::exit(3);
}

#[derive(Parser)]
#[command(name = "pixelflow", version, about = "Step Functions for images, on your own machine")]
struct Cli {
    /// Where the history database, the watch folder and the outputs live.
    #[arg(long, global = true, env = "PIXELFLOW_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and run workflows (Amazon States Language definitions).
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Browse the execution history.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Answer tasks that wait for a callback (`.waitForTaskToken`).
    #[command(subcommand)]
    Task(TaskCommand),
    /// Run a workflow over images and folders (recursively) as one batch, with progress and a summary.
    Run(RunArgs),
    /// Resume executions left unfinished by a crash or Ctrl-C (all of them, or those named).
    Resume { executions: Vec<String> },
    /// Watch folders: manage the rules, or run the headless service (`watch` alone runs it too).
    #[command(args_conflicts_with_subcommands = true)]
    Watch {
        #[command(subcommand)]
        command: Option<WatchCommand>,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Upload the output files of executions to S3 or Azure Blob (run again to resume).
    Export(ExportArgs),
    /// Print the data directory's paths.
    Paths,
    /// Check what this machine offers: the database, the GPU adapter, ONNX Runtime, cloud profiles.
    Doctor {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Image files and folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The workflow (default: the bundled reference pipeline).
    #[arg(long)]
    workflow: Option<PathBuf>,
    /// Where outputs go (default: `output/` in the data dir). Each image's outputs go to the
    /// folder it was found in, relative to the folder given, mirrored under this one.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Every output directly in --out, not in mirrored folders. Images whose outputs would
    /// take the same names (same file name, in different folders) are refused, not overwritten.
    #[arg(long)]
    flat: bool,
    /// Images processed at once (default: the number of cores).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Process images again even when the history has their result for this workflow.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum WatchCommand {
    /// Add a rule: run a workflow on every complete file that lands in FOLDER.
    Add(AddRuleArgs),
    /// The rules, with their state and last error.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Each rule's state, last error, queue depth, executions in flight and files processed
    /// and failed since the running service started serving it.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule.
    Remove { id: i64 },
    /// Stop serving a rule (it stays stored).
    Pause { id: i64 },
    /// Serve a paused rule again.
    Resume { id: i64 },
    /// Run headless: resume unfinished executions, then serve every active rule (with no
    /// rule stored, the watch folder of the data dir with the default workflow).
    Run(ServiceArgs),
}

#[derive(Args)]
struct AddRuleArgs {
    /// The folder to watch.
    folder: PathBuf,
    /// A workflow file or a bundled workflow's name (default: the bundled reference pipeline).
    #[arg(long)]
    workflow: Option<String>,
    /// Where outputs go (default: `output/` in the data dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Watch subfolders too.
    #[arg(long)]
    recursive: bool,
    /// Only files matching this glob (the path under FOLDER or the file name); repeatable.
    /// Default: images by extension.
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Never files matching this glob; repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Executions run at once for this rule.
    #[arg(long, short = 'j', default_value_t = pixelflow_app::watch::DEFAULT_JOBS)]
    jobs: usize,
    /// What to do with the original after a success: leave it, or move it to `done/` in FOLDER.
    #[arg(long, default_value = "leave", value_parser = parse_action)]
    on_success: OriginalAction,
    /// What to do with the original after a failure: leave it, or move it to `failed/` in FOLDER.
    #[arg(long, default_value = "leave", value_parser = parse_action)]
    on_failure: OriginalAction,
}

fn parse_action(s: &str) -> Result<OriginalAction, String> {
    s.parse()
}

/// The service's options; they shape the default rule used only when no rule is stored.
#[derive(Args)]
struct ServiceArgs {
    /// The folder to watch when no rule is stored (default: `watch/` in the data dir).
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Where outputs go when no rule is stored (default: `output/` in the data dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The workflow (file or bundled name) when no rule is stored (default: the reference pipeline).
    #[arg(long)]
    workflow: Option<String>,
    /// Scan the folders every SECONDS instead of using the OS's change events (network volumes,
    /// where those events miss remote changes). Without it, polling is used only when the OS
    /// refuses more watches.
    #[arg(long, value_name = "SECONDS", env = "PIXELFLOW_WATCH_POLL", value_parser = parse_seconds)]
    poll: Option<std::time::Duration>,
}

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("not a number of seconds: {s}"))?;
    if !(0.05..=3600.0).contains(&secs) {
        return Err("the poll interval must be between 0.05 and 3600 seconds".into());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[derive(Args)]
struct ExportArgs {
    /// `s3://bucket/prefix/` or `az://container/prefix/`; the prefix may use {variant}, {execution}, {date}.
    destination: String,
    /// An execution (id or unique prefix); repeatable.
    #[arg(long = "execution", value_name = "ID")]
    executions: Vec<String>,
    /// Executions started at or after (RFC 3339, a date, or ms since the epoch).
    #[arg(long)]
    since: Option<String>,
    /// Executions of this workflow.
    #[arg(long)]
    workflow: Option<String>,
    /// Print what would go where; upload nothing.
    #[arg(long)]
    dry_run: bool,
    /// always, never or ifChanged (skip objects that already hold the same content).
    #[arg(long, default_value = "ifChanged")]
    overwrite: String,
    /// AWS profile (from ~/.aws/credentials and ~/.aws/config).
    #[arg(long)]
    profile: Option<String>,
    /// AWS region.
    #[arg(long)]
    region: Option<String>,
    /// A custom endpoint (an S3-compatible server, an Azure blob endpoint).
    #[arg(long)]
    endpoint: Option<String>,
    /// Files uploaded at once.
    #[arg(long)]
    concurrency: Option<usize>,
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Run a workflow to its end: prints the output JSON (exit 0) or {"error","cause"} (exit 1).
    Run {
        definition: PathBuf,
        /// The input JSON file (`-` for stdin); `{}` when absent.
        #[arg(long)]
        input: Option<PathBuf>,
        /// A name for the execution (default: its id).
        #[arg(long)]
        name: Option<String>,
    },
    /// Check a definition; prints every fault with its JSON pointer (exit 2) or "valid" (exit 0).
    Validate { definition: PathBuf },
    /// List the bundled workflows.
    List,
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Executions, newest first.
    List(ListArgs),
    /// One execution with its event history (an id or a unique prefix of one).
    Show {
        execution: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete the executions that ended before a time, with their events. Running and waiting
    /// executions stay, and so does the results cache (images already done are not done again).
    /// The database reuses the space for what comes next; the file does not shrink.
    Prune {
        /// RFC 3339, a date (2026-09-01), or ms since the epoch.
        #[arg(long, value_name = "TIME")]
        before: String,
    },
}

#[derive(Args)]
struct ListArgs {
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    workflow: Option<String>,
    /// Started at or after (RFC 3339, a date, or ms since the epoch).
    #[arg(long)]
    since: Option<String>,
    /// Text to look for in the id, name, workflow or input.
    #[arg(long)]
    text: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Complete a waiting task with an output (JSON, default `{}`).
    Success {
        token: String,
        #[arg(long)]
        output: Option<String>,
    },
    /// Fail a waiting task with an error name and cause.
    Failure {
        token: String,
        #[arg(long, default_value = "Pixelflow.Rejected")]
        error: String,
        #[arg(long, default_value = "")]
        cause: String,
    },
    /// Tasks waiting for an answer.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// A failure that maps to one of the documented exit codes.
enum Exit {
    Invalid(String),
    Env(anyhow::Error),
}

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Self {
        Exit::Env(e)
    }
}

impl From<Error> for Exit {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(d) => Exit::Invalid(d.to_string()),
            Error::NotFound(m) => Exit::Invalid(m),
            other => Exit::Env(other.into()),
        }
    }
}

/// mimalloc instead of the system allocator: a Map runs its items on up to 40 threads, each
/// allocating its items' values and keys, and glibc's allocator was a third of the engine's time
/// (`bench/engine.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PIXELFLOW_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rusqlite_migration=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        // Ctrl-C and SIGTERM stop cleanly: the running execution stays RUNNING and resumes later.
        let _ = ctrlc::set_handler(move || cancel.cancel());
    }
    match run(cli, &cancel) {
        Ok(code) => code,
        Err(Exit::Invalid(msg)) => {
            eprintln!("pixelflow: {msg}");
            ExitCode::from(2)
        }
        Err(Exit::Env(e)) => {
            eprintln!("pixelflow: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn open(data_dir: Option<PathBuf>) -> Result<App, Exit> {
    let root = data_dir
        .or_else(DataDir::default_root)
        .ok_or_else(|| Exit::Env(anyhow::anyhow!("no data directory: pass --data-dir or set PIXELFLOW_DATA_DIR")))?;
    App::open(DataDir::new(root)).map_err(Exit::from)
}

fn run(cli: Cli, cancel: &CancelToken) -> Result<ExitCode, Exit> {
    match cli.command {
        Command::Workflow(WorkflowCommand::Validate { definition }) => {
            let steps = pixelflow_app::steps::registry();
            Workflow::load(&definition, &steps).map_err(|e| prefix_path(&definition, e))?;
            out!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Workflow(WorkflowCommand::List) => {
            for (name, _) in pixelflow_app::workflow::BUNDLED {
                out!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Workflow(WorkflowCommand::Run { definition, input, name }) => {
            let app = open(cli.data_dir)?;
            let input = read_input(input.as_deref())?;
            let workflow = match Workflow::load(&definition, app.steps()) {
                Ok(w) => w,
                Err(Error::Invalid(diags)) => {
                    // The refused attempt is recorded, and nothing else.
                    let text = std::fs::read_to_string(&definition).unwrap_or_default();
                    let failure = Failure::new(pixelflow_history::VALIDATION_ERROR, diags.to_string());
                    execution::reject(&app, &pixelflow_app::workflow::name_of(&definition), &text, input, &failure)?;
                    return Err(prefix_path(&definition, Error::Invalid(diags)));
                }
                Err(e) => return Err(prefix_path(&definition, e)),
            };
            let result = execution::start(&app, &workflow, input, name.as_deref(), cancel)?;
            Ok(report(&result))
        }
        Command::Run(args) => {
            let app = open(cli.data_dir)?;
            let workflow = match &args.workflow {
                Some(path) => Workflow::load(path, app.steps()).map_err(|e| prefix_path(path, e))?,
                None => Workflow::bundled(pixelflow_app::workflow::DEFAULT_WORKFLOW, app.steps())?,
            };
            let inputs = batch::collect_inputs(&args.inputs)?;
            if inputs.is_empty() {
                return Err(Exit::Invalid("no images found in the inputs given".to_string()));
            }
            let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let opts = BatchOptions { jobs, force: args.force, out: args.out.unwrap_or_else(|| app.data().output_dir()), flat: args.flat };
            let bar = Arc::new(ProgressBar::new());
            let report = batch::run(&app, &workflow, inputs, &opts, bar.clone(), cancel)?;
            bar.finish();
            print_report(&report, args.json)
        }
        Command::Resume { executions } => {
            let app = open(cli.data_dir)?;
            let results = if executions.is_empty() {
                execution::resume_orphans(&app, cancel)?
            } else {
                executions.iter().map(|id| execution::resume(&app, id, cancel)).collect::<Result<Vec<_>, _>>()?
            };
            if results.is_empty() {
                eprintln!("nothing to resume");
            }
            let mut code = ExitCode::SUCCESS;
            for r in &results {
                let line = match &r.finished {
                    Finished::Succeeded(_) => "SUCCEEDED".to_string(),
                    Finished::Failed(f) => format!("FAILED {f}"),
                    Finished::TimedOut(f) => format!("TIMED_OUT {f}"),
                    Finished::Interrupted => {
                        code = ExitCode::from(130);
                        "INTERRUPTED".to_string()
                    }
                };
                out!("{} {line}", r.id);
            }
            Ok(code)
        }
        Command::History(HistoryCommand::List(args)) => {
            let app = open(cli.data_dir)?;
            let status = args.status.as_deref().map(str::parse::<ExecutionStatus>).transpose().map_err(Exit::Invalid)?;
            let filter = ExecutionFilter {
                status,
                workflow: args.workflow,
                since: args.since,
                text: args.text,
                limit: Some(args.limit),
                ..Default::default()
            };
            let rows = app.history().list_executions(&filter).map_err(Error::from)?;
            if args.json {
                out!("{}", serde_json::to_string_pretty(&rows).context("serializing")?);
            } else {
                for r in rows {
                    out!(
                        "{}  {:<9}  {:<20}  {}  {}",
                        r.id,
                        r.status.as_str(),
                        r.workflow_name,
                        time(r.started_at_ms),
                        r.error.unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::History(HistoryCommand::Show { execution, json }) => {
            use std::io::Write as _;
            let app = open(cli.data_dir)?;
            let history = app.history();
            let record = history
                .execution(&execution)
                .map_err(Error::from)?
                .ok_or_else(|| Exit::Invalid(format!("no execution '{execution}'")))?;
            // The events are read and printed a page at a time: a 40,000-image batch has over
            // half a million, and holding them all took 1.2 GB.
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            if json {
                let shown = ShownExecution { execution: &record, events: EventList(history.events_iter(&record.id).into()) };
                if let Err(e) = serde_json::to_writer_pretty(&mut w, &shown) {
                    match e.io_error_kind() {
                        Some(kind) => stdout_failed(kind.into()),
                        None => return Err(Exit::Env(anyhow::anyhow!("reading the history: {e}"))),
                    }
                }
                out!(to w; "");
            } else {
                out!(to w; "execution  {}", record.id);
                out!(to w; "name       {}", record.name);
                out!(to w; "workflow   {} ({})", record.workflow_name, &record.workflow_hash[..record.workflow_hash.len().min(12)]);
                out!(to w; "status     {}", record.status.as_str());
                out!(to w; "started    {}", time(record.started_at_ms));
                if let Some(stopped) = record.stopped_at_ms {
                    out!(to w; "stopped    {}", time(stopped));
                }
                out!(to w; "input      {}", record.input);
                if let Some(output) = &record.output {
                    out!(to w; "output     {output}");
                }
                if let Some(error) = &record.error {
                    out!(to w; "error      {error}");
                    out!(to w; "cause      {}", record.cause.as_deref().unwrap_or(""));
                }
                out!(to w; "events");
                for event in history.events_iter(&record.id) {
                    let e = event.map_err(Error::from)?;
                    out!(to w; "  {:>5}  {}  {:<28} {}", e.seq, time(e.timestamp_ms), e.kind, e.state.unwrap_or_default());
                }
            }
            w.flush().unwrap_or_else(|e| stdout_failed(e));
            Ok(ExitCode::SUCCESS)
        }
        Command::History(HistoryCommand::Prune { before }) => {
            let before_ms = pixelflow_history::parse_time(&before).map_err(|e| Exit::Invalid(e.to_string()))?;
            let app = open(cli.data_dir)?;
            let deleted = app.history().prune(before_ms).map_err(Error::from)?;
            out!("deleted {deleted} execution(s) that ended before {}", time(before_ms));
            Ok(ExitCode::SUCCESS)
        }
        Command::Task(TaskCommand::Success { token, output }) => {
            let app = open(cli.data_dir)?;
            let output: Value = match output {
                Some(text) => serde_json::from_str(&text).map_err(|e| Exit::Invalid(format!("--output is not valid JSON: {e}")))?,
                None => json!({}),
            };
            let id = execution::answer_token(&app, &token, TokenOutcome::Succeeded(output))?;
            eprintln!("task of execution {id} succeeded");
            Ok(ExitCode::SUCCESS)
        }
        Command::Task(TaskCommand::Failure { token, error, cause }) => {
            let app = open(cli.data_dir)?;
            let id = execution::answer_token(&app, &token, TokenOutcome::Failed(Failure::new(error, cause)))?;
            eprintln!("task of execution {id} failed");
            Ok(ExitCode::SUCCESS)
        }
        Command::Task(TaskCommand::List { json }) => {
            let app = open(cli.data_dir)?;
            let pending = app.history().pending_tokens().map_err(Error::from)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&pending).context("serializing")?);
            } else {
                for p in pending {
                    out!("{}  {}  {}  {}", p.token, p.execution_id, p.state, time(p.created_at_ms));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { command, service } => watch(cli.data_dir, command.unwrap_or(WatchCommand::Run(service)), cancel),
        Command::Paths => {
            let app = open(cli.data_dir)?;
            out!("data      {}", app.data().root().display());
            out!("database  {}", app.data().database().display());
            out!("watch     {}", app.data().watch_dir().display());
            out!("output    {}", app.data().output_dir().display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => export(cli.data_dir, args, cancel),
        Command::Doctor { json } => {
            use pixelflow_app::doctor::{self, Status};
            let app = open(cli.data_dir)?;
            let checks = doctor::run(&app);
            if json {
                out!("{}", serde_json::to_string_pretty(&checks).map_err(|e| Exit::Env(e.into()))?);
            } else {
                for c in &checks {
                    let mark = match c.status {
                        Status::Ok => "ok  ",
                        Status::Warn => "warn",
                        Status::Fail => "FAIL",
                    };
                    out!("{mark}  {:<12} {}", c.part, c.detail);
                }
            }
            // Exit 1 when a part is broken, so scripts can gate on it.
            Ok(if checks.iter().any(|c| c.status == Status::Fail) { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}

/// `pixelflow export`: prints the report (JSON) on stdout; exit 1 when a file failed, with
/// the first failure as the report's `error`.
fn export(data_dir: Option<PathBuf>, args: ExportArgs, cancel: &CancelToken) -> Result<ExitCode, Exit> {
    use pixelflow_app::export::{self, ExportOptions};
    let overwrite = serde_json::from_value(json!(args.overwrite)).map_err(|_| Exit::Invalid(format!("--overwrite: '{}' is not always, never or ifChanged", args.overwrite)))?;
    let app = open(data_dir)?;
    let options = ExportOptions {
        destination: args.destination,
        executions: args.executions,
        since: args.since,
        workflow: args.workflow,
        dry_run: args.dry_run,
        store: pixelflow_sync::StoreOptions { profile: args.profile, region: args.region, endpoint: args.endpoint, credentials: None },
        overwrite,
        concurrency: args.concurrency,
    };
    let report = export::run(&app, &options, cancel)?;
    out!("{}", serde_json::to_string_pretty(&report).map_err(|e| Exit::Env(e.into()))?);
    eprintln!(
        "export to {}: {} files, {} uploaded, {} unchanged, {} kept, {} failed",
        report.destination, report.total, report.uploaded, report.unchanged, report.kept, report.failed
    );
    if cancel.is_cancelled() {
        return Ok(ExitCode::from(130));
    }
    Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn watch(data_dir: Option<PathBuf>, command: WatchCommand, cancel: &CancelToken) -> Result<ExitCode, Exit> {
    use pixelflow_app::watch::{self, RuleSpec};
    let app = open(data_dir)?;
    match command {
        WatchCommand::Add(a) => {
            let spec = RuleSpec {
                folder: a.folder,
                recursive: a.recursive,
                include: a.include,
                exclude: a.exclude,
                workflow: a.workflow,
                out: a.out,
                jobs: Some(a.jobs),
                on_success: a.on_success,
                on_failure: a.on_failure,
            };
            let rule = watch::add_rule(&app, &spec)?;
            out!("{}", rule.id);
            eprintln!("watch rule {} added: {} -> {} ({})", rule.id, rule.folder, rule.output, rule.workflow);
        }
        WatchCommand::List { json } => {
            let rules = watch::list_rules(&app)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&rules).context("serializing")?);
            } else {
                for r in rules {
                    let state = if r.paused { "paused" } else { "active" };
                    out!(
                        "{:>4}  {:<6}  {}{}  -> {}  {}  jobs {}  success:{} failure:{}{}",
                        r.id,
                        state,
                        r.folder,
                        if r.recursive { " (recursive)" } else { "" },
                        r.output,
                        r.workflow,
                        r.concurrency,
                        r.on_success.as_str(),
                        r.on_failure.as_str(),
                        r.last_error.map(|e| format!("  error: {e}")).unwrap_or_default()
                    );
                }
            }
        }
        WatchCommand::Status { json } => {
            let statuses = watch::status(&app)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&statuses).context("serializing")?);
            } else {
                if !statuses.iter().any(|s| s.service_pid.is_some()) {
                    out!("no watch service is running (start one with `pixelflow watch run`)");
                }
                for s in statuses {
                    out!(
                        "{:>4}  {:<7}  {}  queued {}  in flight {}  processed {}  failed {}  skipped {}{}",
                        s.id,
                        s.state,
                        s.folder.as_deref().unwrap_or("(default folder)"),
                        s.queued,
                        s.in_flight,
                        s.processed,
                        s.failed,
                        s.skipped,
                        match (&s.watching, s.last_error) {
                            (_, Some(e)) => format!("  error: {e}"),
                            (Some(w), None) if w != watch::WATCHING_EVENTS => format!("  {w}"),
                            _ => String::new(),
                        }
                    );
                }
            }
        }
        WatchCommand::Remove { id } => {
            watch::remove_rule(&app, id)?;
            eprintln!("watch rule {id} removed");
        }
        WatchCommand::Pause { id } => {
            watch::set_paused(&app, id, true)?;
            eprintln!("watch rule {id} paused");
        }
        WatchCommand::Resume { id } => {
            watch::set_paused(&app, id, false)?;
            eprintln!("watch rule {id} resumed");
        }
        WatchCommand::Run(service) => {
            let mut fallback = RuleSpec::new(service.folder.unwrap_or_else(|| app.data().watch_dir()));
            fallback.recursive = true;
            fallback.out = service.out;
            fallback.workflow = service.workflow;
            watch::run_with(&app, &fallback, &watch::ServiceOptions { poll: service.poll }, cancel)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The batch progress bar on stderr (hidden when stderr is not a terminal).
struct ProgressBar {
    bar: indicatif::ProgressBar,
}

impl ProgressBar {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:32} {pos}/{len} images  {per_sec}  ETA {eta}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        ProgressBar { bar }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl batch::Progress for ProgressBar {
    fn start(&self, to_run: usize, cached: usize) {
        self.bar.set_length(to_run as u64);
        if cached > 0 {
            self.bar.set_message(format!("({cached} already done)"));
        }
    }

    fn item_finished(&self, path: &Path, ok: bool) {
        if !ok {
            self.bar.println(format!("failed: {}", path.display()));
        }
        self.bar.inc(1);
    }
}

fn print_report(report: &batch::BatchReport, json: bool) -> Result<ExitCode, Exit> {
    use batch::ItemOutcome::*;
    let processed = report.count(|o| matches!(o, Processed { .. }));
    let cached = report.count(|o| matches!(o, Cached { .. }));
    let failed = report.count(|o| matches!(o, Failed { .. }));
    if json {
        out!("{}", serde_json::to_string_pretty(report).context("serializing")?);
    } else {
        for item in &report.items {
            if let Failed { error, cause } = &item.outcome {
                out!("FAILED  {}  {error}: {cause}", item.path.display());
            }
        }
        let secs = report.elapsed.as_secs_f64();
        out!(
            "{processed} processed, {cached} already done, {failed} failed in {secs:.1}s ({:.1} images/s); {} in, {} out",
            processed as f64 / secs.max(1e-9),
            human_bytes(report.bytes_in),
            human_bytes(report.bytes_out),
        );
        if let Some(id) = &report.execution_id {
            out!("execution {id}");
        }
    }
    Ok(if report.interrupted {
        eprintln!("pixelflow: interrupted; run the same command again to continue");
        ExitCode::from(130)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// Prints an execution's result by the CLI contract and returns its exit code.
fn report(result: &ExecutionResult) -> ExitCode {
    match &result.finished {
        Finished::Succeeded(output) => {
            out!("{}", serde_json::to_string_pretty(output).unwrap_or_else(|_| output.to_string()));
            ExitCode::SUCCESS
        }
        Finished::Failed(f) | Finished::TimedOut(f) => {
            out!("{}", json!({ "error": f.error, "cause": f.cause }));
            ExitCode::from(1)
        }
        Finished::Interrupted => {
            eprintln!("pixelflow: interrupted; `pixelflow resume {}` continues where it stopped", result.id);
            ExitCode::from(130)
        }
    }
}

fn prefix_path(path: &Path, e: Error) -> Exit {
    match e {
        Error::Invalid(d) => Exit::Invalid(format!(
            "{} is not a valid workflow:\n{}",
            path.display(),
            d.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
        )),
        other => Exit::from(other),
    }
}

fn read_input(path: Option<&Path>) -> Result<Value, Exit> {
    let Some(path) = path else { return Ok(json!({})) };
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .take(execution::MAX_INPUT_BYTES as u64 + 1)
            .read_to_string(&mut s)
            .map_err(|e| Exit::Invalid(format!("cannot read the input from stdin: {e}")))?;
        s
    } else {
        pixelflow_app::workflow::read_limited(path, execution::MAX_INPUT_BYTES)?
    };
    serde_json::from_str(&text).map_err(|e| Exit::Invalid(format!("the input {} is not valid JSON: {e}", path.display())))
}

/// `history show --json`: the execution and its events, written as they are read.
#[derive(serde::Serialize)]
struct ShownExecution<'a> {
    execution: &'a pixelflow_history::ExecutionRecord,
    events: EventList<'a>,
}

/// Serializes as a JSON array of the events the iterator reads; a read error ends the output.
struct EventList<'a>(std::cell::RefCell<pixelflow_history::EventsIter<'a>>);

impl serde::Serialize for EventList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq as _};
        let mut seq = serializer.serialize_seq(None)?;
        for event in &mut *self.0.borrow_mut() {
            seq.serialize_element(&event.map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

/// Formats ms since the epoch as RFC 3339 (UTC, seconds).
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}
