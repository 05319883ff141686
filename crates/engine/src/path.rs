//! JSONPath as ASL uses it: reading with full JSONPath (via `serde_json_path`, RFC 9535) and
//! reading/writing with Reference Paths, the definite subset that ResultPath and `*Path`
//! comparisons accept.
//!
//! ASL follows Jayway JsonPath semantics: a definite path (no wildcard, slice, filter, union or
//! descent) yields one value, an indefinite one yields the array of every match.

use serde_json::Value;

/// One step of a Reference Path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Field(String),
    Index(usize),
}

/// A parsed Reference Path: `$`, `$.a.b`, `$['a b']`, `$.list[3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencePath {
    pub segments: Vec<Segment>,
}

impl ReferencePath {
    /// Parses a Reference Path; `None` when the text is not one (it may still be a valid JSONPath).
    pub fn parse(text: &str) -> Option<ReferencePath> {
        let rest = text.strip_prefix('$')?;
        let bytes: Vec<char> = rest.chars().collect();
        let mut segments = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < bytes.len() && !matches!(bytes[i], '.' | '[') {
                        if matches!(bytes[i], '*' | ' ' | '@' | '?' | ',' | ':' | '(' | ')' | ']' | '\'' | '"') {
                            return None;
                        }
                        i += 1;
                    }
                    if i == start {
                        return None; // `..` descent or a trailing dot
                    }
                    segments.push(Segment::Field(bytes[start..i].iter().collect()));
                }
                '[' => {
                    i += 1;
                    if i < bytes.len() && (bytes[i] == '\'' || bytes[i] == '"') {
                        let quote = bytes[i];
                        i += 1;
                        let mut name = String::new();
                        while i < bytes.len() && bytes[i] != quote {
                            if bytes[i] == '\\' && i + 1 < bytes.len() {
                                i += 1;
                            }
                            name.push(bytes[i]);
                            i += 1;
                        }
                        if i + 1 >= bytes.len() || bytes[i + 1] != ']' {
                            return None;
                        }
                        i += 2;
                        segments.push(Segment::Field(name));
                    } else {
                        let start = i;
                        while i < bytes.len() && bytes[i].is_ascii_digit() {
                            i += 1;
                        }
                        if i == start || i >= bytes.len() || bytes[i] != ']' {
                            return None;
                        }
                        let index: String = bytes[start..i].iter().collect();
                        segments.push(Segment::Index(index.parse().ok()?));
                        i += 1;
                    }
                }
                _ => return None,
            }
        }
        Some(ReferencePath { segments })
    }

    /// The value at this path, if every step exists.
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut at = root;
        for seg in &self.segments {
            at = match (seg, at) {
                (Segment::Field(name), Value::Object(map)) => map.get(name)?,
                (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(at)
    }

    /// Writes `value` at this path inside `root`, creating missing objects on the way (ResultPath
    /// semantics). Fails when a step crosses a value that is not an object (or array for indexes).
    pub fn set(&self, root: Value, value: Value) -> Result<Value, String> {
        fn put(at: Value, segs: &[Segment], value: Value) -> Result<Value, String> {
            let Some((first, rest)) = segs.split_first() else { return Ok(value) };
            match (first, at) {
                (Segment::Field(name), Value::Object(mut map)) => {
                    // Updated in place: a field that exists keeps its position among its siblings
                    // (removing and re-inserting it would move it last, which JSON written out
                    // later, by States.JsonToString for one, would show).
                    match map.get_mut(name) {
                        Some(slot) => {
                            let child = if rest.is_empty() { Value::Null } else { std::mem::take(slot) };
                            *slot = put(child, rest, value)?;
                        }
                        None => {
                            let child = if rest.is_empty() { Value::Null } else { Value::Object(Default::default()) };
                            map.insert(name.clone(), put(child, rest, value)?);
                        }
                    }
                    Ok(Value::Object(map))
                }
                (Segment::Index(i), Value::Array(mut items)) if *i < items.len() => {
                    let child = std::mem::take(&mut items[*i]);
                    items[*i] = put(child, rest, value)?;
                    Ok(Value::Array(items))
                }
                (Segment::Field(name), other) => {
                    Err(format!("cannot set field '{name}' on a value of type {}", type_name(&other)))
                }
                (Segment::Index(i), other) => Err(format!("cannot set index {i} on {}", describe(&other))),
            }
        }
        put(root, &self.segments, value)
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("an array of length {}", a.len()),
        other => format!("a value of type {}", type_name(other)),
    }
}

/// The JSON type name used in messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks that `text` is a JSONPath this engine can evaluate (for validation).
pub fn check_syntax(text: &str) -> Result<(), String> {
    let text = text.strip_prefix('$').map(|r| format!("${r}")).ok_or_else(|| format!("'{text}' does not start with '$'"))?;
    let body = text.strip_prefix("$$").map(|r| format!("${r}")).unwrap_or(text.clone());
    if ReferencePath::parse(&body).is_some() {
        return Ok(());
    }
    serde_json_path::JsonPath::parse(&body).map(|_| ()).map_err(|e| format!("invalid JSONPath '{text}': {e}"))
}

/// Evaluates a JSONPath (`$...` on `input`, `$$...` on the context object).
/// Returns `None` when a definite path matches nothing; an indefinite path returns the array of
/// matches (possibly empty), as Jayway JsonPath does.
pub fn select(input: &Value, context: &Value, text: &str) -> Result<Option<Value>, String> {
    let (root, body) = match text.strip_prefix("$$") {
        Some(rest) => (context, format!("${rest}")),
        None => (input, text.to_string()),
    };
    if let Some(path) = ReferencePath::parse(&body) {
        return Ok(path.get(root).cloned());
    }
    let path = serde_json_path::JsonPath::parse(&body).map_err(|e| format!("invalid JSONPath '{text}': {e}"))?;
    Ok(Some(Value::Array(path.query(root).all().into_iter().cloned().collect())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_paths_parse() {
        assert_eq!(ReferencePath::parse("$").unwrap().segments, vec![]);
        assert_eq!(
            ReferencePath::parse("$.a['b c'][2].d-e").unwrap().segments,
            vec![
                Segment::Field("a".into()),
                Segment::Field("b c".into()),
                Segment::Index(2),
                Segment::Field("d-e".into())
            ]
        );
        assert!(ReferencePath::parse("$..a").is_none());
        assert!(ReferencePath::parse("$.a[*]").is_none());
        assert!(ReferencePath::parse("$.a[?(@.x)]").is_none());
        assert!(ReferencePath::parse("a.b").is_none());
    }

    #[test]
    fn select_definite_and_indefinite() {
        let v = json!({"a": [{"x": 1}, {"x": 2}], "b": {"c": "d"}});
        let ctx = json!({"Execution": {"Id": "e1"}});
        assert_eq!(select(&v, &ctx, "$.b.c").unwrap(), Some(json!("d")));
        assert_eq!(select(&v, &ctx, "$.missing").unwrap(), None);
        assert_eq!(select(&v, &ctx, "$.a[*].x").unwrap(), Some(json!([1, 2])));
        assert_eq!(select(&v, &ctx, "$.a[?(@.x > 1)].x").unwrap(), Some(json!([2])));
        assert_eq!(select(&v, &ctx, "$$.Execution.Id").unwrap(), Some(json!("e1")));
    }

    #[test]
    fn set_creates_objects_and_replaces() {
        let p = ReferencePath::parse("$.a.b").unwrap();
        assert_eq!(p.set(json!({"x": 1}), json!(5)).unwrap(), json!({"x": 1, "a": {"b": 5}}));
        assert_eq!(p.set(json!({"a": {"b": {"old": 1}}}), json!(5)).unwrap(), json!({"a": {"b": 5}}));
        assert!(p.set(json!({"a": 3}), json!(5)).is_err());
        assert_eq!(ReferencePath::parse("$").unwrap().set(json!(1), json!(2)).unwrap(), json!(2));
    }

    #[test]
    fn set_keeps_the_order_of_existing_fields() {
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let input = json!({"a": 1, "obj": {"x": 1, "y": 2}, "z": 3});
        let out = ReferencePath::parse("$.obj.r").unwrap().set(input.clone(), json!(5)).unwrap();
        assert_eq!(keys(&out), ["a", "obj", "z"]);
        assert_eq!(keys(&out["obj"]), ["x", "y", "r"]);
        let out = ReferencePath::parse("$.a").unwrap().set(input, json!(5)).unwrap();
        assert_eq!(keys(&out), ["a", "obj", "z"]);
        assert_eq!(out.to_string(), r#"{"a":5,"obj":{"x":1,"y":2},"z":3}"#);
    }
}
