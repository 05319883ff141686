//! Uploads every file of a folder to a destination with the code of the sync step and
//! `pixelflow export` (`upload_all`), recording nothing. For bench/sync.sh when a release build
//! of the whole `pixelflow` binary is not at hand:
//!
//!     cargo run --release -p pixelflow-sync --example upload -- s3://bucket/prefix/ DIR [CONCURRENCY [PART_MIB [PART_CONCURRENCY]]]

use std::path::PathBuf;

use pixelflow_sync::{Destination, Item, KeyVars, NoLog, StoreOptions, UploadOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dest, dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: upload DESTINATION DIR [CONCURRENCY [PART_MIB [PART_CONCURRENCY]]]");
        std::process::exit(2);
    };
    let destination = Destination::parse(dest).unwrap_or_else(|e| fail(&e));
    let mut options = UploadOptions::default();
    let arg = |i: usize| rest.get(i).and_then(|c| c.parse::<usize>().ok());
    if let Some(c) = arg(0) {
        options.concurrency = c;
    }
    if let Some(mib) = arg(1) {
        options.part_size = mib * 1024 * 1024;
    }
    if let Some(c) = arg(2) {
        options.part_concurrency = c;
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).unwrap_or_else(|e| fail(&e)).filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    let items = paths
        .into_iter()
        .map(|source| {
            let name = source.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let key = destination.key(&KeyVars::default(), &name).unwrap_or_else(|e| fail(&e));
            Item { source, key, execution_id: None }
        })
        .collect();
    let store = pixelflow_sync::open(&destination, &StoreOptions::default()).unwrap_or_else(|e| fail(&e));
    let results = pixelflow_sync::upload_all(&store, items, &options, &NoLog, &|| false);
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!("{} files, {} failed", results.len(), failed.len());
    if let Some(e) = failed.first() {
        fail(e);
    }
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("upload: {e}");
    std::process::exit(1);
}
