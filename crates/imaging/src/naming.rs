//! Output file names from a template such as `{stem}-{variant}.{ext}`. Whatever the input file
//! or the workflow put into the placeholders, a rendered name is one plain file name: it can
//! never name a path outside the output directory.

use std::path::{Component, Path};

use crate::error::{Error, Result};

/// The names a file name template may use.
const PLACEHOLDERS: &str = "{stem}, {variant}, {ext}, {width}, {height}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Stem,
    Variant,
    Ext,
    Width,
    Height,
}

/// A parsed, checked file name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    parts: Vec<Part>,
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct NameVars<'a> {
    pub stem: &'a str,
    pub variant: &'a str,
    pub ext: &'a str,
    pub width: u32,
    pub height: u32,
}

impl NameTemplate {
    /// Parses a template. Refuses unknown placeholders, unbalanced braces and literal text that
    /// could form a path (`/`, `\`, control characters).
    pub fn parse(template: &str) -> Result<NameTemplate> {
        if template.is_empty() || template.len() > 200 {
            return Err(Error::invalid("naming must be a file name template of 1 to 200 characters"));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'{' => {
                    if i > 0 {
                        parts.push(literal(&rest[..i], template)?);
                    }
                    let close = rest[i..]
                        .find('}')
                        .ok_or_else(|| Error::invalid(format!("naming '{template}': '{{' without '}}'")))?;
                    let name = &rest[i + 1..i + close];
                    parts.push(match name {
                        "stem" => Part::Stem,
                        "variant" => Part::Variant,
                        "ext" => Part::Ext,
                        "width" => Part::Width,
                        "height" => Part::Height,
                        other => {
                            return Err(Error::invalid(format!(
                                "naming '{template}': unknown placeholder {{{other}}} (use {PLACEHOLDERS})"
                            )))
                        }
                    });
                    rest = &rest[i + close + 1..];
                }
                Some(_) => return Err(Error::invalid(format!("naming '{template}': '}}' without '{{'"))),
                None => {
                    parts.push(literal(rest, template)?);
                    rest = "";
                }
            }
        }
        Ok(NameTemplate { parts })
    }

    /// Whether the template can tell variants apart.
    pub fn uses_variant_or_size(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Variant | Part::Width | Part::Height))
    }

    /// Renders a file name. Values are neutralised (separators and control characters become
    /// `_`, a value of only dots becomes `_`), and the result must be a single normal path
    /// component of at most 255 bytes.
    pub fn render(&self, vars: &NameVars<'_>) -> Result<String> {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => name.push_str(s),
                Part::Stem => name.push_str(&neutralise(vars.stem)),
                Part::Variant => name.push_str(&neutralise(vars.variant)),
                Part::Ext => name.push_str(&neutralise(vars.ext)),
                Part::Width => name.push_str(&vars.width.to_string()),
                Part::Height => name.push_str(&vars.height.to_string()),
            }
        }
        check_file_name(&name)?;
        Ok(name)
    }
}

fn literal(text: &str, template: &str) -> Result<Part> {
    if text.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(Error::invalid(format!(
            "naming '{template}' must make a file name: no '/', '\\' or control characters (outputs go into outputDir)"
        )));
    }
    Ok(Part::Literal(text.to_string()))
}

/// Makes a value safe inside a file name: no separators, no control characters, and never
/// `.` or `..` on its own.
fn neutralise(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c == '/' || c == '\\' || c == ':' || c.is_control() { '_' } else { c })
        .collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "_".to_string()
    } else {
        cleaned
    }
}

/// The final guard: one normal component, so `outputDir.join(name)` stays inside `outputDir`.
fn check_file_name(name: &str) -> Result<()> {
    let mut components = Path::new(name).components();
    let single = matches!((components.next(), components.next()), (Some(Component::Normal(_)), None));
    if !single || name.contains(['/', '\\', '\0']) || name.len() > 255 {
        return Err(Error::invalid(format!("'{name}' is not a usable file name (one name of at most 255 bytes, no separators)")));
    }
    Ok(())
}

/// The stem of an input file (its name without the last extension), as the template sees it.
pub fn stem_of(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(stem: &'a str, variant: &'a str) -> NameVars<'a> {
        NameVars { stem, variant, ext: "jpg", width: 320, height: 240 }
    }

    #[test]
    fn renders_the_default_template() {
        let t = NameTemplate::parse("{stem}-{variant}.{ext}").unwrap();
        assert_eq!(t.render(&vars("photo", "thumb")).unwrap(), "photo-thumb.jpg");
        let t = NameTemplate::parse("{stem}_{width}x{height}.{ext}").unwrap();
        assert_eq!(t.render(&vars("a b", "x")).unwrap(), "a b_320x240.jpg");
        assert!(t.uses_variant_or_size());
        assert!(!NameTemplate::parse("{stem}.{ext}").unwrap().uses_variant_or_size());
    }

    #[test]
    fn templates_that_could_form_paths_are_refused() {
        for bad in ["../{stem}.{ext}", "/tmp/{stem}", "sub/{stem}", "a\\b", "{stem}\n", "{nope}", "{stem", "stem}", ""] {
            assert!(matches!(NameTemplate::parse(bad), Err(Error::InvalidParameters(_))), "{bad:?} was accepted");
        }
        assert!(NameTemplate::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn values_can_never_escape_the_output_dir() {
        let t = NameTemplate::parse("{stem}").unwrap();
        for (stem, expect) in [("..", "_"), (".", "_"), ("", "_"), ("../../etc/passwd", ".._.._etc_passwd"), ("a\\..\\b", "a_.._b"), ("c:x", "c_x"), ("x\0y", "x_y")] {
            let name = t.render(&vars(stem, "v")).unwrap();
            assert_eq!(name, expect, "stem {stem:?}");
            let joined = Path::new("/out").join(&name);
            assert_eq!(joined.parent(), Some(Path::new("/out")), "{name}");
        }
        let t = NameTemplate::parse("{variant}.{ext}").unwrap();
        assert_eq!(t.render(&vars("s", "../x")).unwrap(), ".._x.jpg");
        // A literal dot template renders a name that the final check refuses.
        assert!(NameTemplate::parse("..").unwrap().render(&vars("s", "v")).is_err());
        assert!(NameTemplate::parse("{stem}").unwrap().render(&vars(&"x".repeat(300), "v")).is_err());
    }

    #[test]
    fn stems() {
        assert_eq!(stem_of(Path::new("/a/photo.final.JPG")), "photo.final");
        assert_eq!(stem_of(Path::new("noext")), "noext");
        assert_eq!(stem_of(Path::new("/")), "image");
    }
}
