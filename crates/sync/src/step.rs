//! The `pixelflow:sync` Task resource: uploads the files a workflow made to a destination.
//!
//! Parameters (camelCase, as in the ASL):
//! `{files, destination, contentType?, cacheControl?, metadata?, storageClass? | accessTier?,
//! overwrite? ("always" | "never" | "ifChanged", default "ifChanged"), profile?, region?,
//! endpoint?, concurrency?}`. `files` is a list of paths, or of objects with a `path` and
//! optionally a `name` (a resize step's `variants` as they are), whose name fills `{variant}`.
//! `{execution}` is the execution id and `{date}` today's UTC date.
//!
//! Answer: `{destination, uploaded, unchanged, kept, objects: [{key, source, action, etag,
//! size, contentHash}]}`. Idempotent: run again, it finds the objects unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use pixelflow_engine::{Failure, TaskContext};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::destination::{Destination, KeyVars};
use crate::error::{Error, Result};
use crate::store::{self, StoreOptions};
use crate::upload::{self, Action, Item, Overwrite, UploadLog, UploadOptions};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SyncInput {
    files: Vec<FileInput>,
    destination: String,
    content_type: Option<String>,
    cache_control: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    storage_class: Option<String>,
    access_tier: Option<String>,
    #[serde(default)]
    overwrite: Overwrite,
    profile: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    concurrency: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileInput {
    Path(PathBuf),
    Object {
        path: PathBuf,
        #[serde(alias = "variant")]
        name: Option<String>,
    },
}

/// The ASL failure for an error.
pub fn failure(error: Error) -> Failure {
    Failure::new(error.asl_name(), error.to_string())
}

/// `pixelflow:sync`.
pub fn run_sync(input: Value, ctx: &TaskContext, log: &dyn UploadLog) -> Result<Value> {
    let raw: SyncInput = serde_json::from_value(input).map_err(|e| Error::invalid(format!("sync: {e}")))?;
    let destination = Destination::parse(&raw.destination)?;
    let mut options = UploadOptions {
        content_type: raw.content_type,
        cache_control: raw.cache_control,
        metadata: raw.metadata,
        storage_class: raw.storage_class.or(raw.access_tier),
        overwrite: raw.overwrite,
        ..UploadOptions::default()
    };
    if let Some(c) = raw.concurrency {
        options.concurrency = c;
    }
    options.validate()?;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut items = Vec::with_capacity(raw.files.len());
    for file in raw.files {
        let (path, variant) = match file {
            FileInput::Path(p) => (p, None),
            FileInput::Object { path, name } => (path, name),
        };
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| Error::invalid(format!("sync: '{}' has no file name", path.display())))?;
        let vars = KeyVars { variant: variant.as_deref(), execution: Some(&ctx.execution_id), date: Some(&date) };
        let key = destination.key(&vars, name)?;
        items.push(Item { source: path, key, execution_id: Some(ctx.execution_id.clone()) });
    }
    let store = store::open(&destination, &StoreOptions { profile: raw.profile, region: raw.region, endpoint: raw.endpoint, credentials: None })?;
    let stop = || {
        ctx.heartbeat();
        ctx.is_cancelled()
    };
    let results = upload::upload_all(&store, items, &options, log, &stop);
    let mut objects = Vec::with_capacity(results.len());
    let mut first_error = None;
    let mut failed = 0;
    for r in results {
        match r {
            Ok(o) => objects.push(o),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        if failed > 1 {
            tracing::warn!(failed, destination = %destination, "sync: several files failed; reporting the first");
        }
        return Err(e);
    }
    let count = |a: Action| objects.iter().filter(|o| o.action == a).count();
    Ok(json!({
        "destination": destination.to_string(),
        "uploaded": count(Action::Uploaded),
        "unchanged": count(Action::Unchanged),
        "kept": count(Action::Kept),
        "objects": objects,
    }))
}

/// Registers `pixelflow:sync`, recording uploads into `log`.
pub fn register(steps: &mut pixelflow_engine::StepRegistry, log: Arc<dyn UploadLog>) {
    steps.register("sync", move |input: Value, ctx: &TaskContext| run_sync(input, ctx, log.as_ref()).map_err(failure));
}
