//! Cloud sync (issue 6): sends files to S3 (and S3-compatible servers) and Azure Blob, from the
//! `pixelflow:sync` step and from `pixelflow export`, through Apache Arrow's `object_store`
//! (request signing, multipart, retries with backoff and jitter).
//!
//! * [`destination`]: `s3://bucket/prefix/{variant}/` and `az://container/prefix/` URLs and
//!   the keys made from them (never a `..` key).
//! * [`store`]: credentials (AWS variables and profiles; Azure variables and connection
//!   strings), the retry policy, and the one tokio runtime the synchronous callers block on.
//! * [`upload`]: skip-if-unchanged (blake3 metadata, HEAD first), single or multipart PUT,
//!   integrity check (the service's own checksums, per part before a multipart commit), bounded concurrency, and the [`UploadLog`] a confirmed upload goes to.
//! * [`step`]: the `pixelflow:sync` Task resource.

pub mod destination;
pub mod error;
pub mod step;
pub mod store;
pub mod upload;

pub use destination::{Destination, KeyVars, Service};
pub use error::{Error, Result};
pub use step::register;
pub use store::{open, Credentials, Store, StoreOptions};
pub use upload::{upload_all, Action, Item, NoLog, Outcome, Overwrite, UploadLog, UploadOptions, UploadRecord};
