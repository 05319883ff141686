//! Reading a filter chain as a workflow writes it (`[{type: "blur", sigma: 2}, ...]`) into
//! [`FilterOp`]s. Shape errors name the filter's index and the field (`filters[1].sigma`);
//! ranges are checked by [`super::FilterChain::new`].

use serde_json::{Map, Value};

use super::{FilterOp, MAX_FILTERS};
use crate::error::{Error, Result};

/// The filter types and the fields each takes (`type` aside).
const TYPES: &[(&str, &[&str])] = &[
    ("brightness", &["amount"]),
    ("contrast", &["amount"]),
    ("saturation", &["amount"]),
    ("hueRotate", &["degrees"]),
    ("gamma", &["value"]),
    ("grayscale", &["amount"]),
    ("sepia", &["amount"]),
    ("invert", &["amount"]),
    ("colorMatrix", &["matrix"]),
    ("vignette", &["strength", "radius"]),
    ("blur", &["sigma"]),
    ("unsharp", &["sigma", "amount", "threshold"]),
    ("convolve", &["kernel", "divisor", "bias", "preserveAlpha"]),
];

/// One filter's object, for reading its fields with errors that say where.
struct Fields<'a> {
    index: usize,
    kind: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn error(&self, field: &str, message: impl std::fmt::Display) -> Error {
        Error::invalid(format!("filters[{}].{field} ({}): {message}", self.index, self.kind))
    }

    /// A field that is absent or `null` is `None`.
    fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn number(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.error(field, format!("must be a number, got {v}"))),
        }
    }

    fn required(&self, field: &str) -> Result<f64> {
        self.number(field)?.ok_or_else(|| self.error(field, "is required (a number)"))
    }

    fn numbers(&self, field: &str) -> Result<Vec<f64>> {
        let items = match self.get(field) {
            Some(Value::Array(items)) => items,
            Some(v) => return Err(self.error(field, format!("must be an array of numbers, got {v}"))),
            None => return Err(self.error(field, "is required (an array of numbers)")),
        };
        // Bounded before anything is collected: the longest list any filter takes is 25.
        if items.len() > 25 {
            return Err(self.error(field, format!("has {} entries, more than any filter takes", items.len())));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_f64().ok_or_else(|| self.error(field, format!("entry {i} must be a number, got {v}"))))
            .collect()
    }

    fn boolean(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.error(field, format!("must be true or false, got {v}"))),
        }
    }
}

/// The filters of a chain, in order.
pub(crate) fn filters(value: &Value) -> Result<Vec<FilterOp>> {
    let items = value.as_array().ok_or_else(|| Error::invalid(format!("filters must be an array of {{type, ...}} objects, got {value}")))?;
    if items.is_empty() || items.len() > MAX_FILTERS {
        return Err(Error::invalid(format!("filters must list 1 to {MAX_FILTERS} filters, got {}", items.len())));
    }
    items.iter().enumerate().map(|(i, item)| filter(i, item)).collect()
}

fn filter(index: usize, item: &Value) -> Result<FilterOp> {
    let map = item.as_object().ok_or_else(|| Error::invalid(format!("filters[{index}] must be an object such as {{\"type\": \"blur\", \"sigma\": 2}}, got {item}")))?;
    let kind = match map.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(Error::invalid(format!("filters[{index}].type must be a string, got {other}"))),
        None => return Err(Error::invalid(format!("filters[{index}].type is required"))),
    };
    let Some((kind, known)) = TYPES.iter().find(|(name, _)| *name == kind) else {
        let names: Vec<&str> = TYPES.iter().map(|(name, _)| *name).collect();
        return Err(Error::invalid(format!("filters[{index}].type: unknown filter '{kind}' (one of {})", names.join(", "))));
    };
    let f = Fields { index, kind, map };
    if let Some(field) = map.keys().find(|k| k.as_str() != "type" && !known.contains(&k.as_str())) {
        return Err(f.error(field, format!("unknown field (a {kind} filter takes {})", known.join(", "))));
    }
    Ok(match *kind {
        "brightness" => FilterOp::Brightness { amount: f.required("amount")? },
        "contrast" => FilterOp::Contrast { amount: f.required("amount")? },
        "saturation" => FilterOp::Saturation { amount: f.required("amount")? },
        "hueRotate" => FilterOp::HueRotate { degrees: f.required("degrees")? },
        "gamma" => FilterOp::Gamma { value: f.required("value")? },
        "grayscale" => FilterOp::Grayscale { amount: f.number("amount")?.unwrap_or(1.0) },
        "sepia" => FilterOp::Sepia { amount: f.number("amount")?.unwrap_or(1.0) },
        "invert" => FilterOp::Invert { amount: f.number("amount")?.unwrap_or(1.0) },
        "colorMatrix" => {
            let m = f.numbers("matrix")?;
            let matrix: [f64; 20] = m.as_slice().try_into().map_err(|_| f.error("matrix", format!("must hold 20 numbers (4 rows of 5), got {}", m.len())))?;
            FilterOp::ColorMatrix { matrix }
        }
        "vignette" => FilterOp::Vignette { strength: f.required("strength")?, radius: f.number("radius")?.unwrap_or(0.5) },
        "blur" => FilterOp::Blur { sigma: f.required("sigma")? },
        "unsharp" => FilterOp::Unsharp { sigma: f.required("sigma")?, amount: f.required("amount")?, threshold: f.number("threshold")?.unwrap_or(0.0) },
        "convolve" => FilterOp::Convolve {
            kernel: f.numbers("kernel")?,
            divisor: f.number("divisor")?,
            bias: f.number("bias")?.unwrap_or(0.0),
            preserve_alpha: f.boolean("preserveAlpha")?.unwrap_or(false),
        },
        other => unreachable!("'{other}' is listed in TYPES"),
    })
}
