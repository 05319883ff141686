//! The Pixelflow desktop app: a thin Tauri 2 shell over `pixelflow_app`, like the CLI.
//!
//! Each command (module `commands`) takes the state and its arguments, makes one call into
//! `pixelflow_app` and maps the error to [`error::CommandError`]. Long work never runs inside a
//! command: `start_run` returns at once and the batch's progress arrives on the run's own
//! channel, throttled by `pixelflow_app::desktop` to at most 10 messages a second. At start the
//! app opens the data dir (`PIXELFLOW_DATA_DIR`, else the user's data dir) and serves the
//! watch folders in the background, as `pixelflow watch` does, unless another service already
//! serves them (`PIXELFLOW_DESKTOP_WATCH=0` turns that off).

mod commands;
mod error;
pub mod keychain;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use pixelflow_app::desktop::{self, DeviceDefault};
use pixelflow_app::profiles::Keychain;
use pixelflow_app::{App, DataDir};
use pixelflow_engine::CancelToken;
use tauri::Manager;

/// What the commands share.
pub struct Desktop {
    pub app: App,
    /// The cancel token of each batch under way, by run id.
    pub runs: Mutex<HashMap<String, CancelToken>>,
    pub next_run: AtomicU64,
    /// Stops the background watch service at exit.
    pub service: CancelToken,
    /// Why the background watch service is not running (another one serves the data dir...).
    pub service_note: Mutex<Option<String>>,
    /// Set once the app started closing.
    pub exiting: AtomicBool,
    /// The filter steps' default device (Settings), read by the steps of `app`.
    pub device: DeviceDefault,
    /// Where cloud profile secrets live.
    pub keychain: Box<dyn Keychain>,
    /// The cancel token of each export under way, by export id.
    pub exports: Mutex<HashMap<String, CancelToken>>,
}

impl Desktop {
    /// The app with the saved settings applied (the GPU setting reaches its filter steps), and
    /// the OS keychain.
    pub fn new(app: App) -> Self {
        Desktop::with_keychain(app, Box::new(keychain::OsKeychain))
    }

    pub fn with_keychain(app: App, keychain: Box<dyn Keychain>) -> Self {
        let device = DeviceDefault::new(&desktop::load_settings(&app).device);
        let app = desktop::with_device_default(app, &device);
        Desktop {
            app,
            device,
            keychain,
            exports: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
            next_run: AtomicU64::new(1),
            service: CancelToken::new(),
            service_note: Mutex::new(None),
            exiting: AtomicBool::new(false),
        }
    }
}

/// Registers the plugins, the state and the commands on `builder` (tests pass a mock one).
pub fn run_app<R: tauri::Runtime>(builder: tauri::Builder<R>, desktop: Desktop) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .manage(desktop)
        .setup(|app| {
            let desktop = app.state::<Desktop>();
            // Outputs land here: the UI shows them through the asset protocol.
            let out = desktop.app.data().output_dir();
            if let Err(e) = app.asset_protocol_scope().allow_directory(&out, true) {
                tracing::warn!(error = %e, "could not allow the output folder to the viewer");
            }
            if std::env::var("PIXELFLOW_DESKTOP_WATCH").as_deref() != Ok("0") {
                commands::start_watch_service(app.handle().clone());
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::list_workflows,
            commands::validate_workflow,
            commands::save_workflow,
            commands::start_run,
            commands::cancel_run,
            commands::list_executions,
            commands::execution_detail,
            commands::pending_tasks,
            commands::answer_tasks,
            commands::watch_rules,
            commands::watch_add,
            commands::watch_set_paused,
            commands::watch_remove,
            commands::doctor,
            commands::execution_events,
            commands::get_settings,
            commands::set_settings,
            commands::list_profiles,
            commands::save_profile,
            commands::remove_profile,
            commands::export_preview,
            commands::start_export,
            commands::cancel_export,
            commands::prune_history,
        ])
}

/// Opens the data dir and runs the window until it is closed.
pub fn run() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PIXELFLOW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rusqlite_migration=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let Some(root) = std::env::var_os("PIXELFLOW_DATA_DIR").map(Into::into).or_else(DataDir::default_root) else {
        eprintln!("pixelflow-desktop: no data directory: set PIXELFLOW_DATA_DIR");
        return std::process::ExitCode::from(3);
    };
    let app = match App::open(DataDir::new(root)) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("pixelflow-desktop: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    let built = run_app(tauri::Builder::default(), Desktop::new(app)).build(tauri::generate_context!());
    match built {
        Ok(tauri_app) => {
            tauri_app.run(|handle, event| {
                if let tauri::RunEvent::ExitRequested { api, .. } = event {
                    let desktop = handle.state::<Desktop>();
                    if desktop.exiting.swap(true, Ordering::SeqCst) {
                        return;
                    }
                    // Batches under way stop cleanly, as Ctrl-C stops `pixelflow run`: what
                    // finished is kept and running them again continues. The window is gone
                    // already; the process waits for them (10 s at most) before it exits.
                    desktop.service.cancel();
                    let runs = desktop.runs.lock().unwrap_or_else(|e| e.into_inner());
                    if runs.is_empty() {
                        return;
                    }
                    runs.values().for_each(CancelToken::cancel);
                    desktop.exports.lock().unwrap_or_else(|e| e.into_inner()).values().for_each(CancelToken::cancel);
                    api.prevent_exit();
                    let handle = handle.clone();
                    std::thread::spawn(move || {
                        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                        while std::time::Instant::now() < deadline
                            && !handle.state::<Desktop>().runs.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
                        {
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                        handle.exit(0);
                    });
                }
            });
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pixelflow-desktop: cannot open the window: {e}");
            std::process::ExitCode::from(3)
        }
    }
}
