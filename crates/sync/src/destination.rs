//! Destination URLs (`s3://bucket/prefix/{variant}/`, `az://container/prefix/`) and the object
//! keys made from them. A key is the rendered prefix plus the file's name; every segment must
//! be a plain name, so no placeholder value or file name can make a `..`, `.` or empty segment
//! (a key that climbs out of its prefix) or smuggle in a `/`.

use std::fmt;

use crate::error::{Error, Result};

/// The services a destination can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    S3,
    Azure,
}

impl Service {
    pub fn scheme(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Azure => "az",
        }
    }
}

/// The placeholders a destination prefix may use.
pub const PLACEHOLDERS: &[&str] = &["variant", "execution", "date"];

/// A parsed destination: the service, the bucket (S3) or container (Azure), and the key prefix
/// template (no leading or trailing `/`; empty for the root).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub service: Service,
    pub bucket: String,
    prefix: String,
}

/// The values of the placeholders for one file.
#[derive(Debug, Clone, Default)]
pub struct KeyVars<'a> {
    /// The variant's name (`{variant}`), e.g. `thumbnail`.
    pub variant: Option<&'a str>,
    /// The execution that produced the file (`{execution}`).
    pub execution: Option<&'a str>,
    /// `YYYY-MM-DD` (`{date}`).
    pub date: Option<&'a str>,
}

impl Destination {
    /// Parses `s3://bucket[/prefix]` or `az://container[/prefix]` (`azure://` and `abfs://`-less
    /// spellings: only these two schemes). The prefix may hold `{variant}`, `{execution}` and
    /// `{date}`.
    pub fn parse(url: &str) -> Result<Destination> {
        let bad = |why: &str| Error::invalid(format!("destination '{url}': {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected s3://bucket/prefix or az://container/prefix"))?;
        let service = match scheme.to_ascii_lowercase().as_str() {
            "s3" => Service::S3,
            "az" | "azure" => Service::Azure,
            other => return Err(bad(&format!("unknown scheme '{other}' (use s3:// or az://)"))),
        };
        if rest.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not accepted (credentials never go in the destination)"));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (b == b'.' && service == Service::S3))
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            let what = if service == Service::S3 { "bucket" } else { "container" };
            return Err(bad(&format!("'{bucket}' is not a valid {what} name (3-63 lowercase letters, digits and hyphens)")));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                check_template_segment(segment).map_err(|why| bad(&why))?;
            }
        }
        Ok(Destination { service, bucket: bucket.to_string(), prefix })
    }

    /// `s3://bucket` or `az://container`: what the history records as the destination.
    pub fn root(&self) -> String {
        format!("{}://{}", self.service.scheme(), self.bucket)
    }

    /// The prefix template as written (without slashes around it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the prefix uses `{name}`.
    pub fn uses(&self, name: &str) -> bool {
        self.prefix.contains(&format!("{{{name}}}"))
    }

    /// The key of `file_name` under this destination with these placeholder values.
    /// `file_name` may name folders before the file (`2024/05/a.jpg`, `/` between them): each
    /// part is checked as a plain segment, so no key climbs out of the prefix.
    pub fn key(&self, vars: &KeyVars, file_name: &str) -> Result<String> {
        for segment in file_name.split('/') {
            check_segment(segment).map_err(|why| Error::invalid(format!("file name '{file_name}': {why}")))?;
        }
        if self.prefix.is_empty() {
            return Ok(file_name.to_string());
        }
        let mut rendered = String::with_capacity(self.prefix.len() + file_name.len() + 16);
        for (i, segment) in self.prefix.split('/').enumerate() {
            if i > 0 {
                rendered.push('/');
            }
            let value = render(segment, vars)?;
            check_segment(&value).map_err(|why| Error::invalid(format!("destination segment '{segment}' renders to '{value}': {why}")))?;
            rendered.push_str(&value);
        }
        rendered.push('/');
        rendered.push_str(file_name);
        Ok(rendered)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{}/", self.root())
        } else {
            write!(f, "{}/{}/", self.root(), self.prefix)
        }
    }
}

/// Replaces the placeholders of one prefix segment.
fn render(segment: &str, vars: &KeyVars) -> Result<String> {
    let mut out = String::new();
    let mut rest = segment;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| Error::invalid(format!("unclosed '{{' in '{segment}'")))?;
        let name = &rest[open + 1..close];
        let value = match name {
            "variant" => vars.variant,
            "execution" => vars.execution,
            "date" => vars.date,
            _ => None,
        }
        .ok_or_else(|| Error::invalid(format!("the destination uses {{{name}}}, which has no value for this file")))?;
        check_value(name, value)?;
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A placeholder value: one plain segment.
fn check_value(name: &str, value: &str) -> Result<()> {
    check_segment(value).map_err(|why| Error::invalid(format!("{{{name}}} = '{value}': {why}")))
}

/// A segment of a prefix template: placeholders known and balanced, literal parts plain.
fn check_template_segment(segment: &str) -> std::result::Result<(), String> {
    let mut rest = segment;
    let mut literal = String::new();
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| format!("unclosed '{{' in '{segment}'"))?;
        let name = &rest[open + 1..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}} (known: {{variant}}, {{execution}}, {{date}})"));
        }
        literal.push('x');
        rest = &rest[close + 1..];
    }
    literal.push_str(rest);
    if literal.contains('}') {
        return Err(format!("unbalanced '}}' in '{segment}'"));
    }
    check_segment(&literal)
}

/// One key segment: not empty, not `.` or `..`, no slash, backslash or control character.
fn check_segment(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("empty path segment".into());
    }
    if s == "." || s == ".." {
        return Err(format!("'{s}' is not allowed as a path segment"));
    }
    if s.contains(['/', '\\']) || s.chars().any(char::is_control) {
        return Err("must not contain '/', '\\' or control characters".into());
    }
    if s.len() > 255 {
        return Err("longer than 255 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_services() {
        let d = Destination::parse("s3://my-bucket/out/{variant}/").unwrap();
        assert_eq!((d.service, d.bucket.as_str(), d.prefix()), (Service::S3, "my-bucket", "out/{variant}"));
        assert_eq!(d.root(), "s3://my-bucket");
        assert_eq!(d.to_string(), "s3://my-bucket/out/{variant}/");
        let d = Destination::parse("az://photos").unwrap();
        assert_eq!((d.service, d.bucket.as_str(), d.prefix()), (Service::Azure, "photos", ""));
        assert_eq!(d.key(&KeyVars::default(), "a.jpg").unwrap(), "a.jpg");
    }

    #[test]
    fn refuses_bad_destinations() {
        for bad in ["ftp://x/y", "s3://", "s3://B", "s3://ok-bucket/a/../b", "s3://ok-bucket/{nope}/", "s3://ok-bucket/a?sig=1", "s3://ok-bucket/{variant", "bucket/x"] {
            assert!(Destination::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn keys_render_placeholders() {
        let d = Destination::parse("s3://b-1/web/{variant}/{date}").unwrap();
        let vars = KeyVars { variant: Some("thumb"), execution: None, date: Some("2026-01-02") };
        assert_eq!(d.key(&vars, "a.jpg").unwrap(), "web/thumb/2026-01-02/a.jpg");
    }

    /// Placeholders must never produce `..` keys (issue 6).
    #[test]
    fn placeholders_never_make_dot_dot_keys() {
        let d = Destination::parse("s3://b-1/web/{variant}").unwrap();
        for value in ["..", ".", "", "a/b", "..\\x", "a\nb"] {
            let vars = KeyVars { variant: Some(value), ..KeyVars::default() };
            assert!(d.key(&vars, "a.jpg").is_err(), "{value:?} was accepted");
        }
        assert!(d.key(&KeyVars { variant: Some("v..1"), ..KeyVars::default() }, "a.jpg").is_ok());
        assert!(d.key(&KeyVars { variant: Some("x"), ..KeyVars::default() }, "..").is_err());
        // Folders before the file name: plain segments only.
        let x = KeyVars { variant: Some("x"), ..KeyVars::default() };
        assert_eq!(d.key(&x, "2024/05/a.jpg").unwrap(), "web/x/2024/05/a.jpg");
        for bad in ["../a.jpg", "2024/../../a.jpg", "/a.jpg", "2024//a.jpg", "2024/", "a\\..\\b.jpg"] {
            assert!(d.key(&x, bad).is_err(), "{bad:?} was accepted");
        }
        assert!(d.key(&KeyVars::default(), "a.jpg").is_err(), "a missing {{variant}} must fail");
    }
}
