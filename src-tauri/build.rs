//! Generates the Tauri context and the permissions of the app's own commands: each command
//! gets `allow-<name>`, and the capability in `capabilities/main.json` grants only those the
//! UI calls (an app command not listed in the manifest cannot be called at all).

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(&[
        "app_info",
        "list_workflows",
        "validate_workflow",
        "save_workflow",
        "start_run",
        "cancel_run",
        "list_executions",
        "execution_detail",
        "pending_tasks",
        "answer_tasks",
        "watch_rules",
        "watch_add",
        "watch_set_paused",
        "watch_remove",
        "doctor",
        "execution_events",
        "get_settings",
        "set_settings",
        "list_profiles",
        "save_profile",
        "remove_profile",
        "export_preview",
        "start_export",
        "cancel_export",
        "prune_history",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)).expect("tauri-build failed");
}
