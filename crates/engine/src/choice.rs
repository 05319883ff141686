//! Choice state rules for the JSONPath query language: parsing a `Choices` array into
//! [`Choice`]s (collecting every validation fault) and evaluating a [`ChoiceRule`] against the
//! state's effective input and the context object (`$$`).
//!
//! Runtime semantics follow AWS Step Functions rather than only the written spec:
//!
//! * A comparison whose `Variable` value has the wrong type is false ("a comparison of a string
//!   to a number is false"); so is one whose value cannot be read as the operator's type (a
//!   `Timestamp*` comparison on a string that is not a timestamp).
//! * A `Variable` path that matches nothing fails with `States.Runtime` ("Invalid path '$.x': The
//!   choice state's condition path references an invalid value.") for every operator except
//!   `IsPresent`, which is simply false. AWS applies this to the other data-test operators too:
//!   `{"Variable": "$.missing", "IsNull": true}` (or `IsString`, ...) fails the execution rather
//!   than evaluating to false, which is why AWS users put `IsPresent` first inside an `Or`/`And`.
//! * `And`/`Or` short-circuit left to right, so that guard pattern works: a later operand that
//!   would fail is never evaluated.
//! * A `*Path` operand that matches nothing fails the same way, naming the operand's path.
//! * A `*Path` operand of the wrong type makes an `*Equals*Path` comparison false, but fails an
//!   ordering comparison (`*LessThanPath`, `*GreaterThanEqualsPath`, ...) with `States.Runtime`
//!   ("Invalid value provided at path ..."): that is what AWS was observed to do (recorded in
//!   the ManageIQ/floe test workflows); it is the least documented part of this module.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Number, Value};

use crate::error::{pointer_token, Diagnostics, Failure};
use crate::path;

/// A Choice Rule: a comparison, or a boolean combination of nested rules.
#[derive(Debug, Clone, PartialEq)]
pub enum ChoiceRule {
    And(Vec<ChoiceRule>),
    Or(Vec<ChoiceRule>),
    Not(Box<ChoiceRule>),
    Compare(Comparison),
}

/// One comparison: `{"Variable": "$.x", "<operator>[Path]": <operand>}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The JSONPath whose value is tested (`$...` on the input, `$$...` on the context object).
    pub variable: String,
    pub operator: Operator,
    pub operand: Operand,
}

/// A top-level Choice Rule and the state it transitions to when it matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub rule: ChoiceRule,
    pub next: String,
}

/// A comparison operator. The `*Path` forms are the same operator with an [`Operand::Path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

/// The right-hand side of a comparison, already checked against its operator's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// For `String*` operators, and the pattern of `StringMatches`.
    String(String),
    /// For `Numeric*` operators.
    Number(Number),
    /// For `BooleanEquals`, and the expected outcome of the `Is*` data tests.
    Boolean(bool),
    /// For `Timestamp*` operators.
    Timestamp(DateTime<FixedOffset>),
    /// For the `*Path` operators: a JSONPath resolved on the input or context at evaluation.
    Path(String),
}

impl Operator {
    pub const ALL: [Operator; 23] = [
        Operator::StringEquals,
        Operator::StringLessThan,
        Operator::StringGreaterThan,
        Operator::StringLessThanEquals,
        Operator::StringGreaterThanEquals,
        Operator::StringMatches,
        Operator::NumericEquals,
        Operator::NumericLessThan,
        Operator::NumericGreaterThan,
        Operator::NumericLessThanEquals,
        Operator::NumericGreaterThanEquals,
        Operator::BooleanEquals,
        Operator::TimestampEquals,
        Operator::TimestampLessThan,
        Operator::TimestampGreaterThan,
        Operator::TimestampLessThanEquals,
        Operator::TimestampGreaterThanEquals,
        Operator::IsNull,
        Operator::IsPresent,
        Operator::IsNumeric,
        Operator::IsString,
        Operator::IsBoolean,
        Operator::IsTimestamp,
    ];

    /// The ASL field name, without the `Path` suffix.
    pub fn name(self) -> &'static str {
        match self {
            Operator::StringEquals => "StringEquals",
            Operator::StringLessThan => "StringLessThan",
            Operator::StringGreaterThan => "StringGreaterThan",
            Operator::StringLessThanEquals => "StringLessThanEquals",
            Operator::StringGreaterThanEquals => "StringGreaterThanEquals",
            Operator::StringMatches => "StringMatches",
            Operator::NumericEquals => "NumericEquals",
            Operator::NumericLessThan => "NumericLessThan",
            Operator::NumericGreaterThan => "NumericGreaterThan",
            Operator::NumericLessThanEquals => "NumericLessThanEquals",
            Operator::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            Operator::BooleanEquals => "BooleanEquals",
            Operator::TimestampEquals => "TimestampEquals",
            Operator::TimestampLessThan => "TimestampLessThan",
            Operator::TimestampGreaterThan => "TimestampGreaterThan",
            Operator::TimestampLessThanEquals => "TimestampLessThanEquals",
            Operator::TimestampGreaterThanEquals => "TimestampGreaterThanEquals",
            Operator::IsNull => "IsNull",
            Operator::IsPresent => "IsPresent",
            Operator::IsNumeric => "IsNumeric",
            Operator::IsString => "IsString",
            Operator::IsBoolean => "IsBoolean",
            Operator::IsTimestamp => "IsTimestamp",
        }
    }

    /// The operator named `name` (without the `Path` suffix).
    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether ASL defines a `<name>Path` form: every comparison but `StringMatches` and the
    /// `Is*` data tests.
    pub fn has_path_variant(self) -> bool {
        !matches!(self.test(), Test::Matches | Test::Is(_))
    }

    /// The field name as written in a definition for this operand kind.
    fn field_name(self, operand: &Operand) -> String {
        match operand {
            Operand::Path(_) => format!("{}Path", self.name()),
            _ => self.name().to_string(),
        }
    }

    fn test(self) -> Test {
        use DataType as T;
        use Relation as R;
        match self {
            Operator::StringEquals => Test::Compare(T::String, R::Equals),
            Operator::StringLessThan => Test::Compare(T::String, R::LessThan),
            Operator::StringGreaterThan => Test::Compare(T::String, R::GreaterThan),
            Operator::StringLessThanEquals => Test::Compare(T::String, R::LessThanEquals),
            Operator::StringGreaterThanEquals => Test::Compare(T::String, R::GreaterThanEquals),
            Operator::StringMatches => Test::Matches,
            Operator::NumericEquals => Test::Compare(T::Numeric, R::Equals),
            Operator::NumericLessThan => Test::Compare(T::Numeric, R::LessThan),
            Operator::NumericGreaterThan => Test::Compare(T::Numeric, R::GreaterThan),
            Operator::NumericLessThanEquals => Test::Compare(T::Numeric, R::LessThanEquals),
            Operator::NumericGreaterThanEquals => Test::Compare(T::Numeric, R::GreaterThanEquals),
            Operator::BooleanEquals => Test::Compare(T::Boolean, R::Equals),
            Operator::TimestampEquals => Test::Compare(T::Timestamp, R::Equals),
            Operator::TimestampLessThan => Test::Compare(T::Timestamp, R::LessThan),
            Operator::TimestampGreaterThan => Test::Compare(T::Timestamp, R::GreaterThan),
            Operator::TimestampLessThanEquals => Test::Compare(T::Timestamp, R::LessThanEquals),
            Operator::TimestampGreaterThanEquals => Test::Compare(T::Timestamp, R::GreaterThanEquals),
            Operator::IsNull => Test::Is(TypeCheck::Null),
            Operator::IsPresent => Test::Is(TypeCheck::Present),
            Operator::IsNumeric => Test::Is(TypeCheck::Type(T::Numeric)),
            Operator::IsString => Test::Is(TypeCheck::Type(T::String)),
            Operator::IsBoolean => Test::Is(TypeCheck::Type(T::Boolean)),
            Operator::IsTimestamp => Test::Is(TypeCheck::Type(T::Timestamp)),
        }
    }
}

/// What an operator does, so that evaluation and validation are written once per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Compare(DataType, Relation),
    Matches,
    Is(TypeCheck),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

impl DataType {
    fn described(self) -> &'static str {
        match self {
            DataType::String => "a string",
            DataType::Numeric => "a number",
            DataType::Boolean => "a boolean",
            DataType::Timestamp => "a timestamp (RFC 3339 with an uppercase T and Z, such as 2016-03-14T01:59:00Z)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

impl Relation {
    /// Whether `variable <relation> operand` holds, given `variable.cmp(operand)`.
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Relation::Equals => ordering.is_eq(),
            Relation::LessThan => ordering.is_lt(),
            Relation::GreaterThan => ordering.is_gt(),
            Relation::LessThanEquals => ordering.is_le(),
            Relation::GreaterThanEquals => ordering.is_ge(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeCheck {
    Null,
    Present,
    Type(DataType),
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

/// Parses the `Choices` array of a Choice state found at JSON pointer `pointer` (e.g.
/// "/States/Route/Choices"). Collects every fault into `diags` with the JSON pointer of the
/// faulty value (it doesn't stop at the first), and returns the rules that parsed.
pub fn parse_choices(choices: &Value, pointer: &str, diags: &mut Diagnostics) -> Vec<Choice> {
    let Some(items) = choices.as_array() else {
        diags.push(pointer, format!("Choices must be an array of Choice Rules, not {}", a_type(choices)));
        return Vec::new();
    };
    if items.is_empty() {
        diags.push(pointer, "Choices must not be empty: a Choice state needs at least one Choice Rule");
    }
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let at = format!("{pointer}/{i}");
            // Both run before either `?`, so a faulty rule still has its Next checked.
            let rule = parse_rule(item, &at, true, diags);
            let next = parse_next(item, &at, diags);
            Some(Choice { rule: rule?, next: next? })
        })
        .collect()
}

fn parse_next(item: &Value, at: &str, diags: &mut Diagnostics) -> Option<String> {
    // A rule that is not an object was already reported by `parse_rule`.
    let fields = item.as_object()?;
    match fields.get("Next") {
        Some(Value::String(next)) => Some(next.clone()),
        Some(other) => {
            diags.push(
                field_pointer(at, "Next"),
                format!("Next must be a state name (a string), not {}", a_type(other)),
            );
            None
        }
        None => {
            diags.push(at, "a top-level Choice Rule must have a Next field");
            None
        }
    }
}

/// Parses one Choice Rule at `at`; `top_level` rules carry `Next`, nested ones must not.
fn parse_rule(value: &Value, at: &str, top_level: bool, diags: &mut Diagnostics) -> Option<ChoiceRule> {
    let Some(fields) = value.as_object() else {
        diags.push(at, format!("a Choice Rule must be an object, not {}", a_type(value)));
        return None;
    };

    let mut valid = true;
    let mut operators: Vec<&str> = Vec::new();
    for (key, field) in fields {
        match key.as_str() {
            "And" | "Or" | "Not" => operators.push(key.as_str()),
            "Variable" => {}
            "Next" if top_level => {}
            "Next" => {
                diags.push(
                    field_pointer(at, key),
                    "Next is only allowed in a top-level Choice Rule, not inside And, Or or Not",
                );
                valid = false;
            }
            "Comment" if field.is_string() => {}
            "Comment" => {
                diags.push(field_pointer(at, key), format!("Comment must be a string, not {}", a_type(field)));
                valid = false;
            }
            other if operator_key(other).is_some() => operators.push(other),
            other => {
                diags.push(field_pointer(at, key), format!("'{other}' is not a field of a Choice Rule"));
                valid = false;
            }
        }
    }

    let operator = match operators[..] {
        [operator] => operator,
        [] => {
            diags.push(at, "a Choice Rule must have one comparison operator (such as StringEquals), or And, Or or Not");
            return None;
        }
        _ => {
            diags.push(at, format!("a Choice Rule must have exactly one operator, found {}", operators.join(", ")));
            return None;
        }
    };

    let rule = match operator {
        "And" | "Or" | "Not" => {
            if fields.contains_key("Variable") {
                diags.push(field_pointer(at, "Variable"), format!("Variable is not allowed beside {operator}"));
                valid = false;
            }
            let operand = fields.get(operator)?;
            let operand_at = field_pointer(at, operator);
            match operator {
                "And" => parse_rule_list(operand, operator, &operand_at, diags).map(ChoiceRule::And),
                "Or" => parse_rule_list(operand, operator, &operand_at, diags).map(ChoiceRule::Or),
                _ => parse_rule(operand, &operand_at, false, diags).map(|rule| ChoiceRule::Not(Box::new(rule))),
            }
        }
        key => parse_comparison(fields, key, at, diags).map(ChoiceRule::Compare),
    };
    rule.filter(|_| valid)
}

/// The operands of `And`/`Or`: a non-empty array of nested rules.
fn parse_rule_list(value: &Value, name: &str, at: &str, diags: &mut Diagnostics) -> Option<Vec<ChoiceRule>> {
    let items = match value.as_array() {
        Some(items) if !items.is_empty() => items,
        Some(_) => {
            diags.push(at, format!("{name} must be a non-empty array of Choice Rules"));
            return None;
        }
        None => {
            diags.push(at, format!("{name} must be a non-empty array of Choice Rules, not {}", a_type(value)));
            return None;
        }
    };
    // Collect first so that every nested rule is validated even after one fails.
    let rules: Vec<Option<ChoiceRule>> =
        items.iter().enumerate().map(|(i, item)| parse_rule(item, &format!("{at}/{i}"), false, diags)).collect();
    rules.into_iter().collect()
}

/// Splits a field name into its operator and whether it is the `*Path` form.
fn operator_key(key: &str) -> Option<(Operator, bool)> {
    if let Some(operator) = Operator::from_name(key) {
        return Some((operator, false));
    }
    let operator = Operator::from_name(key.strip_suffix("Path")?)?;
    operator.has_path_variant().then_some((operator, true))
}

fn parse_comparison(fields: &Map<String, Value>, key: &str, at: &str, diags: &mut Diagnostics) -> Option<Comparison> {
    let (operator, is_path) = operator_key(key)?;
    let variable = match fields.get("Variable") {
        Some(Value::String(text)) => match path::check_syntax(text) {
            Ok(()) => Some(text.clone()),
            Err(e) => {
                diags.push(field_pointer(at, "Variable"), format!("Variable must be a valid JSONPath: {e}"));
                None
            }
        },
        Some(other) => {
            diags.push(
                field_pointer(at, "Variable"),
                format!("Variable must be a JSONPath string, not {}", a_type(other)),
            );
            None
        }
        None => {
            diags.push(at, format!("{key} needs a Variable field"));
            None
        }
    };
    let operand = match parse_operand(operator, is_path, fields.get(key)?, key) {
        Ok(operand) => Some(operand),
        Err(message) => {
            diags.push(field_pointer(at, key), message);
            None
        }
    };
    Some(Comparison { variable: variable?, operator, operand: operand? })
}

/// Checks that the operand of `key` has the type its operator needs.
fn parse_operand(operator: Operator, is_path: bool, value: &Value, key: &str) -> Result<Operand, String> {
    if is_path {
        let Value::String(text) = value else {
            return Err(format!("{key} must be a JSONPath string, not {}", a_type(value)));
        };
        return path::check_syntax(text)
            .map(|()| Operand::Path(text.clone()))
            .map_err(|e| format!("{key} must be a valid JSONPath: {e}"));
    }
    let expected = match operator.test() {
        Test::Compare(data_type, _) => data_type,
        Test::Matches => DataType::String,
        Test::Is(_) => DataType::Boolean,
    };
    let operand = match (expected, value) {
        (DataType::String, Value::String(s)) => Some(Operand::String(s.clone())),
        (DataType::Numeric, Value::Number(n)) => Some(Operand::Number(n.clone())),
        (DataType::Boolean, Value::Bool(b)) => Some(Operand::Boolean(*b)),
        (DataType::Timestamp, Value::String(s)) => parse_timestamp(s).map(Operand::Timestamp),
        _ => None,
    };
    operand.ok_or_else(|| {
        let found = match value {
            Value::String(s) => format!("'{s}'"),
            other => a_type(other),
        };
        format!("{key} must be {}, not {found}", expected.described())
    })
}

fn field_pointer(at: &str, key: &str) -> String {
    format!("{at}/{}", pointer_token(key))
}

/// "a string", "an object", "null": a value's type for messages.
fn a_type(value: &Value) -> String {
    match path::type_name(value) {
        "null" => "null".to_string(),
        name @ ("array" | "object") => format!("an {name}"),
        name => format!("a {name}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Evaluates a rule against the state's effective input and the context object (`$$`).
pub fn evaluate(rule: &ChoiceRule, input: &Value, context: &Value) -> Result<bool, Failure> {
    match rule {
        // Short-circuit like AWS: `{"Or": [{"IsPresent": false}, {"IsNull": true}]}` must not
        // fail on a missing field just because the second test would.
        ChoiceRule::And(rules) => {
            for rule in rules {
                if !evaluate(rule, input, context)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        ChoiceRule::Or(rules) => {
            for rule in rules {
                if evaluate(rule, input, context)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        ChoiceRule::Not(rule) => Ok(!evaluate(rule, input, context)?),
        ChoiceRule::Compare(comparison) => evaluate_comparison(comparison, input, context),
    }
}

fn evaluate_comparison(c: &Comparison, input: &Value, context: &Value) -> Result<bool, Failure> {
    let found = path::select(input, context, &c.variable).map_err(Failure::runtime)?;
    match c.operator.test() {
        Test::Is(check) => {
            let Operand::Boolean(expected) = c.operand else { return Err(malformed(c)) };
            let outcome = match (check, &found) {
                (TypeCheck::Present, found) => found.is_some(),
                (_, None) => return Err(invalid_path(&c.variable)),
                (TypeCheck::Null, Some(value)) => value.is_null(),
                (TypeCheck::Type(data_type), Some(value)) => Literal::of(data_type, value).is_some(),
            };
            Ok(outcome == expected)
        }
        Test::Matches => {
            let value = found.ok_or_else(|| invalid_path(&c.variable))?;
            let Operand::String(pattern) = &c.operand else { return Err(malformed(c)) };
            Ok(value.as_str().is_some_and(|text| wildcard_match(text, pattern)))
        }
        Test::Compare(data_type, relation) => {
            let value = found.ok_or_else(|| invalid_path(&c.variable))?;
            let fetched;
            let operand = match &c.operand {
                Operand::Path(operand_path) => {
                    fetched = path::select(input, context, operand_path)
                        .map_err(Failure::runtime)?
                        .ok_or_else(|| invalid_path(operand_path))?;
                    match Literal::of(data_type, &fetched) {
                        Some(literal) => literal,
                        // AWS: equality with a value of another type is just false, but an
                        // ordering comparison fails (see the module documentation).
                        None if relation == Relation::Equals => return Ok(false),
                        None => {
                            return Err(Failure::runtime(format!(
                                "Invalid value provided at path '{operand_path}': {} needs {}, found {}.",
                                c.operator.field_name(&c.operand),
                                data_type.described(),
                                a_type(&fetched)
                            )))
                        }
                    }
                }
                literal => Literal::from_operand(data_type, literal).ok_or_else(|| malformed(c))?,
            };
            // The Variable's own type is never an error: a mismatch is simply false.
            Ok(Literal::of(data_type, &value)
                .and_then(|variable| variable.compare(&operand))
                .is_some_and(|ordering| relation.holds(ordering)))
        }
    }
}

/// A typed value on either side of a comparison.
enum Literal<'a> {
    String(&'a str),
    Number(&'a Number),
    Boolean(bool),
    Timestamp(DateTime<FixedOffset>),
}

impl<'a> Literal<'a> {
    /// `value` read as `data_type`; `None` when it is not one.
    fn of(data_type: DataType, value: &'a Value) -> Option<Literal<'a>> {
        match (data_type, value) {
            (DataType::String, Value::String(s)) => Some(Literal::String(s)),
            (DataType::Numeric, Value::Number(n)) => Some(Literal::Number(n)),
            (DataType::Boolean, Value::Bool(b)) => Some(Literal::Boolean(*b)),
            (DataType::Timestamp, Value::String(s)) => parse_timestamp(s).map(Literal::Timestamp),
            _ => None,
        }
    }

    /// A literal operand, if it has the type the operator needs (parsing guarantees it does;
    /// only a rule built by hand can disagree).
    fn from_operand(data_type: DataType, operand: &'a Operand) -> Option<Literal<'a>> {
        match (data_type, operand) {
            (DataType::String, Operand::String(s)) => Some(Literal::String(s)),
            (DataType::Numeric, Operand::Number(n)) => Some(Literal::Number(n)),
            (DataType::Boolean, Operand::Boolean(b)) => Some(Literal::Boolean(*b)),
            (DataType::Timestamp, Operand::Timestamp(t)) => Some(Literal::Timestamp(*t)),
            _ => None,
        }
    }

    fn compare(&self, other: &Literal<'_>) -> Option<Ordering> {
        match (self, other) {
            (Literal::String(a), Literal::String(b)) => Some(compare_strings(a, b)),
            (Literal::Number(a), Literal::Number(b)) => compare_numbers(a, b),
            (Literal::Boolean(a), Literal::Boolean(b)) => Some(a.cmp(b)),
            // Compares the instants, so equal times written with different offsets are equal.
            (Literal::Timestamp(a), Literal::Timestamp(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

fn invalid_path(path: &str) -> Failure {
    Failure::runtime(format!("Invalid path '{path}': The choice state's condition path references an invalid value."))
}

/// A rule assembled by hand whose operand does not fit its operator (parsing never makes one).
fn malformed(c: &Comparison) -> Failure {
    Failure::runtime(format!("malformed Choice Rule: {} cannot take the operand {:?}", c.operator.name(), c.operand))
}

/// String order as AWS defines it: Java's `String.compareTo`, which compares UTF-16 code units.
/// That differs from Rust's code-point order for characters above U+FFFF against U+E000..U+FFFF.
fn compare_strings(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Compares two JSON numbers: integers exactly, floats as f64, and an integer against a float
/// exactly too (converting a large integer to f64 would round it).
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_integer(a), as_integer(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => compare_integer_float(x, b.as_f64()?),
        (None, Some(y)) => compare_integer_float(y, a.as_f64()?).map(Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn as_integer(n: &Number) -> Option<i128> {
    n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
}

fn compare_integer_float(integer: i128, float: f64) -> Option<Ordering> {
    // Every i64/u64 lies within ±2^64, so a float beyond that decides on its own; within it,
    // the float's floor converts to i128 exactly.
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    if float.is_nan() {
        return None;
    }
    if float >= TWO_POW_64 {
        return Some(Ordering::Less);
    }
    if float < -TWO_POW_64 {
        return Some(Ordering::Greater);
    }
    let floor = float.floor();
    Some(match integer.cmp(&(floor as i128)) {
        // integer == floor(float): less unless the float has no fractional part.
        Ordering::Equal if float > floor => Ordering::Less,
        // integer > floor(float) means integer >= floor + 1 > float.
        ordering => ordering,
    })
}

/// Parses an ASL timestamp: RFC 3339, with AWS's restrictions that the date and time are
/// separated by an uppercase `T` and UTC is written as an uppercase `Z`. chrono also accepts
/// `t`, `z` and a space, so those are refused first.
fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    if text.as_bytes().get(10) != Some(&b'T') || text.contains('z') {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok()
}

/// One element of a `StringMatches` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `*`: zero or more characters.
    Star,
    Char(char),
}

/// Reads a `StringMatches` pattern: `*` is the only wildcard, `\*` a literal star and `\\` a
/// literal backslash. The spec defines no other escape, so a backslash before any other
/// character (or at the end) is taken literally rather than rejected.
fn pattern_tokens(pattern: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // Consecutive stars match the same as one; merging them keeps matching linear.
            '*' if tokens.last() == Some(&Token::Star) => {}
            '*' => tokens.push(Token::Star),
            '\\' => match chars.next_if(|next| matches!(next, '*' | '\\')) {
                Some(escaped) => tokens.push(Token::Char(escaped)),
                None => tokens.push(Token::Char('\\')),
            },
            c => tokens.push(Token::Char(c)),
        }
    }
    tokens
}

/// Whether the whole of `text` matches the `StringMatches` `pattern`.
fn wildcard_match(text: &str, pattern: &str) -> bool {
    let tokens = pattern_tokens(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    // After a star: the token after it, and the text position the star's match ends at. On a
    // mismatch the star swallows one more character; only the latest star ever needs revisiting.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Token::Star) => {
                p += 1;
                resume = Some((p, t));
            }
            _ => match resume {
                Some((after_star, star_end)) => {
                    p = after_star;
                    t = star_end + 1;
                    resume = Some((after_star, t));
                }
                None => return false,
            },
        }
    }
    tokens.iter().skip(p).all(|token| *token == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses a single top-level rule (with a Next added), panicking on any diagnostic.
    fn rule(mut value: Value) -> ChoiceRule {
        value["Next"] = json!("Next");
        let mut diags = Diagnostics::default();
        let mut choices = parse_choices(&json!([value]), "/Choices", &mut diags);
        assert!(diags.is_empty(), "unexpected diagnostics: {diags}");
        assert_eq!(choices.len(), 1);
        choices.remove(0).rule
    }

    fn eval(value: Value, input: Value) -> Result<bool, Failure> {
        evaluate(&rule(value), &input, &json!({}))
    }

    fn holds(value: Value, input: Value) -> bool {
        eval(value, input).expect("evaluation failed")
    }

    /// The diagnostics of a whole Choices array, as (pointer, message) pairs.
    fn diagnostics(choices: Value) -> Vec<(String, String)> {
        let mut diags = Diagnostics::default();
        parse_choices(&choices, "/States/Route/Choices", &mut diags);
        diags.iter().map(|d| (d.pointer.clone(), d.message.clone())).collect()
    }

    fn pointers(choices: Value) -> Vec<String> {
        diagnostics(choices).into_iter().map(|(pointer, _)| pointer).collect()
    }

    // ---- parsing ----------------------------------------------------------------------------

    #[test]
    fn parses_a_comparison_with_next() {
        let mut diags = Diagnostics::default();
        let choices = parse_choices(
            &json!([{"Variable": "$.type", "StringEquals": "Private", "Next": "Public", "Comment": "why"}]),
            "/States/Route/Choices",
            &mut diags,
        );
        assert!(diags.is_empty());
        assert_eq!(
            choices,
            vec![Choice {
                rule: ChoiceRule::Compare(Comparison {
                    variable: "$.type".into(),
                    operator: Operator::StringEquals,
                    operand: Operand::String("Private".into()),
                }),
                next: "Public".into(),
            }]
        );
    }

    #[test]
    fn parses_nested_boolean_rules() {
        let parsed = rule(json!({
            "And": [
                {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                {"Not": {"Variable": "$.value", "NumericLessThanPath": "$.limit"}},
                {"Or": [{"Variable": "$.flag", "IsPresent": false}, {"Variable": "$.flag", "BooleanEquals": true}]}
            ]
        }));
        let compare = |variable: &str, operator, operand| {
            ChoiceRule::Compare(Comparison { variable: variable.into(), operator, operand })
        };
        assert_eq!(
            parsed,
            ChoiceRule::And(vec![
                compare("$.value", Operator::NumericGreaterThanEquals, Operand::Number(20.into())),
                ChoiceRule::Not(Box::new(compare(
                    "$.value",
                    Operator::NumericLessThan,
                    Operand::Path("$.limit".into())
                ))),
                ChoiceRule::Or(vec![
                    compare("$.flag", Operator::IsPresent, Operand::Boolean(false)),
                    compare("$.flag", Operator::BooleanEquals, Operand::Boolean(true)),
                ]),
            ])
        );
    }

    #[test]
    fn every_operator_and_path_variant_parses() {
        for operator in Operator::ALL {
            let operand = match operator.test() {
                Test::Compare(DataType::String, _) | Test::Matches => json!("a*"),
                Test::Compare(DataType::Numeric, _) => json!(1.5),
                Test::Compare(DataType::Boolean, _) | Test::Is(_) => json!(true),
                Test::Compare(DataType::Timestamp, _) => json!("2016-03-14T01:59:00Z"),
            };
            let parsed = rule(json!({"Variable": "$.x", operator.name(): operand}));
            assert!(matches!(parsed, ChoiceRule::Compare(Comparison { operator: op, .. }) if op == operator));
            if operator.has_path_variant() {
                let name = format!("{}Path", operator.name());
                let parsed = rule(json!({"Variable": "$.x", name: "$$.Execution.Input.y"}));
                assert_eq!(
                    parsed,
                    ChoiceRule::Compare(Comparison {
                        variable: "$.x".into(),
                        operator,
                        operand: Operand::Path("$$.Execution.Input.y".into()),
                    })
                );
            }
        }
        assert_eq!(Operator::ALL.iter().filter(|op| op.has_path_variant()).count(), 16);
    }

    #[test]
    fn operators_without_a_path_form_are_unknown_fields() {
        for name in ["StringMatchesPath", "IsNullPath", "IsPresentPath", "StringEqual"] {
            let found = diagnostics(json!([{"Variable": "$.x", name: "$.y", "Next": "A"}]));
            assert!(
                found.contains(&(
                    format!("/States/Route/Choices/0/{name}"),
                    format!("'{name}' is not a field of a Choice Rule")
                )),
                "{name}: {found:?}"
            );
        }
    }

    // ---- validation diagnostics -------------------------------------------------------------

    #[test]
    fn choices_must_be_a_non_empty_array() {
        assert_eq!(
            diagnostics(json!({"Variable": "$.x"})),
            vec![("/States/Route/Choices".into(), "Choices must be an array of Choice Rules, not an object".into())]
        );
        assert_eq!(pointers(json!([])), vec!["/States/Route/Choices"]);
    }

    #[test]
    fn top_level_rules_need_next_and_nested_rules_must_not_have_it() {
        assert_eq!(
            diagnostics(json!([{"Variable": "$.x", "IsNull": true}])),
            vec![("/States/Route/Choices/0".into(), "a top-level Choice Rule must have a Next field".into())]
        );
        assert_eq!(
            pointers(json!([{"Variable": "$.x", "IsNull": true, "Next": 3}])),
            vec!["/States/Route/Choices/0/Next"]
        );
        assert_eq!(
            pointers(json!([{"Not": {"Variable": "$.x", "IsNull": true, "Next": "A"}, "Next": "B"}])),
            vec!["/States/Route/Choices/0/Not/Next"]
        );
        assert_eq!(
            pointers(json!([{
                "Or": [{"Variable": "$.x", "IsNull": true}, {"Variable": "$.x", "IsString": true, "Next": "A"}],
                "Next": "B"
            }])),
            vec!["/States/Route/Choices/0/Or/1/Next"]
        );
    }

    #[test]
    fn a_rule_needs_exactly_one_operator() {
        assert_eq!(
            diagnostics(json!([{"Variable": "$.x", "Next": "A"}])),
            vec![(
                "/States/Route/Choices/0".into(),
                "a Choice Rule must have one comparison operator (such as StringEquals), or And, Or or Not".into()
            )]
        );
        assert_eq!(
            diagnostics(json!([{"Variable": "$.x", "StringEquals": "a", "NumericEquals": 1, "Next": "A"}])),
            vec![(
                "/States/Route/Choices/0".into(),
                "a Choice Rule must have exactly one operator, found StringEquals, NumericEquals".into()
            )]
        );
        assert_eq!(
            pointers(json!([{
                "And": [{"Variable": "$.x", "IsNull": true}],
                "Not": {"Variable": "$.x", "IsNull": true},
                "Next": "A"
            }])),
            vec!["/States/Route/Choices/0"]
        );
    }

    #[test]
    fn operand_types_must_fit_the_operator() {
        let cases = [
            (json!({"StringEquals": 5}), "StringEquals", "StringEquals must be a string, not a number"),
            (json!({"StringMatches": ["a"]}), "StringMatches", "StringMatches must be a string, not an array"),
            (json!({"NumericLessThan": "5"}), "NumericLessThan", "NumericLessThan must be a number, not '5'"),
            (json!({"BooleanEquals": "true"}), "BooleanEquals", "BooleanEquals must be a boolean, not 'true'"),
            (json!({"IsNull": null}), "IsNull", "IsNull must be a boolean, not null"),
            (json!({"IsPresent": 1}), "IsPresent", "IsPresent must be a boolean, not a number"),
            (
                json!({"NumericEqualsPath": 5}),
                "NumericEqualsPath",
                "NumericEqualsPath must be a JSONPath string, not a number",
            ),
        ];
        for (mut rule, key, message) in cases {
            rule["Variable"] = json!("$.x");
            rule["Next"] = json!("A");
            assert_eq!(
                diagnostics(json!([rule])),
                vec![(format!("/States/Route/Choices/0/{key}"), message.to_string())]
            );
        }
    }

    #[test]
    fn timestamp_operands_must_be_aws_timestamps() {
        for bad in [
            "2016-03-14",
            "2016-03-14t01:59:00Z",
            "2016-03-14T01:59:00z",
            "2016-03-14 01:59:00Z",
            "2016-03-14T01:59:00",
            "yesterday",
        ] {
            let found = diagnostics(json!([{"Variable": "$.t", "TimestampEquals": bad, "Next": "A"}]));
            assert_eq!(found.len(), 1, "{bad}");
            assert_eq!(found[0].0, "/States/Route/Choices/0/TimestampEquals");
            assert!(found[0].1.starts_with("TimestampEquals must be a timestamp"), "{}", found[0].1);
        }
        assert!(diagnostics(
            json!([{"Variable": "$.t", "TimestampEquals": "2016-03-14T01:59:00.123+05:30", "Next": "A"}])
        )
        .is_empty());
    }

    #[test]
    fn variable_and_operand_paths_must_be_valid() {
        assert_eq!(
            pointers(json!([{"Variable": "x", "IsNull": true, "Next": "A"}])),
            vec!["/States/Route/Choices/0/Variable"]
        );
        assert_eq!(
            pointers(json!([{"Variable": 3, "IsNull": true, "Next": "A"}])),
            vec!["/States/Route/Choices/0/Variable"]
        );
        assert_eq!(
            pointers(json!([{"Variable": "$.a[?(", "IsNull": true, "Next": "A"}])),
            vec!["/States/Route/Choices/0/Variable"]
        );
        assert_eq!(
            diagnostics(json!([{"IsNull": true, "Next": "A"}])),
            vec![("/States/Route/Choices/0".into(), "IsNull needs a Variable field".into())]
        );
        assert_eq!(
            pointers(json!([{"Variable": "$.x", "StringEqualsPath": "other", "Next": "A"}])),
            vec!["/States/Route/Choices/0/StringEqualsPath"]
        );
        // Both faults of one comparison are reported.
        assert_eq!(
            pointers(json!([{"Variable": "x", "StringEqualsPath": "y", "Next": "A"}])),
            vec!["/States/Route/Choices/0/Variable", "/States/Route/Choices/0/StringEqualsPath"]
        );
    }

    #[test]
    fn boolean_operators_need_rules() {
        assert_eq!(
            diagnostics(json!([{"And": [], "Next": "A"}])),
            vec![("/States/Route/Choices/0/And".into(), "And must be a non-empty array of Choice Rules".into())]
        );
        assert_eq!(
            pointers(json!([{"Or": {"Variable": "$.x", "IsNull": true}, "Next": "A"}])),
            vec!["/States/Route/Choices/0/Or"]
        );
        assert_eq!(
            diagnostics(json!([{"Not": [{"Variable": "$.x", "IsNull": true}], "Next": "A"}])),
            vec![("/States/Route/Choices/0/Not".into(), "a Choice Rule must be an object, not an array".into())]
        );
        assert_eq!(
            pointers(json!([{"Not": {"Variable": "$.x", "IsNull": true}, "Variable": "$.x", "Next": "A"}])),
            vec!["/States/Route/Choices/0/Variable"]
        );
        assert_eq!(
            pointers(json!(["StringEquals", "Next"])),
            vec!["/States/Route/Choices/0", "/States/Route/Choices/1"]
        );
    }

    #[test]
    fn unknown_fields_and_bad_comments_are_reported() {
        assert_eq!(
            pointers(json!([{"Variable": "$.x", "IsNull": true, "Next": "A", "Comment": 1, "Defualt": "B"}])),
            vec!["/States/Route/Choices/0/Comment", "/States/Route/Choices/0/Defualt"]
        );
        // Pointer tokens are escaped.
        assert_eq!(
            pointers(json!([{"Variable": "$.x", "IsNull": true, "Next": "A", "a/b": 1}])),
            vec!["/States/Route/Choices/0/a~1b"]
        );
    }

    #[test]
    fn every_fault_is_collected_and_valid_rules_are_kept() {
        let mut diags = Diagnostics::default();
        let choices = parse_choices(
            &json!([
                {"Variable": "$.a", "StringEquals": 1, "Next": "A"},
                {"Variable": "$.b", "NumericEquals": 2, "Next": "B"},
                {"And": [
                    {"Variable": "$.c", "BooleanEquals": "yes"},
                    {"Not": {"Variable": "bad", "IsNull": true}},
                    {"Variable": "$.d", "IsString": true, "Next": "X"}
                ]},
            ]),
            "/States/Route/Choices",
            &mut diags,
        );
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0].next, "B");
        let found: Vec<&str> = diags.iter().map(|d| d.pointer.as_str()).collect();
        assert_eq!(
            found,
            vec![
                "/States/Route/Choices/0/StringEquals",
                "/States/Route/Choices/2/And/0/BooleanEquals",
                "/States/Route/Choices/2/And/1/Not/Variable",
                "/States/Route/Choices/2/And/2/Next",
                "/States/Route/Choices/2",
            ]
        );
    }

    // ---- string operators -------------------------------------------------------------------

    #[test]
    fn string_comparisons() {
        let input = json!({"s": "banana"});
        assert!(holds(json!({"Variable": "$.s", "StringEquals": "banana"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.s", "StringEquals": "Banana"}), input.clone()));
        assert!(holds(json!({"Variable": "$.s", "StringLessThan": "cherry"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.s", "StringLessThan": "banana"}), input.clone()));
        assert!(holds(json!({"Variable": "$.s", "StringLessThanEquals": "banana"}), input.clone()));
        assert!(holds(json!({"Variable": "$.s", "StringGreaterThan": "apple"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.s", "StringGreaterThan": "bananas"}), input.clone()));
        assert!(holds(json!({"Variable": "$.s", "StringGreaterThanEquals": "banana"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.s", "StringGreaterThanEquals": "c"}), input));
    }

    #[test]
    fn strings_order_by_utf16_code_units_like_java() {
        // U+1F600 is the surrogate pair D83D DE00, which Java orders before U+FFFD.
        let input = json!({"s": "\u{1F600}"});
        assert!(holds(json!({"Variable": "$.s", "StringLessThan": "\u{FFFD}"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.s", "StringGreaterThan": "\u{FFFD}"}), input));
    }

    #[test]
    fn string_matches_wildcards() {
        let matches =
            |text: &str, pattern: &str| holds(json!({"Variable": "$.s", "StringMatches": pattern}), json!({"s": text}));
        // The spec's examples.
        assert!(matches("foo23.log", "foo*.log"));
        assert!(matches("zebra.log", "*.log"));
        assert!(matches("foobar.zebra", "foo*.*"));
        assert!(!matches("foo23.txt", "foo*.log"));
        assert!(matches("abc", "abc"));
        assert!(!matches("abcd", "abc"));
        assert!(!matches("xabc", "abc"));
        assert!(matches("", "*"));
        assert!(matches("", "**"));
        assert!(!matches("", "?"));
        assert!(matches("anything", "*"));
        assert!(matches("a-b-c-d", "a*b*d"));
        assert!(matches("aaab", "*a*ab"));
        assert!(!matches("ab", "*a*ab"));
        // No other character is special.
        assert!(matches("a?c", "a?c"));
        assert!(!matches("abc", "a?c"));
        assert!(matches("a.c", "a.c"));
        assert!(!matches("abc", "a.c"));
        assert!(matches("x[1]", "x[1]"));
        assert!(matches("ünïcödé", "ü*é"));
    }

    #[test]
    fn string_matches_escapes() {
        let matches =
            |text: &str, pattern: &str| holds(json!({"Variable": "$.s", "StringMatches": pattern}), json!({"s": text}));
        assert!(matches("a*b", r"a\*b"));
        assert!(!matches("axb", r"a\*b"));
        assert!(matches(r"a\b", r"a\\b"));
        assert!(!matches(r"a\\b", r"a\\b"));
        assert!(matches(r"a\xyz", r"a\\*"));
        assert!(matches("2*", r"*\*"));
        assert!(!matches("2", r"*\*"));
        // A backslash before another character, or at the end, is literal.
        assert!(matches(r"a\d", r"a\d"));
        assert!(matches(r"end\", r"end\"));
    }

    // ---- numeric and boolean operators ------------------------------------------------------

    #[test]
    fn numeric_comparisons() {
        let input = json!({"n": 22});
        assert!(holds(json!({"Variable": "$.n", "NumericEquals": 22}), input.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericEquals": 22.0}), input.clone()));
        assert!(!holds(json!({"Variable": "$.n", "NumericEquals": 22.5}), input.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericLessThan": 30}), input.clone()));
        assert!(!holds(json!({"Variable": "$.n", "NumericLessThan": 22}), input.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericLessThanEquals": 22}), input.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThan": 21.99}), input.clone()));
        assert!(!holds(json!({"Variable": "$.n", "NumericGreaterThan": 22}), input.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThanEquals": 22}), input.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThanEquals": -1e3}), input));
        assert!(holds(json!({"Variable": "$.f", "NumericLessThan": 0.30000000000000004}), json!({"f": 0.3})));
        assert!(holds(json!({"Variable": "$.f", "NumericGreaterThan": -2.5}), json!({"f": -2.25})));
    }

    #[test]
    fn integers_compare_exactly() {
        // Both round to the same f64; exact comparison still tells them apart.
        let big = json!({"n": 9_007_199_254_740_993_u64});
        assert!(!holds(json!({"Variable": "$.n", "NumericEquals": 9_007_199_254_740_992_u64}), big.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThan": 9_007_199_254_740_992_u64}), big.clone()));
        // ... and against a float.
        assert!(!holds(json!({"Variable": "$.n", "NumericEquals": 9_007_199_254_740_992.0}), big.clone()));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThan": 9_007_199_254_740_992.0}), big));
        assert!(holds(json!({"Variable": "$.n", "NumericLessThan": u64::MAX}), json!({"n": u64::MAX - 1})));
        assert!(holds(json!({"Variable": "$.n", "NumericLessThan": 0}), json!({"n": i64::MIN})));
        assert!(holds(json!({"Variable": "$.n", "NumericLessThan": 1e300}), json!({"n": u64::MAX})));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThan": -1e300}), json!({"n": i64::MIN})));
        assert!(holds(json!({"Variable": "$.n", "NumericLessThan": -2}), json!({"n": -2.5})));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThan": -3}), json!({"n": -2.5})));
        assert!(holds(json!({"Variable": "$.n", "NumericGreaterThan": -2.5}), json!({"n": -2})));
    }

    #[test]
    fn compare_integer_float_edges() {
        assert_eq!(compare_integer_float(3, 3.0), Some(Ordering::Equal));
        assert_eq!(compare_integer_float(3, 3.5), Some(Ordering::Less));
        assert_eq!(compare_integer_float(4, 3.5), Some(Ordering::Greater));
        assert_eq!(compare_integer_float(-4, -3.5), Some(Ordering::Less));
        assert_eq!(compare_integer_float(-3, -3.5), Some(Ordering::Greater));
        assert_eq!(compare_integer_float(i128::from(u64::MAX), 18_446_744_073_709_551_616.0), Some(Ordering::Less));
        assert_eq!(compare_integer_float(0, f64::NAN), None);
    }

    #[test]
    fn boolean_equals() {
        assert!(holds(json!({"Variable": "$.b", "BooleanEquals": true}), json!({"b": true})));
        assert!(!holds(json!({"Variable": "$.b", "BooleanEquals": true}), json!({"b": false})));
        assert!(holds(json!({"Variable": "$.b", "BooleanEquals": false}), json!({"b": false})));
    }

    #[test]
    fn a_variable_of_the_wrong_type_is_simply_false() {
        assert!(!holds(json!({"Variable": "$.v", "StringEquals": "1"}), json!({"v": 1})));
        assert!(!holds(json!({"Variable": "$.v", "StringLessThan": "z"}), json!({"v": null})));
        assert!(!holds(json!({"Variable": "$.v", "StringMatches": "*"}), json!({"v": 1})));
        assert!(!holds(json!({"Variable": "$.v", "NumericEquals": 1}), json!({"v": "1"})));
        assert!(!holds(json!({"Variable": "$.v", "NumericLessThan": 1}), json!({"v": [0]})));
        assert!(!holds(json!({"Variable": "$.v", "BooleanEquals": true}), json!({"v": "true"})));
        assert!(!holds(json!({"Variable": "$.v", "TimestampEquals": "2016-03-14T01:59:00Z"}), json!({"v": 1})));
        assert!(!holds(
            json!({"Variable": "$.v", "TimestampLessThan": "2016-03-14T01:59:00Z"}),
            json!({"v": "not a time"})
        ));
        // ... and so is its negation true.
        assert!(holds(json!({"Not": {"Variable": "$.v", "StringEquals": "1"}}), json!({"v": 1})));
    }

    // ---- timestamps -------------------------------------------------------------------------

    #[test]
    fn timestamp_comparisons_use_the_instant() {
        let input = json!({"t": "2016-03-14T01:59:00Z"});
        assert!(holds(json!({"Variable": "$.t", "TimestampEquals": "2016-03-14T01:59:00Z"}), input.clone()));
        // Same instant, other offsets and precision.
        assert!(holds(json!({"Variable": "$.t", "TimestampEquals": "2016-03-14T03:59:00+02:00"}), input.clone()));
        assert!(holds(json!({"Variable": "$.t", "TimestampEquals": "2016-03-13T20:59:00.000-05:00"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.t", "TimestampEquals": "2016-03-14T01:59:00.001Z"}), input.clone()));
        // 01:59Z is after 02:30+01:00 (01:30Z) although the local clock reads earlier.
        assert!(holds(json!({"Variable": "$.t", "TimestampGreaterThan": "2016-03-14T02:30:00+01:00"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.t", "TimestampLessThan": "2016-03-14T02:30:00+01:00"}), input.clone()));
        assert!(holds(json!({"Variable": "$.t", "TimestampLessThan": "2016-03-14T01:59:00.5Z"}), input.clone()));
        assert!(holds(json!({"Variable": "$.t", "TimestampLessThanEquals": "2016-03-14T01:59:00Z"}), input.clone()));
        assert!(holds(
            json!({"Variable": "$.t", "TimestampGreaterThanEquals": "2016-03-14T02:59:00+01:00"}),
            input.clone()
        ));
        assert!(!holds(json!({"Variable": "$.t", "TimestampGreaterThanEquals": "2016-03-14T02:00:00Z"}), input));
    }

    #[test]
    fn timestamp_values_need_uppercase_t_and_z() {
        let rule = json!({"Variable": "$.t", "TimestampEquals": "2016-03-14T01:59:00Z"});
        assert!(!holds(rule.clone(), json!({"t": "2016-03-14t01:59:00Z"})));
        assert!(!holds(rule.clone(), json!({"t": "2016-03-14T01:59:00z"})));
        assert!(!holds(rule.clone(), json!({"t": "2016-03-14 01:59:00Z"})));
        assert!(holds(rule, json!({"t": "2016-03-14T01:59:00+00:00"})));
    }

    // ---- data tests -------------------------------------------------------------------------

    #[test]
    fn data_test_operators() {
        let input =
            json!({"null": null, "n": 1.5, "s": "x", "b": false, "t": "2016-03-14T01:59:00Z", "o": {}, "a": []});
        let is = |operator: &str, field: &str| {
            holds(json!({"Variable": format!("$.{field}"), operator: true}), input.clone())
        };
        let truths = [
            ("IsNull", "null"),
            ("IsNumeric", "n"),
            ("IsString", "s"),
            ("IsString", "t"),
            ("IsBoolean", "b"),
            ("IsTimestamp", "t"),
        ];
        for operator in ["IsNull", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp", "IsPresent"] {
            for field in ["null", "n", "s", "b", "t", "o", "a"] {
                let expected = operator == "IsPresent" || truths.contains(&(operator, field));
                assert_eq!(is(operator, field), expected, "{operator} on {field}");
                let negated = holds(json!({"Variable": format!("$.{field}"), operator: false}), input.clone());
                assert_eq!(negated, !expected, "{operator}: false on {field}");
            }
        }
    }

    #[test]
    fn is_timestamp_applies_the_aws_format_rules() {
        let is_timestamp = |value: Value| holds(json!({"Variable": "$.v", "IsTimestamp": true}), json!({"v": value}));
        assert!(is_timestamp(json!("2016-03-14T01:59:00Z")));
        assert!(is_timestamp(json!("2016-03-14T01:59:00.123456-07:00")));
        assert!(!is_timestamp(json!("2016-03-14T01:59:00")));
        assert!(!is_timestamp(json!("2016-03-14T01:59:00z")));
        assert!(!is_timestamp(json!("2016-03-14t01:59:00Z")));
        assert!(!is_timestamp(json!("2016-02-30T01:59:00Z")));
        assert!(!is_timestamp(json!(1457920740)));
    }

    #[test]
    fn is_present_on_a_missing_path() {
        assert!(!holds(json!({"Variable": "$.missing", "IsPresent": true}), json!({})));
        assert!(holds(json!({"Variable": "$.missing", "IsPresent": false}), json!({})));
        assert!(!holds(json!({"Variable": "$.a.b.c", "IsPresent": true}), json!({"a": 1})));
        assert!(holds(json!({"Variable": "$.a", "IsPresent": true}), json!({"a": null})));
        assert!(holds(json!({"Variable": "$$.Execution.Id", "IsPresent": false}), json!({})));
    }

    // ---- missing paths ----------------------------------------------------------------------

    #[test]
    fn a_missing_variable_fails_with_states_runtime() {
        let failure = eval(json!({"Variable": "$.x", "StringEquals": "a"}), json!({})).unwrap_err();
        assert_eq!(failure.error, "States.Runtime");
        assert_eq!(failure.cause, "Invalid path '$.x': The choice state's condition path references an invalid value.");
        for operator in ["IsNull", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"] {
            for expected in [true, false] {
                let failure = eval(json!({"Variable": "$.x", operator: expected}), json!({})).unwrap_err();
                assert_eq!(failure.error, "States.Runtime", "{operator}");
            }
        }
        for rule in [
            json!({"Variable": "$.x", "StringMatches": "*"}),
            json!({"Variable": "$.x", "NumericEquals": 1}),
            json!({"Variable": "$.x", "BooleanEquals": true}),
            json!({"Variable": "$.x", "TimestampEquals": "2016-03-14T01:59:00Z"}),
            json!({"Not": {"Variable": "$.x", "NumericGreaterThan": 1}}),
        ] {
            assert!(eval(rule, json!({"y": 1})).is_err());
        }
    }

    #[test]
    fn a_missing_path_operand_fails_with_states_runtime() {
        let failure = eval(json!({"Variable": "$.left", "NumericLessThanEqualsPath": "$.right"}), json!({"left": 8}))
            .unwrap_err();
        assert_eq!(failure.error, "States.Runtime");
        assert_eq!(
            failure.cause,
            "Invalid path '$.right': The choice state's condition path references an invalid value."
        );
        // Even when the Variable's type would make the comparison false.
        assert!(eval(json!({"Variable": "$.left", "StringEqualsPath": "$.right"}), json!({"left": 8})).is_err());
    }

    #[test]
    fn and_or_short_circuit_around_missing_fields() {
        let guard_or = json!({"Or": [
            {"Variable": "$.v", "IsPresent": false},
            {"Variable": "$.v", "IsNull": true},
            {"Variable": "$.v", "BooleanEquals": false}
        ]});
        assert!(holds(guard_or.clone(), json!({})));
        assert!(holds(guard_or.clone(), json!({"v": null})));
        assert!(holds(guard_or.clone(), json!({"v": false})));
        assert!(!holds(guard_or, json!({"v": true})));
        let guard_and = json!({"And": [
            {"Variable": "$.v", "IsPresent": true},
            {"Variable": "$.v", "StringEquals": "go"}
        ]});
        assert!(!holds(guard_and.clone(), json!({})));
        assert!(holds(guard_and, json!({"v": "go"})));
        // Without the guard first, the missing field fails the evaluation.
        assert!(eval(
            json!({"Or": [{"Variable": "$.v", "IsNull": true}, {"Variable": "$.v", "IsPresent": false}]}),
            json!({})
        )
        .is_err());
    }

    // ---- Path operands ----------------------------------------------------------------------

    #[test]
    fn path_operands_compare_with_values_from_the_input() {
        let input = json!({
            "s": "b", "s2": "b", "s3": "c",
            "n": 7, "n2": 7.0, "n3": 9,
            "b": true, "b2": true,
            "t": "2016-03-14T01:59:00Z", "t2": "2016-03-14T02:59:00+01:00", "t3": "2017-01-01T00:00:00Z"
        });
        let cases = [
            ("StringEqualsPath", "s", "s2", true),
            ("StringEqualsPath", "s", "s3", false),
            ("StringLessThanPath", "s", "s3", true),
            ("StringGreaterThanPath", "s3", "s", true),
            ("StringLessThanEqualsPath", "s", "s2", true),
            ("StringGreaterThanEqualsPath", "s", "s3", false),
            ("NumericEqualsPath", "n", "n2", true),
            ("NumericLessThanPath", "n", "n3", true),
            ("NumericGreaterThanPath", "n", "n3", false),
            ("NumericLessThanEqualsPath", "n", "n2", true),
            ("NumericGreaterThanEqualsPath", "n3", "n", true),
            ("BooleanEqualsPath", "b", "b2", true),
            ("TimestampEqualsPath", "t", "t2", true),
            ("TimestampLessThanPath", "t", "t3", true),
            ("TimestampGreaterThanPath", "t3", "t", true),
            ("TimestampLessThanEqualsPath", "t", "t2", true),
            ("TimestampGreaterThanEqualsPath", "t", "t3", false),
        ];
        for (operator, variable, operand, expected) in cases {
            let rule = json!({"Variable": format!("$.{variable}"), operator: format!("$.{operand}")});
            assert_eq!(holds(rule, input.clone()), expected, "{operator} {variable} {operand}");
        }
    }

    #[test]
    fn paths_can_read_the_context_object() {
        let rule = rule(json!({"And": [
            {"Variable": "$$.Execution.Name", "StringEquals": "run-1"},
            {"Variable": "$.name", "StringEqualsPath": "$$.Execution.Name"}
        ]}));
        let context = json!({"Execution": {"Name": "run-1"}});
        assert_eq!(evaluate(&rule, &json!({"name": "run-1"}), &context), Ok(true));
        assert_eq!(evaluate(&rule, &json!({"name": "run-2"}), &context), Ok(false));
    }

    #[test]
    fn path_operands_of_the_wrong_type() {
        let input = json!({"num1": 1, "num2": 1, "str1": "1", "str2": "1", "b": true});
        // Equality with a value of another type is false ...
        assert!(!holds(json!({"Variable": "$.num1", "NumericEqualsPath": "$.str2"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.str1", "NumericEqualsPath": "$.str2"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.num1", "StringEqualsPath": "$.num2"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.b", "BooleanEqualsPath": "$.str1"}), input.clone()));
        assert!(!holds(json!({"Variable": "$.str1", "TimestampEqualsPath": "$.str2"}), input.clone()));
        // ... a wrong-typed Variable against a fitting operand is false ...
        assert!(!holds(json!({"Variable": "$.num1", "StringGreaterThanPath": "$.str2"}), input.clone()));
        // ... but an ordering against an operand of the wrong type fails.
        let failure =
            eval(json!({"Variable": "$.num1", "StringGreaterThanPath": "$.num2"}), input.clone()).unwrap_err();
        assert_eq!(failure.error, "States.Runtime");
        assert_eq!(
            failure.cause,
            "Invalid value provided at path '$.num2': StringGreaterThanPath needs a string, found a number."
        );
        assert!(eval(json!({"Variable": "$.num1", "NumericLessThanPath": "$.str1"}), input.clone()).is_err());
        assert!(eval(json!({"Variable": "$.str1", "TimestampLessThanPath": "$.str2"}), input).is_err());
    }

    // ---- hand-built rules -------------------------------------------------------------------

    #[test]
    fn a_hand_built_rule_with_a_mismatched_operand_fails_instead_of_panicking() {
        let rule = ChoiceRule::Compare(Comparison {
            variable: "$.x".into(),
            operator: Operator::NumericEquals,
            operand: Operand::String("1".into()),
        });
        let failure = evaluate(&rule, &json!({"x": 1}), &json!({})).unwrap_err();
        assert_eq!(failure.error, "States.Runtime");
        assert!(failure.cause.starts_with("malformed Choice Rule"), "{}", failure.cause);
    }

    #[test]
    fn operator_names_round_trip() {
        for operator in Operator::ALL {
            assert_eq!(Operator::from_name(operator.name()), Some(operator));
        }
        assert_eq!(Operator::from_name("StringEqualsPath"), None);
        assert_eq!(operator_key("TimestampLessThanPath"), Some((Operator::TimestampLessThan, true)));
        assert_eq!(operator_key("IsTimestamp"), Some((Operator::IsTimestamp, false)));
        assert_eq!(operator_key("Path"), None);
    }
}
