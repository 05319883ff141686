//! Workflows: ASL definitions loaded from files or bundled with the app, validated against the
//! steps this build offers, named and hashed so the history can tell versions apart.

use std::path::Path;

use pixelflow_engine::{asl, Diagnostics, StateMachine, StepRegistry};

use crate::error::{Error, Result};

/// The largest definition accepted (the AWS limit is 1 MB as well).
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;

/// The workflows shipped inside the binary, by name.
pub const BUNDLED: &[(&str, &str)] = &[
    ("image-pipeline", include_str!("../../../workflows/image-pipeline.asl.json")),
    ("image-batch", include_str!("../../../workflows/image-batch.asl.json")),
    ("thumbnail", include_str!("../../../workflows/thumbnail.asl.json")),
];

/// The workflow the app runs when nothing else is chosen.
pub const DEFAULT_WORKFLOW: &str = "image-pipeline";

#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    /// blake3 of the definition text: two runs of the same text share it.
    pub hash: String,
    pub text: String,
    pub machine: StateMachine,
}

impl Workflow {
    /// Validates a definition given as text.
    pub fn from_text(name: &str, text: &str, steps: &StepRegistry) -> Result<Workflow, Diagnostics> {
        if text.len() > MAX_DEFINITION_BYTES {
            let mut d = Diagnostics::default();
            d.push("", format!("the definition is {} bytes, more than the {MAX_DEFINITION_BYTES} accepted", text.len()));
            return Err(d);
        }
        let machine = asl::parse_str(text, steps)?;
        Ok(Workflow { name: name.to_string(), hash: blake3::hash(text.as_bytes()).to_hex().to_string(), text: text.to_string(), machine })
    }

    /// Loads and validates a definition file; its name is the file name without `.asl.json` / `.json`.
    pub fn load(path: &Path, steps: &StepRegistry) -> Result<Workflow> {
        let text = read_limited(path, MAX_DEFINITION_BYTES)?;
        Workflow::from_text(&name_of(path), &text, steps).map_err(Error::Invalid)
    }

    /// A bundled workflow by name.
    pub fn bundled(name: &str, steps: &StepRegistry) -> Result<Workflow> {
        let (_, text) = BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| Error::NotFound(format!("no bundled workflow named '{name}'")))?;
        Workflow::from_text(name, text, steps).map_err(Error::Invalid)
    }
}

/// The workflow name a file gives: `workflows/image-pipeline.asl.json` -> `image-pipeline`.
pub fn name_of(path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = file.strip_suffix(".asl.json").or_else(|| file.strip_suffix(".json")).unwrap_or(&file);
    if stem.is_empty() { "workflow".to_string() } else { stem.to_string() }
}

/// Reads a text file, refusing one larger than `limit` before reading it whole.
pub fn read_limited(path: &Path, limit: usize) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > limit as u64 {
        return Err(Error::invalid("", format!("{} is {} bytes, more than the {limit} accepted", path.display(), meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|_| Error::invalid("", format!("{} is not UTF-8 text", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_workflows_are_valid() {
        let steps = crate::steps::registry();
        for (name, _) in BUNDLED {
            if let Err(e) = Workflow::bundled(name, &steps) {
                panic!("bundled workflow {name} is invalid: {e}");
            }
        }
    }

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(name_of(Path::new("a/image-pipeline.asl.json")), "image-pipeline");
        assert_eq!(name_of(Path::new("b.json")), "b");
    }
}
