//! Intrinsic functions of the Amazon States Language (`States.Format(...)`, `States.Array(...)`,
//! ...): a tokenizer and parser that turn a call expression into a small AST, a checker used when a
//! definition is validated, and an evaluator that runs a call against the state input and the
//! context object.
//!
//! Behaviour follows the AWS Step Functions documentation ("Intrinsic functions for JSONPath
//! states"). Every runtime fault is a `States.IntrinsicFailure`.

use std::collections::HashSet;
use std::fmt;
use std::iter::Peekable;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use md5::Md5;
use rand::RngCore;
use serde_json::{Map, Number, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::error::Failure;
use crate::path;

/// AWS allows up to 10 intrinsic functions nested within a field; the limit also keeps the
/// recursive parser and evaluator safe from hostile input.
const MAX_NESTING: usize = 10;
/// States.ArrayRange may produce at most this many items.
const MAX_RANGE_ITEMS: i128 = 1000;
/// Input limit (in characters) of States.Base64Encode, States.Base64Decode and States.Hash.
const MAX_INPUT_CHARS: usize = 10_000;

/// True when a string value is an intrinsic call (starts with "States." and is a call expression).
///
/// This only recognises the shape `States.Name(`, so that a malformed call is still routed to
/// [`check`] or [`evaluate`] and reported there, rather than being mistaken for a JSONPath.
pub fn is_intrinsic(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("States.") else { return false };
    let rest = rest.trim_start_matches(is_ident_char);
    rest.trim_start().starts_with('(')
}

/// Parses without evaluating, for definition validation: Err(message) describes the syntax fault
/// (unknown function name, wrong argument count where it is fixed, unbalanced quotes/parentheses, bad path).
///
/// Literal arguments are also checked against what the function accepts (a number where an array
/// is expected, a `States.Format` template whose placeholders do not match its arguments, an
/// unknown hash algorithm, deep merge), since such a call can only ever fail at run time.
pub fn check(text: &str) -> Result<(), String> {
    let call = parse(text)?;
    lint(&call)
}

/// Evaluates an intrinsic call. `rng` supplies randomness for States.UUID and States.MathRandom
/// (the engine seeds it deterministically per execution so replays after a crash are exact).
pub fn evaluate(text: &str, input: &Value, context: &Value, rng: &mut dyn RngCore) -> Result<Value, Failure> {
    let call = parse(text).map_err(|e| Failure::intrinsic(format!("Invalid intrinsic function '{text}': {e}")))?;
    let mut env = Env { input, context, rng };
    eval_call(&call, &mut env)
}

// ---------------------------------------------------------------------------------------------
// Functions and their signatures
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    const ALL: [Func; 18] = [
        Func::Format,
        Func::StringToJson,
        Func::JsonToString,
        Func::Array,
        Func::ArrayPartition,
        Func::ArrayContains,
        Func::ArrayRange,
        Func::ArrayGetItem,
        Func::ArrayLength,
        Func::ArrayUnique,
        Func::Base64Encode,
        Func::Base64Decode,
        Func::Hash,
        Func::JsonMerge,
        Func::MathRandom,
        Func::MathAdd,
        Func::StringSplit,
        Func::Uuid,
    ];

    fn name(self) -> &'static str {
        match self {
            Func::Format => "States.Format",
            Func::StringToJson => "States.StringToJson",
            Func::JsonToString => "States.JsonToString",
            Func::Array => "States.Array",
            Func::ArrayPartition => "States.ArrayPartition",
            Func::ArrayContains => "States.ArrayContains",
            Func::ArrayRange => "States.ArrayRange",
            Func::ArrayGetItem => "States.ArrayGetItem",
            Func::ArrayLength => "States.ArrayLength",
            Func::ArrayUnique => "States.ArrayUnique",
            Func::Base64Encode => "States.Base64Encode",
            Func::Base64Decode => "States.Base64Decode",
            Func::Hash => "States.Hash",
            Func::JsonMerge => "States.JsonMerge",
            Func::MathRandom => "States.MathRandom",
            Func::MathAdd => "States.MathAdd",
            Func::StringSplit => "States.StringSplit",
            Func::Uuid => "States.UUID",
        }
    }

    fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    fn signature(self) -> Signature {
        use Kind::*;
        let fixed = |params: &'static [Kind]| Signature { params, required: params.len(), rest: None };
        match self {
            Func::Format => Signature { params: &[String], required: 1, rest: Some(Any) },
            Func::Array => Signature { params: &[], required: 0, rest: Some(Any) },
            Func::MathRandom => Signature { params: &[Number, Number, Number], required: 2, rest: None },
            Func::StringToJson => fixed(&[String]),
            Func::JsonToString => fixed(&[Any]),
            Func::ArrayPartition => fixed(&[Array, Number]),
            Func::ArrayContains => fixed(&[Array, Any]),
            Func::ArrayRange => fixed(&[Number, Number, Number]),
            Func::ArrayGetItem => fixed(&[Array, Number]),
            Func::ArrayLength | Func::ArrayUnique => fixed(&[Array]),
            Func::Base64Encode | Func::Base64Decode => fixed(&[String]),
            Func::Hash => fixed(&[String, String]),
            Func::JsonMerge => fixed(&[Object, Object, Boolean]),
            Func::MathAdd => fixed(&[Number, Number]),
            Func::StringSplit => fixed(&[String, String]),
            Func::Uuid => fixed(&[]),
        }
    }
}

/// How many arguments a function takes and of which kinds.
struct Signature {
    params: &'static [Kind],
    required: usize,
    /// Kind of every argument past `params`, for variadic functions.
    rest: Option<Kind>,
}

impl Signature {
    fn kind_of(&self, index: usize) -> Option<Kind> {
        self.params.get(index).copied().or(self.rest)
    }

    fn accepts_count(&self, count: usize) -> bool {
        count >= self.required && (self.rest.is_some() || count <= self.params.len())
    }

    fn describe_count(&self) -> String {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        let max = self.params.len();
        match (self.required, self.rest) {
            (0, Some(_)) => "any number of arguments".to_string(),
            (min, Some(_)) => format!("at least {min} {}", plural(min)),
            (0, None) if max == 0 => "no arguments".to_string(),
            (min, None) if min == max => format!("exactly {min} {}", plural(min)),
            (min, None) => format!("{min} to {max} arguments"),
        }
    }
}

/// The JSON type an argument must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Any,
    String,
    Number,
    Boolean,
    Array,
    Object,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (Kind::Any, _)
                | (Kind::String, Value::String(_))
                | (Kind::Number, Value::Number(_))
                | (Kind::Boolean, Value::Bool(_))
                | (Kind::Array, Value::Array(_))
                | (Kind::Object, Value::Object(_))
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Any => "a JSON value",
            Kind::String => "a string",
            Kind::Number => "an integer",
            Kind::Boolean => "a boolean",
            Kind::Array => "an array",
            Kind::Object => "a JSON object",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    const NAMES: &'static str = "MD5, SHA-1, SHA-256, SHA-384, SHA-512";

    fn parse(name: &str) -> Option<HashAlgorithm> {
        match name {
            "MD5" => Some(HashAlgorithm::Md5),
            "SHA-1" => Some(HashAlgorithm::Sha1),
            "SHA-256" => Some(HashAlgorithm::Sha256),
            "SHA-384" => Some(HashAlgorithm::Sha384),
            "SHA-512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    fn hex_digest(self, data: &[u8]) -> String {
        let digest = match self {
            HashAlgorithm::Md5 => Md5::digest(data).to_vec(),
            HashAlgorithm::Sha1 => Sha1::digest(data).to_vec(),
            HashAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha384 => Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha512 => Sha512::digest(data).to_vec(),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Call {
    func: Func,
    args: Vec<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    /// A number, `true`, `false` or `null`.
    Literal(Value),
    Str(StrLit),
    /// A JSONPath on the input (`$...`) or on the context object (`$$...`).
    Path(String),
    Call(Call),
}

/// A quoted string literal with its escapes resolved.
#[derive(Debug, Clone, PartialEq)]
struct StrLit {
    text: String,
    /// Byte offsets in `text` of each unescaped `{}`. Kept apart from the text because once `\{`
    /// is resolved, States.Format could no longer tell a literal `{}` from a placeholder.
    holes: Vec<usize>,
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Ident(String),
    Str(StrLit),
    Num(Number),
    Path(String),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
            Token::Ident(name) => write!(f, "'{name}'"),
            Token::Str(lit) => write!(f, "string '{}'", lit.text),
            Token::Num(n) => write!(f, "number {n}"),
            Token::Path(p) => write!(f, "path '{p}'"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Spanned {
    token: Token,
    /// 1-based character column, for messages.
    column: usize,
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn tokenize(text: &str) -> Result<Vec<Spanned>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Token::Open
            }
            ')' => {
                i += 1;
                Token::Close
            }
            ',' => {
                i += 1;
                Token::Comma
            }
            '\'' => {
                let (lit, next) = lex_string(&chars, start)?;
                i = next;
                Token::Str(lit)
            }
            '$' => {
                let (path, next) = lex_path(&chars, start)?;
                i = next;
                Token::Path(path)
            }
            '-' | '0'..='9' => {
                while chars.get(i).is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')) {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                let number = serde_json::from_str::<Number>(&raw)
                    .map_err(|_| format!("invalid number '{raw}' at column {}", start + 1))?;
                Token::Num(number)
            }
            c if c.is_ascii_alphabetic() => {
                while chars.get(i).is_some_and(|&c| is_ident_char(c)) {
                    i += 1;
                }
                Token::Ident(chars[start..i].iter().collect())
            }
            '"' => {
                return Err(format!(
                    "unexpected '\"' at column {}: string literals are enclosed in single quotes",
                    start + 1
                ))
            }
            other => return Err(format!("unexpected character '{other}' at column {}", start + 1)),
        };
        tokens.push(Spanned { token, column: start + 1 });
    }
    Ok(tokens)
}

/// Lexes a single-quoted literal starting at `start`; returns it and the index past the closing quote.
fn lex_string(chars: &[char], start: usize) -> Result<(StrLit, usize), String> {
    let unterminated = || format!("unterminated string literal starting at column {}", start + 1);
    let mut text = String::new();
    let mut holes = Vec::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(unterminated()),
            Some('\'') => return Ok((StrLit { text, holes }, i + 1)),
            Some('\\') => match chars.get(i + 1) {
                Some(&c @ ('\'' | '{' | '}' | '\\')) => {
                    text.push(c);
                    i += 2;
                }
                Some(c) => {
                    return Err(format!(
                        "invalid escape sequence '\\{c}' at column {}: only \\', \\{{, \\}} and \\\\ are allowed",
                        i + 1
                    ))
                }
                None => return Err(unterminated()),
            },
            Some('{') if chars.get(i + 1) == Some(&'}') => {
                holes.push(text.len());
                text.push_str("{}");
                i += 2;
            }
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

/// Lexes a JSONPath starting at `start`. It ends at a top-level `,`, `)` or whitespace; inside
/// brackets those may belong to the path (`$['a,b']`, `$[?(@.x > 1)]`).
fn lex_path(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(i) {
        if let Some(q) = quote {
            if c == '\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' if depth > 0 => quote = Some(c),
            '[' => depth += 1,
            ']' => {
                depth =
                    depth.checked_sub(1).ok_or_else(|| format!("unbalanced ']' in the JSONPath at column {}", i + 1))?
            }
            ',' | ')' if depth == 0 => break,
            c if c.is_whitespace() && depth == 0 => break,
            _ => {}
        }
        i += 1;
    }
    let end = i.min(chars.len());
    let text: String = chars[start..end].iter().collect();
    if quote.is_some() || depth > 0 {
        return Err(format!("unterminated JSONPath '{text}' starting at column {}", start + 1));
    }
    path::check_syntax(&text)?;
    Ok((text, end))
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

fn parse(text: &str) -> Result<Call, String> {
    let mut parser = Parser { tokens: tokenize(text)?.into_iter().peekable() };
    let call = parser.call(1)?;
    match parser.tokens.next() {
        None => Ok(call),
        Some(extra) => Err(format!(
            "unexpected {} at column {} after the end of the {} call",
            extra.token,
            extra.column,
            call.func.name()
        )),
    }
}

struct Parser {
    tokens: Peekable<std::vec::IntoIter<Spanned>>,
}

impl Parser {
    fn call(&mut self, depth: usize) -> Result<Call, String> {
        let (name, column) = match self.tokens.next() {
            Some(Spanned { token: Token::Ident(name), column }) => (name, column),
            Some(other) => {
                return Err(format!(
                    "expected an intrinsic function name at column {}, found {}",
                    other.column, other.token
                ))
            }
            None => return Err("expected an intrinsic function call".to_string()),
        };
        let func = Func::from_name(&name).ok_or_else(|| {
            if name.starts_with("States.") {
                format!("unknown intrinsic function '{name}' at column {column}")
            } else {
                format!("'{name}' at column {column} is not an intrinsic function (their names start with 'States.')")
            }
        })?;
        if depth > MAX_NESTING {
            return Err(format!(
                "{} at column {column} is nested too deeply: intrinsic functions nest at most {MAX_NESTING} levels",
                func.name()
            ));
        }
        match self.tokens.next() {
            Some(Spanned { token: Token::Open, .. }) => {}
            Some(other) => {
                return Err(format!(
                    "expected '(' after {} at column {}, found {}",
                    func.name(),
                    other.column,
                    other.token
                ))
            }
            None => return Err(format!("expected '(' after {}", func.name())),
        }

        let mut args = Vec::new();
        if matches!(self.tokens.peek(), Some(Spanned { token: Token::Close, .. })) {
            self.tokens.next();
        } else {
            loop {
                args.push(self.arg(func, depth)?);
                match self.tokens.next() {
                    Some(Spanned { token: Token::Comma, .. }) => {}
                    Some(Spanned { token: Token::Close, .. }) => break,
                    Some(other) => {
                        return Err(format!(
                            "expected ',' or ')' in the arguments of {} at column {}, found {}",
                            func.name(),
                            other.column,
                            other.token
                        ))
                    }
                    None => return Err(format!("unbalanced parentheses: missing ')' to close {}", func.name())),
                }
            }
        }

        let signature = func.signature();
        if !signature.accepts_count(args.len()) {
            return Err(format!("{} takes {}, got {}", func.name(), signature.describe_count(), args.len()));
        }
        Ok(Call { func, args })
    }

    fn arg(&mut self, func: Func, depth: usize) -> Result<Expr, String> {
        if let Some(Spanned { token: Token::Ident(name), .. }) = self.tokens.peek() {
            if !matches!(name.as_str(), "true" | "false" | "null") {
                return Ok(Expr::Call(self.call(depth + 1)?));
            }
        }
        match self.tokens.next() {
            Some(Spanned { token, column }) => match token {
                Token::Str(lit) => Ok(Expr::Str(lit)),
                Token::Num(n) => Ok(Expr::Literal(Value::Number(n))),
                Token::Path(p) => Ok(Expr::Path(p)),
                Token::Ident(name) => Ok(Expr::Literal(match name.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::Null,
                })),
                other => Err(format!("expected an argument of {} at column {column}, found {other}", func.name())),
            },
            None => Err(format!("unbalanced parentheses: missing ')' to close {}", func.name())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Static checks (validation)
// ---------------------------------------------------------------------------------------------

fn lint(call: &Call) -> Result<(), String> {
    let name = call.func.name();
    let signature = call.func.signature();
    for (index, arg) in call.args.iter().enumerate() {
        let literal = match arg {
            Expr::Call(inner) => {
                lint(inner)?;
                continue;
            }
            Expr::Path(_) => continue,
            Expr::Literal(value) => value.clone(),
            Expr::Str(lit) => Value::String(lit.text.clone()),
        };
        if let Some(kind) = signature.kind_of(index) {
            if !kind.accepts(&literal) {
                return Err(format!(
                    "{name} expects {kind} as its {} argument, got {}",
                    ordinal(index),
                    show(&literal)
                ));
            }
        }
    }

    match (call.func, call.args.as_slice()) {
        (Func::Format, [Expr::Str(template), values @ ..]) if template.holes.len() != values.len() => {
            Err(format!("{name}: {}", placeholder_mismatch(template.holes.len(), values.len())))
        }
        (Func::Hash, [_, Expr::Str(algorithm)]) if HashAlgorithm::parse(&algorithm.text).is_none() => {
            Err(format!("{name}: {}", unknown_algorithm(&algorithm.text)))
        }
        (Func::JsonMerge, [_, _, Expr::Literal(Value::Bool(true))]) => Err(format!("{name}: {DEEP_MERGE_UNSUPPORTED}")),
        _ => Ok(()),
    }
}

const DEEP_MERGE_UNSUPPORTED: &str =
    "Step Functions only supports the shallow merging mode; the third argument must be false";

fn placeholder_mismatch(holes: usize, values: usize) -> String {
    format!("the format string has {holes} '{{}}' placeholder(s) but {values} value(s) follow it")
}

fn unknown_algorithm(name: &str) -> String {
    format!("unsupported hash algorithm '{name}'; use one of {}", HashAlgorithm::NAMES)
}

fn ordinal(index: usize) -> &'static str {
    ["first", "second", "third", "fourth", "fifth"].get(index).copied().unwrap_or("next")
}

/// A value for messages: its type and a shortened JSON rendering.
fn show(value: &Value) -> String {
    const MAX: usize = 80;
    let json = value.to_string();
    let json = match json.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &json[..cut]),
        None => json,
    };
    format!("{} {json}", path::type_name(value))
}

// ---------------------------------------------------------------------------------------------
// Evaluator
// ---------------------------------------------------------------------------------------------

struct Env<'a> {
    input: &'a Value,
    context: &'a Value,
    rng: &'a mut dyn RngCore,
}

fn eval_call(call: &Call, env: &mut Env<'_>) -> Result<Value, Failure> {
    let values = call.args.iter().map(|arg| eval_expr(arg, call.func, env)).collect::<Result<Vec<_>, _>>()?;
    let mut args = Args { func: call.func, values };
    match call.func {
        Func::Format => {
            let holes = match call.args.first() {
                Some(Expr::Str(template)) => Some(template.holes.clone()),
                _ => None,
            };
            format_string(args, holes)
        }
        Func::StringToJson => string_to_json(args),
        Func::JsonToString => Ok(Value::String(args.value(0).to_string())),
        Func::Array => Ok(Value::Array(args.values)),
        Func::ArrayPartition => array_partition(args),
        Func::ArrayContains => {
            let items = args.array(0)?;
            let needle = canonical(&args.value(1));
            Ok(Value::Bool(items.iter().any(|item| canonical(item) == needle)))
        }
        Func::ArrayRange => array_range(args),
        Func::ArrayGetItem => array_get_item(args),
        Func::ArrayLength => Ok(Value::from(args.array(0)?.len())),
        Func::ArrayUnique => {
            let mut seen = HashSet::new();
            let items = args.array(0)?.into_iter().filter(|item| seen.insert(canonical(item))).collect();
            Ok(Value::Array(items))
        }
        Func::Base64Encode => {
            let data = args.limited_string(0)?;
            Ok(Value::String(STANDARD.encode(data.as_bytes())))
        }
        Func::Base64Decode => base64_decode(args),
        Func::Hash => {
            let data = args.limited_string(0)?;
            let name = args.string(1)?;
            let algorithm = HashAlgorithm::parse(&name).ok_or_else(|| args.fail(unknown_algorithm(&name)))?;
            Ok(Value::String(algorithm.hex_digest(data.as_bytes())))
        }
        Func::JsonMerge => json_merge(args),
        Func::MathRandom => math_random(args, env),
        Func::MathAdd => math_add(args),
        Func::StringSplit => {
            let text = args.string(0)?;
            let delimiters = args.string(1)?;
            let parts = text
                .split(|c| delimiters.contains(c))
                .filter(|part| !part.is_empty())
                .map(|part| Value::String(part.to_string()))
                .collect();
            Ok(Value::Array(parts))
        }
        Func::Uuid => {
            let mut bytes = [0u8; 16];
            env.rng.fill_bytes(&mut bytes);
            let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
            Ok(Value::String(uuid.hyphenated().to_string()))
        }
    }
}

fn eval_expr(expr: &Expr, func: Func, env: &mut Env<'_>) -> Result<Value, Failure> {
    match expr {
        Expr::Literal(value) => Ok(value.clone()),
        Expr::Str(lit) => Ok(Value::String(lit.text.clone())),
        Expr::Call(call) => eval_call(call, env),
        Expr::Path(text) => {
            let fail = |detail: String| Failure::intrinsic(format!("Invalid arguments in {}: {detail}", func.name()));
            let found = path::select(env.input, env.context, text).map_err(fail)?;
            found.ok_or_else(|| {
                let root = if text.starts_with("$$") { "context object" } else { "input" };
                fail(format!("the JsonPath argument '{text}' could not be found in the {root}"))
            })
        }
    }
}

/// The evaluated arguments of one call, taken out one by one with type checks.
struct Args {
    func: Func,
    values: Vec<Value>,
}

impl Args {
    fn fail(&self, detail: impl fmt::Display) -> Failure {
        Failure::intrinsic(format!("Invalid arguments in {}: {detail}", self.func.name()))
    }

    fn mismatch(&self, index: usize, kind: Kind, got: &Value) -> Failure {
        self.fail(format!("expected {kind} as the {} argument, got {}", ordinal(index), show(got)))
    }

    /// Takes an argument out; the parser has checked the count, so a missing one reads as null.
    fn value(&mut self, index: usize) -> Value {
        self.values.get_mut(index).map(std::mem::take).unwrap_or(Value::Null)
    }

    fn string(&mut self, index: usize) -> Result<String, Failure> {
        match self.value(index) {
            Value::String(s) => Ok(s),
            other => Err(self.mismatch(index, Kind::String, &other)),
        }
    }

    /// A string argument subject to the 10,000-character input limit.
    fn limited_string(&mut self, index: usize) -> Result<String, Failure> {
        let s = self.string(index)?;
        let count = s.chars().count();
        if count > MAX_INPUT_CHARS {
            return Err(self
                .fail(format!("the input string has {count} characters, more than the maximum of {MAX_INPUT_CHARS}")));
        }
        Ok(s)
    }

    fn array(&mut self, index: usize) -> Result<Vec<Value>, Failure> {
        match self.value(index) {
            Value::Array(items) => Ok(items),
            other => Err(self.mismatch(index, Kind::Array, &other)),
        }
    }

    fn object(&mut self, index: usize) -> Result<Map<String, Value>, Failure> {
        match self.value(index) {
            Value::Object(map) => Ok(map),
            other => Err(self.mismatch(index, Kind::Object, &other)),
        }
    }

    fn boolean(&mut self, index: usize) -> Result<bool, Failure> {
        match self.value(index) {
            Value::Bool(b) => Ok(b),
            other => Err(self.mismatch(index, Kind::Boolean, &other)),
        }
    }

    /// An integer argument; AWS rounds a non-integer to the nearest integer, as Java's
    /// `Math.round` does (halves go up).
    fn integer(&mut self, index: usize) -> Result<i64, Failure> {
        let value = self.value(index);
        let Value::Number(n) = &value else { return Err(self.mismatch(index, Kind::Number, &value)) };
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        let out_of_range = || self.fail(format!("the {} argument {n} is out of the integer range", ordinal(index)));
        if n.is_u64() {
            return Err(out_of_range());
        }
        let f = n.as_f64().ok_or_else(out_of_range)?;
        let floor = f.floor();
        let rounded = if f - floor >= 0.5 { floor + 1.0 } else { floor };
        // i64::MAX as f64 rounds up to 2^63, hence the strict bound.
        if rounded.is_finite() && rounded >= i64::MIN as f64 && rounded < i64::MAX as f64 {
            Ok(rounded as i64)
        } else {
            Err(out_of_range())
        }
    }

    /// An index or count that must be an exact integer (no rounding).
    fn exact_integer(&mut self, index: usize) -> Result<i64, Failure> {
        let value = self.value(index);
        let exact = match &value {
            Value::Number(n) => n.as_i64().or_else(|| {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
            }),
            _ => None,
        };
        exact.ok_or_else(|| self.mismatch(index, Kind::Number, &value))
    }
}

fn format_string(mut args: Args, holes: Option<Vec<usize>>) -> Result<Value, Failure> {
    let template = args.string(0)?;
    // A template read from the input is data: every `{}` in it is a placeholder.
    let holes = holes.unwrap_or_else(|| template.match_indices("{}").map(|(at, _)| at).collect());
    let values = args.values.split_off(1.min(args.values.len()));
    if holes.len() != values.len() {
        return Err(args.fail(placeholder_mismatch(holes.len(), values.len())));
    }
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for (&hole, value) in holes.iter().zip(&values) {
        out.push_str(template.get(last..hole).unwrap_or_default());
        match value {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        last = hole + 2;
    }
    out.push_str(template.get(last..).unwrap_or_default());
    Ok(Value::String(out))
}

fn string_to_json(mut args: Args) -> Result<Value, Failure> {
    let text = args.string(0)?;
    // Jackson, which AWS uses, reads blank text as no value rather than as an error.
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| args.fail(format!("the string is not valid JSON: {e}")))
}

fn array_partition(mut args: Args) -> Result<Value, Failure> {
    let items = args.array(0)?;
    let size = args.integer(1)?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| args.fail(format!("the chunk size must be a positive integer, got {size}")))?;
    Ok(Value::Array(items.chunks(size).map(|chunk| Value::Array(chunk.to_vec())).collect()))
}

fn array_range(mut args: Args) -> Result<Value, Failure> {
    let start = i128::from(args.integer(0)?);
    let end = i128::from(args.integer(1)?);
    let step = i128::from(args.integer(2)?);
    if step == 0 {
        return Err(args.fail("the step (third argument) must not be zero"));
    }
    // Both bounds are inclusive; a step that points away from the end gives an empty array.
    let count = if (end - start).signum() * step.signum() < 0 { 0 } else { (end - start) / step + 1 };
    if count > MAX_RANGE_ITEMS {
        return Err(
            args.fail(format!("the range would hold {count} items, more than the maximum of {MAX_RANGE_ITEMS}"))
        );
    }
    let items = (0..count)
        .map(|k| i64::try_from(start + k * step).map(Value::from).map_err(|_| args.fail("range item out of bounds")))
        .collect::<Result<_, _>>()?;
    Ok(Value::Array(items))
}

fn array_get_item(mut args: Args) -> Result<Value, Failure> {
    let mut items = args.array(0)?;
    let index = args.exact_integer(1)?;
    let len = items.len();
    usize::try_from(index)
        .ok()
        .filter(|&i| i < len)
        .map(|i| items.swap_remove(i))
        .ok_or_else(|| args.fail(format!("index {index} is out of bounds for an array of length {len}")))
}

fn base64_decode(mut args: Args) -> Result<Value, Failure> {
    // MIME decoding tolerates line breaks and missing padding.
    const MIME: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let encoded = args.limited_string(0)?;
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = MIME.decode(compact).map_err(|e| args.fail(format!("the input is not valid Base64: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| args.fail("the decoded data is not valid UTF-8 text"))?;
    Ok(Value::String(text))
}

fn json_merge(mut args: Args) -> Result<Value, Failure> {
    let mut merged = args.object(0)?;
    let other = args.object(1)?;
    if args.boolean(2)? {
        return Err(args.fail(DEEP_MERGE_UNSUPPORTED));
    }
    merged.extend(other);
    Ok(Value::Object(merged))
}

fn math_random(mut args: Args, env: &mut Env<'_>) -> Result<Value, Failure> {
    let start = args.integer(0)?;
    let end = args.integer(1)?;
    let seed = if args.values.len() > 2 { Some(args.integer(2)?) } else { None };
    if start >= end {
        return Err(args.fail(format!("the start ({start}) must be less than the end ({end}), which is exclusive")));
    }
    // Non-negative and below 2^64 since start < end within i64.
    let span = (i128::from(end) - i128::from(start)) as u64;
    let offset = match seed {
        // A given seed must give the same number in every execution, so it drives its own
        // generator instead of the execution's.
        Some(seed) => {
            let mut generator = SplitMix64(seed as u64);
            uniform_below(span, || generator.next())
        }
        None => uniform_below(span, || env.rng.next_u64()),
    };
    let value = i128::from(start) + i128::from(offset);
    i64::try_from(value).map(Value::from).map_err(|_| args.fail("random value out of bounds"))
}

fn math_add(mut args: Args) -> Result<Value, Failure> {
    let mut sum = 0i64;
    for index in 0..2 {
        let n = args.integer(index)?;
        if i32::try_from(n).is_err() {
            return Err(args.fail(format!(
                "the {} argument {n} is outside the range {} to {}",
                ordinal(index),
                i32::MIN,
                i32::MAX
            )));
        }
        sum += n;
    }
    Ok(Value::from(sum))
}

/// A uniform integer in `0..n` (n > 0), by rejection so that no value is favoured.
fn uniform_below(n: u64, mut next: impl FnMut() -> u64) -> u64 {
    let zone = u64::MAX - u64::MAX % n;
    loop {
        let x = next();
        if x < zone {
            return x % n;
        }
    }
}

/// SplitMix64: a tiny generator whose output is fixed by its definition, so a seeded
/// States.MathRandom gives the same number across releases.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A key under which JSON-equal values compare equal: object keys sorted, and numbers of equal
/// value (`1` and `1.0`) written alike.
fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Number(n) => out.push_str(&canonical_number(n)),
            Value::Array(items) => {
                out.push('[');
                for item in items {
                    write(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (key, item) in entries {
                    out.push_str(&Value::from(key.as_str()).to_string());
                    out.push(':');
                    write(item, out);
                    out.push(',');
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn canonical_number(n: &Number) -> String {
    if n.is_f64() {
        if let Some(f) = n.as_f64() {
            if f.fract() == 0.0 && f.abs() < i64::MAX as f64 {
                return (f as i64).to_string();
            }
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn input() -> Value {
        json!({
            "name": "Arnav",
            "template": "Hello, my name is {}.",
            "n": 3,
            "list": [1, 2, 3, 3, 4],
            "obj": {"a": 1},
            "odd key": "spaced",
            "items": [{"x": 1}, {"x": 2}],
            "escaped": "{\"foo\": \"bar\"}",
        })
    }

    fn context() -> Value {
        json!({"Execution": {"Id": "arn:aws:states:local:execution:sm:e1", "Name": "e1"}, "Map": {"Item": {"Index": 2}}})
    }

    fn eval_with(text: &str, input: &Value) -> Result<Value, Failure> {
        let mut rng = StdRng::seed_from_u64(7);
        evaluate(text, input, &context(), &mut rng)
    }

    fn eval(text: &str) -> Value {
        eval_with(text, &input()).unwrap_or_else(|f| panic!("{text}: {f}"))
    }

    /// The cause of a failed evaluation; asserts the error name.
    fn fails(text: &str) -> String {
        match eval_with(text, &input()) {
            Ok(v) => panic!("{text} should fail, gave {v}"),
            Err(f) => {
                assert_eq!(f.error, "States.IntrinsicFailure", "{text}");
                f.cause
            }
        }
    }

    fn check_err(text: &str) -> String {
        match check(text) {
            Ok(()) => panic!("{text} should not pass the check"),
            Err(e) => e,
        }
    }

    // ---- recognition and syntax ----

    #[test]
    fn recognises_intrinsic_calls() {
        assert!(is_intrinsic("States.Format('x')"));
        assert!(is_intrinsic("States.UUID()"));
        assert!(is_intrinsic("States.Array ( 1 )"));
        assert!(is_intrinsic("States.Unknown(1)"));
        assert!(is_intrinsic("States.Format('x'"));
        assert!(!is_intrinsic("$.States.Format"));
        assert!(!is_intrinsic("States.Format"));
        assert!(!is_intrinsic("Hello States.Format('x')"));
        assert!(!is_intrinsic("$.a"));
        assert!(!is_intrinsic("states.Format('x')"));
    }

    #[test]
    fn check_accepts_valid_calls() {
        for text in [
            "States.Format('{} and {}', $.a, $$.Execution.Id)",
            "States.Array()",
            "States.Array(1, -2.5, 1e3, true, false, null, 'x', $.a, States.UUID())",
            "States.ArrayGetItem(States.StringSplit($.s, ','), 0)",
            "States.MathRandom(1, 10)",
            "States.MathRandom(1, 10, 42)",
            "States.Format('{}', $['odd key'])",
            "States.Array($.items[?(@.x > 1)].x, $.list[0:2])",
            "States.Array($['a,b'], $[\"c)d\"])",
            "  States.Array( 1 ,2 )  ",
            "States.JsonMerge($.a, $.b, false)",
            "States.Hash('x', 'SHA-256')",
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn check_rejects_unknown_functions() {
        assert!(check_err("States.Foo(1)").contains("unknown intrinsic function 'States.Foo'"));
        assert!(check_err("States.Array(Foo.Bar(1))").contains("not an intrinsic function"));
        assert!(check_err("States.format('x')").contains("unknown intrinsic function"));
    }

    #[test]
    fn check_rejects_wrong_argument_counts() {
        assert_eq!(check_err("States.ArrayLength($.a, $.b)"), "States.ArrayLength takes exactly 1 argument, got 2");
        assert_eq!(check_err("States.UUID(1)"), "States.UUID takes no arguments, got 1");
        assert_eq!(check_err("States.Format()"), "States.Format takes at least 1 argument, got 0");
        assert_eq!(check_err("States.MathRandom(1)"), "States.MathRandom takes 2 to 3 arguments, got 1");
        assert_eq!(check_err("States.MathRandom(1, 2, 3, 4)"), "States.MathRandom takes 2 to 3 arguments, got 4");
        assert_eq!(check_err("States.JsonMerge($.a, $.b)"), "States.JsonMerge takes exactly 3 arguments, got 2");
        assert!(check_err("States.Array(States.ArrayRange(1, 2))").contains("States.ArrayRange takes exactly 3"));
    }

    #[test]
    fn check_rejects_unbalanced_quotes_and_parentheses() {
        assert!(check_err("States.Format('abc)").contains("unterminated string literal"));
        assert!(check_err("States.Format('abc'").contains("missing ')'"));
        assert!(check_err("States.Array(1, ").contains("missing ')'"));
        assert!(check_err("States.Array(1))").contains("unexpected ')'"));
        assert!(check_err("States.Array(1 2)").contains("expected ',' or ')'"));
        assert!(check_err("States.Array(,)").contains("expected an argument"));
        assert!(check_err("States.Array(1,)").contains("expected an argument"));
        assert!(check_err("States.Array").contains("expected '('"));
        assert!(check_err("States.Array(\"x\")").contains("single quotes"));
        assert!(check_err("States.Format('a\\'b)").contains("unterminated"));
    }

    #[test]
    fn check_rejects_bad_paths_numbers_and_escapes() {
        assert!(check_err("States.Array($.a[)").contains("JSONPath"));
        assert!(check_err("States.Array($.a])").contains("unbalanced ']'"));
        assert!(check_err("States.Array($['a)").contains("unterminated JSONPath"));
        assert!(check_err("States.Array($var)").contains("JSONPath"));
        assert!(check_err("States.Array(1.2.3)").contains("invalid number '1.2.3'"));
        assert!(check_err("States.Array(-)").contains("invalid number"));
        assert!(check_err("States.Format('a\\nb')").contains("invalid escape sequence '\\n'"));
        assert!(check_err("States.Array(@)").contains("unexpected character '@'"));
    }

    #[test]
    fn check_rejects_literal_type_faults() {
        assert_eq!(
            check_err("States.ArrayLength('abc')"),
            "States.ArrayLength expects an array as its first argument, got string \"abc\""
        );
        assert!(check_err("States.MathAdd('1', 2)").contains("expects an integer as its first argument"));
        assert!(check_err("States.Format(1)").contains("expects a string"));
        assert!(check_err("States.JsonMerge($.a, $.b, 'no')").contains("expects a boolean as its third"));
        assert!(check_err("States.Format('{} {}', 1)").contains("2 '{}' placeholder(s) but 1 value(s)"));
        assert!(check_err("States.Hash('x', 'SHA256')").contains("unsupported hash algorithm 'SHA256'"));
        assert!(check_err("States.JsonMerge($.a, $.b, true)").contains("shallow merging mode"));
        // Faults inside nested calls are found too.
        assert!(check_err("States.Array(States.ArrayUnique(3))").contains("States.ArrayUnique expects an array"));
    }

    #[test]
    fn nesting_is_limited_to_ten_levels() {
        let nest = |levels: usize| {
            let mut text = "1".to_string();
            for _ in 0..levels {
                text = format!("States.Array({text})");
            }
            text
        };
        assert_eq!(check(&nest(10)), Ok(()));
        assert!(check_err(&nest(11)).contains("nested too deeply"));
        // Deep hostile input is refused rather than overflowing the stack.
        assert!(check(&nest(5000)).is_err());
    }

    #[test]
    fn syntax_errors_at_run_time_are_intrinsic_failures() {
        let cause = fails("States.Foo(1)");
        assert!(cause.starts_with("Invalid intrinsic function 'States.Foo(1)':"), "{cause}");
    }

    // ---- paths ----

    #[test]
    fn paths_read_input_and_context() {
        assert_eq!(eval("States.Array($.name, $$.Execution.Name, $$.Map.Item.Index)"), json!(["Arnav", "e1", 2]));
        assert_eq!(eval("States.Array($['odd key'])"), json!(["spaced"]));
        assert_eq!(eval("States.Array($.items[*].x)"), json!([[1, 2]]));
        assert_eq!(eval("States.Array($)"), json!([input()]));
    }

    #[test]
    fn missing_paths_fail() {
        assert_eq!(
            fails("States.Array($.missing)"),
            "Invalid arguments in States.Array: the JsonPath argument '$.missing' could not be found in the input"
        );
        assert!(fails("States.Array($$.Nope)").contains("could not be found in the context object"));
        assert!(fails("States.ArrayLength($.missing)").contains("States.ArrayLength"));
    }

    // ---- States.Format ----

    #[test]
    fn format_interpolates_values() {
        assert_eq!(eval("States.Format('Hello, my name is {}.', $.name)"), json!("Hello, my name is Arnav."));
        assert_eq!(eval("States.Format($.template, $.name)"), json!("Hello, my name is Arnav."));
        assert_eq!(
            eval("States.Format('{}|{}|{}|{}|{}|{}', 'a', 1, 2.5, true, null, $.n)"),
            json!("a|1|2.5|true|null|3")
        );
        assert_eq!(eval("States.Format('{}-{}', $.list, $.obj)"), json!("[1,2,3,3,4]-{\"a\":1}"));
        assert_eq!(eval("States.Format('no placeholders')"), json!("no placeholders"));
        assert_eq!(eval("States.Format('{}{}', 'a', 'b')"), json!("ab"));
        assert_eq!(eval("States.Format('id {}', States.ArrayLength($.list))"), json!("id 5"));
    }

    #[test]
    fn format_escapes() {
        assert_eq!(eval(r"States.Format('\{\} is literal, {} is not', 'x')"), json!("{} is literal, x is not"));
        assert_eq!(eval(r"States.Format('\{}')"), json!("{}"));
        assert_eq!(eval(r"States.Format('it\'s {}', 'me')"), json!("it's me"));
        assert_eq!(eval(r"States.Format('back\\slash {}', 1)"), json!(r"back\slash 1"));
        // A lone brace is plain text.
        assert_eq!(eval("States.Format('{ {} }', 1)"), json!("{ 1 }"));
        // Inserted values are never re-read as placeholders.
        assert_eq!(eval("States.Format('{}', '{}')"), json!("{}"));
    }

    #[test]
    fn format_faults() {
        assert_eq!(
            fails("States.Format($.template)"),
            "Invalid arguments in States.Format: the format string has 1 '{}' placeholder(s) but 0 value(s) follow it"
        );
        assert!(fails("States.Format('{}', 1, 2)").contains("1 '{}' placeholder(s) but 2 value(s)"));
        assert!(fails("States.Format($.n)").contains("expected a string as the first argument, got number 3"));
    }

    // ---- JSON ----

    #[test]
    fn string_to_json_parses() {
        assert_eq!(eval("States.StringToJson($.escaped)"), json!({"foo": "bar"}));
        assert_eq!(eval("States.StringToJson('[1, 2]')"), json!([1, 2]));
        assert_eq!(eval("States.StringToJson('\"s\"')"), json!("s"));
        assert_eq!(eval("States.StringToJson('  ')"), Value::Null);
        assert!(fails("States.StringToJson('{nope')").contains("not valid JSON"));
        assert!(fails("States.StringToJson($.obj)").contains("expected a string as the first argument"));
    }

    #[test]
    fn json_to_string_serialises_compactly() {
        assert_eq!(eval("States.JsonToString($.obj)"), json!("{\"a\":1}"));
        assert_eq!(eval("States.JsonToString($.list)"), json!("[1,2,3,3,4]"));
        assert_eq!(eval("States.JsonToString($.name)"), json!("\"Arnav\""));
        assert_eq!(eval("States.StringToJson(States.JsonToString($.items))"), json!([{"x": 1}, {"x": 2}]));
    }

    #[test]
    fn json_merge_is_shallow() {
        let input = json!({
            "json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
            "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}
        });
        assert_eq!(
            eval_with("States.JsonMerge($.json1, $.json2, false)", &input).unwrap(),
            json!({"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3})
        );
        let cause = eval_with("States.JsonMerge($.json1, $.json2, $.json1.b)", &input).unwrap_err().cause;
        assert!(cause.contains("expected a boolean as the third argument"), "{cause}");
        let deep = json!({"a": {}, "b": {}, "deep": true});
        let cause = eval_with("States.JsonMerge($.a, $.b, $.deep)", &deep).unwrap_err().cause;
        assert!(cause.contains("only supports the shallow merging mode"), "{cause}");
        assert!(
            fails("States.JsonMerge($.obj, $.list, false)").contains("expected a JSON object as the second argument")
        );
    }

    // ---- arrays ----

    #[test]
    fn array_builds_from_arguments() {
        assert_eq!(eval("States.Array()"), json!([]));
        assert_eq!(eval("States.Array('Foo', 2020, $.obj, null)"), json!(["Foo", 2020, {"a": 1}, null]));
        assert_eq!(eval("States.Array(-1, 0.5, 1e2)"), json!([-1, 0.5, 100.0]));
    }

    #[test]
    fn array_partition_chunks() {
        let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9]});
        assert_eq!(
            eval_with("States.ArrayPartition($.inputArray, 4)", &input).unwrap(),
            json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
        );
        assert_eq!(eval_with("States.ArrayPartition($.inputArray, 3.6)", &input).unwrap().as_array().unwrap().len(), 3);
        assert_eq!(eval("States.ArrayPartition(States.Array(), 2)"), json!([]));
        assert!(fails("States.ArrayPartition($.list, 0)").contains("chunk size must be a positive integer, got 0"));
        assert!(fails("States.ArrayPartition($.list, -2)").contains("positive integer"));
        assert!(fails("States.ArrayPartition($.obj, 2)").contains("expected an array as the first argument"));
        assert!(fails("States.ArrayPartition($.list, 'x')").contains("expected an integer as the second argument"));
    }

    #[test]
    fn array_contains_compares_json_values() {
        let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5, "objs": [{"a": 1, "b": [2]}]});
        assert_eq!(eval_with("States.ArrayContains($.inputArray, $.lookingFor)", &input).unwrap(), json!(true));
        assert_eq!(eval_with("States.ArrayContains($.inputArray, 10)", &input).unwrap(), json!(false));
        assert_eq!(eval_with("States.ArrayContains($.inputArray, 5.0)", &input).unwrap(), json!(true));
        assert_eq!(eval_with("States.ArrayContains($.inputArray, '5')", &input).unwrap(), json!(false));
        assert_eq!(
            eval_with("States.ArrayContains($.objs, States.StringToJson('{\"b\": [2], \"a\": 1}'))", &input).unwrap(),
            json!(true)
        );
        assert_eq!(eval("States.ArrayContains(States.Array(null), null)"), json!(true));
        assert!(fails("States.ArrayContains($.name, 1)").contains("expected an array"));
    }

    #[test]
    fn array_range_generates() {
        assert_eq!(eval("States.ArrayRange(1, 9, 2)"), json!([1, 3, 5, 7, 9]));
        assert_eq!(eval("States.ArrayRange(1, 10, 2)"), json!([1, 3, 5, 7, 9]));
        assert_eq!(eval("States.ArrayRange(5, 1, -2)"), json!([5, 3, 1]));
        assert_eq!(eval("States.ArrayRange(3, 3, 1)"), json!([3]));
        assert_eq!(eval("States.ArrayRange(5, 1, 1)"), json!([]));
        assert_eq!(eval("States.ArrayRange(0.6, 2.4, 1)"), json!([1, 2]));
        assert_eq!(eval("States.ArrayRange(1, 1000, 1)").as_array().unwrap().len(), 1000);
        assert!(fails("States.ArrayRange(1, 1001, 1)").contains("1001 items, more than the maximum of 1000"));
        assert!(fails("States.ArrayRange(1, 9, 0)").contains("must not be zero"));
        assert!(fails("States.ArrayRange(1, 9, 0.4)").contains("must not be zero"));
        assert!(fails("States.ArrayRange(1, $.name, 1)").contains("expected an integer as the second argument"));
        assert!(fails("States.ArrayRange(-9223372036854775808, 9223372036854775807, 1)").contains("maximum of 1000"));
    }

    #[test]
    fn array_get_item_indexes() {
        let input = json!({"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "index": 5});
        assert_eq!(eval_with("States.ArrayGetItem($.inputArray, $.index)", &input).unwrap(), json!(6));
        assert_eq!(eval("States.ArrayGetItem($.items, 1)"), json!({"x": 2}));
        assert_eq!(eval("States.ArrayGetItem($.list, 1.0)"), json!(2));
        assert_eq!(
            fails("States.ArrayGetItem($.list, 5)"),
            "Invalid arguments in States.ArrayGetItem: index 5 is out of bounds for an array of length 5"
        );
        assert!(fails("States.ArrayGetItem($.list, -1)").contains("out of bounds"));
        assert!(fails("States.ArrayGetItem($.list, 1.5)").contains("expected an integer as the second argument"));
        assert!(fails("States.ArrayGetItem($.obj, 0)").contains("expected an array as the first argument"));
    }

    #[test]
    fn array_length_counts() {
        assert_eq!(eval("States.ArrayLength($.list)"), json!(5));
        assert_eq!(eval("States.ArrayLength(States.Array())"), json!(0));
        assert_eq!(
            fails("States.ArrayLength($.obj)"),
            "Invalid arguments in States.ArrayLength: expected an array as the first argument, got object {\"a\":1}"
        );
    }

    #[test]
    fn array_unique_keeps_first_occurrences() {
        assert_eq!(eval("States.ArrayUnique($.list)"), json!([1, 2, 3, 4]));
        let input = json!({"a": [3, 1, 3, {"k": 1, "j": 2}, {"j": 2, "k": 1}, "3", 1.0, null, null]});
        assert_eq!(eval_with("States.ArrayUnique($.a)", &input).unwrap(), json!([3, 1, {"k": 1, "j": 2}, "3", null]));
        assert!(fails("States.ArrayUnique($.name)").contains("expected an array"));
    }

    // ---- encoding and hashing ----

    #[test]
    fn base64_round_trip() {
        assert_eq!(eval("States.Base64Encode('Data to encode')"), json!("RGF0YSB0byBlbmNvZGU="));
        assert_eq!(eval("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')"), json!("Data to encode"));
        assert_eq!(eval("States.Base64Decode('RGF0YSB0byBlbmNvZGU')"), json!("Data to encode"));
        assert_eq!(eval("States.Base64Decode(States.Base64Encode('héllo ✓'))"), json!("héllo ✓"));
        assert_eq!(eval("States.Base64Encode('')"), json!(""));
        let wrapped = json!({"b": "RGF0YSB0\r\nbyBlbmNvZGU="});
        assert_eq!(eval_with("States.Base64Decode($.b)", &wrapped).unwrap(), json!("Data to encode"));
    }

    #[test]
    fn base64_faults() {
        assert!(fails("States.Base64Decode('!!!!')").contains("not valid Base64"));
        assert!(fails("States.Base64Decode('/w==')").contains("not valid UTF-8"));
        assert!(fails("States.Base64Encode($.n)").contains("expected a string as the first argument"));
        let long = json!({"s": "a".repeat(10_001), "ok": "é".repeat(10_000)});
        assert!(eval_with("States.Base64Encode($.s)", &long).unwrap_err().cause.contains("10001 characters"));
        assert!(eval_with("States.Base64Encode($.ok)", &long).is_ok(), "the limit counts characters, not bytes");
        assert!(eval_with("States.Base64Decode($.s)", &long).unwrap_err().cause.contains("maximum of 10000"));
    }

    #[test]
    fn hash_algorithms() {
        assert_eq!(eval("States.Hash('input data', 'SHA-1')"), json!("aaff4a450a104cd177d28d18d74485e8cae074b7"));
        assert_eq!(eval("States.Hash('abc', 'MD5')"), json!("900150983cd24fb0d6963f7d28e17f72"));
        assert_eq!(
            eval("States.Hash('abc', 'SHA-256')"),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-384')"),
            json!("cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7")
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-512')"),
            json!("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
        );
    }

    #[test]
    fn hash_faults() {
        let input = json!({"alg": "sha-256", "long": "x".repeat(10_001)});
        assert!(eval_with("States.Hash('a', $.alg)", &input)
            .unwrap_err()
            .cause
            .contains("unsupported hash algorithm 'sha-256'"));
        assert!(eval_with("States.Hash($.long, 'MD5')", &input).unwrap_err().cause.contains("maximum of 10000"));
        assert!(fails("States.Hash($.obj, 'MD5')").contains("expected a string as the first argument"));
    }

    // ---- math ----

    #[test]
    fn math_add_sums_integers() {
        let input = json!({"value1": 111, "step": -1});
        assert_eq!(eval_with("States.MathAdd($.value1, $.step)", &input).unwrap(), json!(110));
        assert_eq!(eval("States.MathAdd(1.5, 1)"), json!(3));
        assert_eq!(eval("States.MathAdd(-1.5, 0)"), json!(-1));
        assert_eq!(eval("States.MathAdd(2147483647, 1)"), json!(2147483648i64));
        assert!(fails("States.MathAdd(2147483648, 1)").contains("outside the range -2147483648 to 2147483647"));
        assert!(fails("States.MathAdd(1, 'a')").contains("expected an integer as the second argument"));
        assert!(fails("States.MathAdd(1, 1e300)").contains("out of the integer range"));
    }

    #[test]
    fn math_random_stays_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let v = evaluate("States.MathRandom(1, 4)", &input(), &context(), &mut rng).unwrap();
            let v = v.as_i64().unwrap();
            assert!((1..4).contains(&v), "{v}");
        }
        assert_eq!(eval("States.MathRandom(-3, -2)"), json!(-3));
        assert!(eval("States.MathRandom(-9223372036854775808, 9223372036854775807)").is_i64());
    }

    #[test]
    fn math_random_is_reproducible() {
        let draw = |seed: u64, text: &str| {
            let mut rng = StdRng::seed_from_u64(seed);
            evaluate(text, &input(), &context(), &mut rng).unwrap()
        };
        // Same execution seed, same number (replays).
        assert_eq!(draw(9, "States.MathRandom(0, 1000000)"), draw(9, "States.MathRandom(0, 1000000)"));
        // An explicit seed fixes the number whatever the execution's generator.
        let seeded = draw(1, "States.MathRandom(0, 1000000, 42)");
        assert_eq!(seeded, draw(2, "States.MathRandom(0, 1000000, 42)"));
        assert_ne!(seeded, draw(1, "States.MathRandom(0, 1000000, 43)"));
    }

    #[test]
    fn math_random_faults() {
        assert!(fails("States.MathRandom(5, 5)").contains("must be less than the end (5), which is exclusive"));
        assert!(fails("States.MathRandom(5, 1)").contains("must be less than"));
        assert!(fails("States.MathRandom('a', 1)").contains("expected an integer as the first argument"));
        assert!(fails("States.MathRandom(1, 5, true)").contains("expected an integer as the third argument"));
    }

    // ---- strings and UUID ----

    #[test]
    fn string_split_on_any_delimiter_character() {
        assert_eq!(eval("States.StringSplit('1,2,3,4,5', ',')"), json!(["1", "2", "3", "4", "5"]));
        assert_eq!(
            eval("States.StringSplit('This.is+a,test=string', '.+,=')"),
            json!(["This", "is", "a", "test", "string"])
        );
        assert_eq!(eval("States.StringSplit(',a,,b,', ',')"), json!(["a", "b"]));
        assert_eq!(eval("States.StringSplit('abc', '')"), json!(["abc"]));
        assert_eq!(eval("States.StringSplit('', ',')"), json!([]));
        assert_eq!(eval("States.StringSplit('a b', ' ')"), json!(["a", "b"]));
        assert!(fails("States.StringSplit($.n, ',')").contains("expected a string as the first argument"));
        assert!(fails("States.StringSplit('a', 1)").contains("expected a string as the second argument"));
    }

    #[test]
    fn uuid_is_v4_and_follows_the_rng() {
        let v = eval("States.UUID()");
        let text = v.as_str().unwrap();
        let parsed = uuid::Uuid::parse_str(text).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.len(), 36);
        // eval() seeds the rng identically each time: the same UUID comes back.
        assert_eq!(eval("States.UUID()"), v);
        let mut rng = StdRng::seed_from_u64(7);
        let two = evaluate("States.Array(States.UUID(), States.UUID())", &input(), &context(), &mut rng).unwrap();
        assert_ne!(two[0], two[1]);
    }

    // ---- nesting ----

    #[test]
    fn nested_calls_compose() {
        let input = json!({"ImageRecipe": {"Arn": "arn:aws:imagebuilder:us-east-1:123:image-recipe/my.recipe/1.0.0"}});
        // The AWS documentation's example has three placeholders for two values, so it can
        // only fail; with two placeholders it works.
        let docs = "States.Format('{}.{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))";
        assert!(check(docs).unwrap_err().contains("3 '{}' placeholder(s) but 2 value(s)"));
        assert!(eval_with(docs, &input).unwrap_err().cause.contains("placeholder"));
        let text = "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 1))";
        assert_eq!(check(text), Ok(()));
        assert_eq!(eval_with(text, &input).unwrap(), json!("1.0"));
        assert_eq!(eval("States.ArrayLength(States.ArrayUnique(States.Array(1, 1, $.n, 3.0)))"), json!(2));
        // A fault deep inside names the function where it happened.
        assert!(fails("States.Array(States.ArrayLength($.name))").contains("States.ArrayLength"));
    }
}
