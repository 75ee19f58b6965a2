//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2) parsed into an AST, then resolved
//! against the schemas (`resolve`, `resolve_path`) so the SQL translator and the reference
//! evaluator both know every attribute's type, case sensitivity and plurality.
//!
//! Grammar, as accepted here (RFC 7644 Figure 1, with errata 4690/7322 for `valFilter`):
//! ```text
//! FILTER    = orExp
//! orExp     = andExp *(WS "or" WS andExp)           ; precedence: not > and > or
//! andExp    = unary *(WS "and" WS unary)
//! unary     = "not" [WS] "(" FILTER ")" / "(" FILTER ")" / attrExp / valuePath
//! valuePath = attrPath "[" FILTER "]"                ; no valuePath inside, attrPath has no subAttr
//! attrExp   = attrPath WS "pr" / attrPath WS compareOp WS compValue
//! compValue = false / null / true / number / string  ; JSON (RFC 8259)
//! attrPath  = ["urn:" URNREST ":"] ATTRNAME ["." ATTRNAME]
//! ATTRNAME  = ["$"] ALPHA *("-" / "_" / DIGIT / ALPHA) ; "$" for "$ref"
//! PATH      = attrPath / valuePath ["." ATTRNAME]    ; §3.5.2 Figure 7
//! ```
//! `WS` is one or more whitespace characters where the RFC has `SP`; whitespace is also allowed
//! inside parentheses and brackets. Keywords and operators are case-insensitive; attribute names
//! are kept as written (resolution matches them case-insensitively).
//!
//! **Entra ID's non-RFC form** `emails[type eq "work"].value eq "x"` (a value path, a
//! sub-attribute, then a comparison) is accepted in filters and represented as the RFC form
//! that means the same thing: `emails[type eq "work" and value eq "x"]`, i.e.
//! `ValuePath { attr: emails, filter: And(type eq "work", value eq "x") }`. Both select users
//! with one e-mail that is both of type work and equal to x.
//!
//! Limits (each breach is an error, never a panic or a deep recursion): [`MAX_LEN`] characters,
//! [`MAX_DEPTH`] levels of parentheses / `not` / value paths, [`MAX_TERMS`] attribute
//! expressions.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::schema::{self, AttrType, AttributeDef, ResourceType, Returned, Schemas};

/// Longest filter or path accepted, in characters.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not (…)` and value paths.
pub const MAX_DEPTH: usize = 16;
/// Most attribute expressions (`x eq y`, `x pr`) in one filter.
pub const MAX_TERMS: usize = 64;

/// An attribute path as written: `[schema ":"] name ["." sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub schema: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path with only a name (no URN, no sub-attribute).
    pub fn named(name: impl Into<String>) -> Self {
        AttrPath {
            schema: None,
            name: name.into(),
            sub: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn parse(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// A comparison value: a JSON literal.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    /// The literal as written (so rendering is exact) and its value.
    Number {
        text: String,
        value: f64,
    },
    Str(String),
}

/// A parsed filter. Parentheses leave no node: `(a)` is `a`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, CompareOp, CompValue),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: the inner filter's attribute paths name sub-attributes of `attr`.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `attrPath`, or `valuePath` optionally
/// followed by `.subAttr`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

/// A filter or path that cannot be used. `message` is safe to show a SCIM client; the SCIM
/// layer answers 400 `invalidFilter` (or `invalidPath` for PATCH paths). `position` is the
/// character offset of a syntax error in the input; errors found while resolving against the
/// schema have none (the AST keeps no positions) and name the attribute instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
    pub position: Option<usize>,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(p) = self.position {
            write!(f, " (at character {p})")?;
        }
        Ok(())
    }
}

impl std::error::Error for FilterError {}

impl FilterError {
    fn at(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            message: message.into(),
            position: Some(position),
        }
    }

    fn semantic(message: impl Into<String>) -> Self {
        FilterError {
            message: message.into(),
            position: None,
        }
    }
}

impl From<schema::SchemaError> for FilterError {
    fn from(e: schema::SchemaError) -> Self {
        FilterError::semantic(e.to_string())
    }
}

/// Parses a `filter` query parameter.
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    let mut p = Parser::new(input, "filter")?;
    p.skip_ws();
    if p.at_end() {
        return Err(FilterError::at(p.pos, "the filter is empty"));
    }
    let filter = p.parse_or()?;
    p.skip_ws();
    p.expect_end("\"and\", \"or\" or the end of the filter")?;
    Ok(filter)
}

/// Parses a PATCH operation's `path`.
pub fn parse_path(input: &str) -> Result<PatchPath, FilterError> {
    let mut p = Parser::new(input, "path")?;
    p.skip_ws();
    if p.at_end() {
        return Err(FilterError::at(p.pos, "the path is empty"));
    }
    let attr = p.parse_attr_path()?;
    let mut filter = None;
    let mut sub = None;
    if p.peek() == Some('[') {
        filter = Some(p.parse_value_filter(&attr)?);
        if p.peek() == Some('.') {
            p.pos += 1;
            sub = Some(p.parse_attr_name()?);
        }
    }
    p.skip_ws();
    p.expect_end("\"[\", \".\" or the end of the path")?;
    Ok(PatchPath { attr, filter, sub })
}

impl FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_filter(s)
    }
}

impl FromStr for PatchPath {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_path(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Parser: recursive descent over characters. Recursion only happens through `(`, `not (` and
// `[`, each of which counts against MAX_DEPTH before recursing, so the stack stays shallow.

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    terms: usize,
    in_value_path: bool,
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$' | '.' | ':')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$')
}

fn is_ws(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// `["$"] ALPHA *nameChar`.
fn valid_attr_name(name: &str) -> bool {
    let body = name.strip_prefix('$').unwrap_or(name);
    let mut chars = body.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A short, printable excerpt of client input for error messages.
fn excerpt(chars: &[char]) -> String {
    const MAX: usize = 24;
    let mut s: String = chars
        .iter()
        .take(MAX)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { *c })
        .collect();
    if chars.len() > MAX {
        s.push('…');
    }
    s
}

impl Parser {
    fn new(input: &str, what: &str) -> Result<Self, FilterError> {
        let chars: Vec<char> = input.chars().take(MAX_LEN + 1).collect();
        if chars.len() > MAX_LEN {
            return Err(FilterError::at(
                MAX_LEN,
                format!("the {what} is longer than {MAX_LEN} characters"),
            ));
        }
        Ok(Parser {
            chars,
            pos: 0,
            depth: 0,
            terms: 0,
            in_value_path: false,
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    /// Skips whitespace; tells whether there was any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn rest(&self) -> &[char] {
        self.chars.get(self.pos..).unwrap_or(&[])
    }

    fn unexpected(&self, expected: &str) -> FilterError {
        match self.peek() {
            None => FilterError::at(self.pos, format!("unexpected end; expected {expected}")),
            Some(_) => FilterError::at(
                self.pos,
                format!(
                    "unexpected \"{}\"; expected {expected}",
                    excerpt(self.rest())
                ),
            ),
        }
    }

    fn expect_end(&self, expected: &str) -> Result<(), FilterError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_char(&mut self, c: char, expected: &str) -> Result<(), FilterError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// The run of characters satisfying `pred` starting at the current position (not consumed).
    fn peek_run(&self, pred: fn(char) -> bool) -> String {
        self.rest().iter().take_while(|c| pred(**c)).collect()
    }

    fn enter(&mut self, at: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::at(
                at,
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn count_term(&mut self, at: usize) -> Result<(), FilterError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(FilterError::at(
                at,
                format!("the filter has more than {MAX_TERMS} comparisons"),
            ));
        }
        Ok(())
    }

    /// Consumes `WS keyword WS` if it comes next; leaves the position alone otherwise.
    fn keyword(&mut self, keyword: &str) -> Result<bool, FilterError> {
        let start = self.pos;
        let had_ws = self.skip_ws();
        let word = self.peek_run(is_name_char);
        if !word.eq_ignore_ascii_case(keyword) {
            self.pos = start;
            return Ok(false);
        }
        if !had_ws {
            return Err(FilterError::at(
                self.pos,
                format!("expected whitespace before \"{keyword}\""),
            ));
        }
        self.pos += word.chars().count();
        if !self.skip_ws() {
            return Err(FilterError::at(
                self.pos,
                format!("expected whitespace after \"{keyword}\""),
            ));
        }
        Ok(true)
    }

    fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_and()?;
        while self.keyword("or")? {
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_unary()?;
        while self.keyword("and")? {
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Filter, FilterError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err(self.unexpected("an attribute expression")),
            Some('(') => {
                self.pos += 1;
                self.enter(start)?;
                let inner = self.parse_group_body()?;
                self.leave();
                Ok(inner)
            }
            Some(_) => {
                let word = self.peek_run(is_name_char);
                if word.eq_ignore_ascii_case("not") {
                    // `not` is a keyword only when a parenthesis follows; otherwise it is an
                    // attribute name like any other (and will fail resolution).
                    let after = self.pos + word.chars().count();
                    let next = self.chars[after..].iter().find(|c| !is_ws(**c)).copied();
                    if next == Some('(') {
                        self.pos = after;
                        self.skip_ws();
                        self.pos += 1;
                        self.enter(start)?;
                        let inner = self.parse_group_body()?;
                        self.leave();
                        return Ok(Filter::Not(Box::new(inner)));
                    }
                }
                self.parse_attr_exp()
            }
        }
    }

    /// After `(`: a filter, then `)`.
    fn parse_group_body(&mut self) -> Result<Filter, FilterError> {
        let inner = self.parse_or()?;
        self.skip_ws();
        self.expect_char(')', "\")\"")?;
        Ok(inner)
    }

    fn parse_attr_exp(&mut self) -> Result<Filter, FilterError> {
        let path = self.parse_attr_path()?;
        if self.peek() != Some('[') {
            return self.parse_comparison(path);
        }
        let inner = self.parse_value_filter(&path)?;
        if self.peek() != Some('.') {
            return Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(inner),
            });
        }
        // Entra ID: `emails[type eq "work"].value eq "x"` — see the module documentation.
        self.pos += 1;
        let sub = self.parse_attr_name()?;
        let term = self.parse_comparison(AttrPath::named(sub))?;
        Ok(Filter::ValuePath {
            attr: path,
            filter: Box::new(Filter::And(Box::new(inner), Box::new(term))),
        })
    }

    /// At `[`: the bracketed filter of a value path on `path`.
    fn parse_value_filter(&mut self, path: &AttrPath) -> Result<Filter, FilterError> {
        let start = self.pos;
        if self.in_value_path {
            return Err(FilterError::at(
                start,
                "a value filter cannot contain another value filter",
            ));
        }
        if path.sub.is_some() {
            return Err(FilterError::at(
                start,
                "a value filter applies to an attribute, not to a sub-attribute",
            ));
        }
        self.pos += 1;
        self.enter(start)?;
        self.in_value_path = true;
        self.skip_ws();
        let inner = self.parse_or()?;
        self.skip_ws();
        self.expect_char(']', "\"]\"")?;
        self.in_value_path = false;
        self.leave();
        Ok(inner)
    }

    /// After an attribute path: `WS "pr"` or `WS compareOp WS compValue`.
    fn parse_comparison(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let start = self.pos;
        if !self.skip_ws() {
            return Err(self.unexpected("whitespace and an operator after the attribute"));
        }
        let op_at = self.pos;
        let word = self.peek_run(is_name_char);
        if word.is_empty() {
            return Err(self.unexpected("an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"));
        }
        if word.eq_ignore_ascii_case("pr") {
            self.pos += 2;
            self.count_term(start)?;
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&word).ok_or_else(|| {
            FilterError::at(
                op_at,
                format!(
                    "unknown operator \"{}\"; expected eq, ne, co, sw, ew, gt, ge, lt, le or pr",
                    excerpt(&word.chars().collect::<Vec<_>>())
                ),
            )
        })?;
        self.pos += word.chars().count();
        if !self.skip_ws() {
            return Err(self.unexpected("whitespace and a value after the operator"));
        }
        let value = self.parse_value()?;
        self.count_term(start)?;
        Ok(Filter::Compare(path, op, value))
    }

    fn parse_value(&mut self) -> Result<CompValue, FilterError> {
        let start = self.pos;
        let value = match self.peek() {
            Some('"') => CompValue::Str(self.parse_string()?),
            Some(c) if c == '-' || c.is_ascii_digit() => self.parse_number()?,
            Some(c) if c.is_ascii_alphabetic() => {
                let word = self.peek_run(is_name_char);
                let value = if word.eq_ignore_ascii_case("true") {
                    CompValue::Bool(true)
                } else if word.eq_ignore_ascii_case("false") {
                    CompValue::Bool(false)
                } else if word.eq_ignore_ascii_case("null") {
                    CompValue::Null
                } else {
                    return Err(FilterError::at(
                        start,
                        "a value must be a JSON string in double quotes, a number, true, false \
                         or null",
                    ));
                };
                self.pos += word.chars().count();
                value
            }
            _ => return Err(self.unexpected("a value (string, number, true, false or null)")),
        };
        // A value ends at whitespace, a closing bracket or the end of the input.
        match self.peek() {
            None | Some(')') | Some(']') => Ok(value),
            Some(c) if is_ws(c) => Ok(value),
            Some(_) => Err(self.unexpected("whitespace, \")\", \"]\" or the end after the value")),
        }
    }

    /// A JSON string (RFC 8259 §7), decoded by serde_json so escapes mean exactly what they
    /// mean in JSON. `%`, `_` and `\\`-escaped backslashes are plain characters.
    fn parse_string(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        let mut i = self.pos + 1;
        loop {
            match self.chars.get(i) {
                None => return Err(FilterError::at(start, "unterminated string")),
                Some('\\') => i += 2,
                Some('"') => break,
                Some(_) => i += 1,
            }
        }
        let literal: String = self.chars[start..=i].iter().collect();
        let decoded = serde_json::from_str::<String>(&literal).map_err(|_| {
            FilterError::at(
                start,
                "invalid string: use JSON escapes (\\\", \\\\, \\n, \\uXXXX…) and no raw \
                 control characters",
            )
        })?;
        self.pos = i + 1;
        Ok(decoded)
    }

    /// A JSON number: `-? (0 / [1-9] DIGIT*) [. DIGIT+] [(e/E) [+/-] DIGIT+]`.
    fn parse_number(&mut self) -> Result<CompValue, FilterError> {
        let start = self.pos;
        let bad = || FilterError::at(start, "invalid number");
        let digits = |p: &mut Parser| {
            let from = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        match self.peek() {
            Some('0') => self.pos += 1,
            Some(c) if c.is_ascii_digit() => {
                digits(self);
            }
            _ => return Err(bad()),
        }
        if self.peek() == Some('.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(bad());
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(bad());
            }
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let value: f64 = text.parse().map_err(|_| bad())?;
        if !value.is_finite() {
            return Err(FilterError::at(start, "number out of range"));
        }
        Ok(CompValue::Number { text, value })
    }

    /// `attrPath = [URN ":"] ATTRNAME ["." ATTRNAME]`. The URN is everything up to the last
    /// colon, so its own dots (`…:2.0:User`) are not mistaken for a sub-attribute.
    fn parse_attr_path(&mut self) -> Result<AttrPath, FilterError> {
        let start = self.pos;
        let run = self.peek_run(is_path_char);
        if run.is_empty() {
            return Err(self.unexpected("an attribute name"));
        }
        let bad = |what: &str| FilterError::at(start, format!("invalid attribute path: {what}"));
        let (schema, rest) = match run.rfind(':') {
            None => (None, run.as_str()),
            Some(colon) => {
                let (urn, rest) = (&run[..colon], &run[colon + 1..]);
                let is_urn = urn.len() >= 4 && urn[..4].eq_ignore_ascii_case("urn:");
                if !is_urn {
                    return Err(bad("a schema prefix must be a URN (urn:…)"));
                }
                let segments_ok = urn.split(':').all(|seg| {
                    !seg.is_empty() && !seg.contains('$') && seg.split('.').all(|p| !p.is_empty())
                });
                if !segments_ok || urn.split(':').count() < 2 {
                    return Err(bad("malformed schema URN"));
                }
                (Some(urn.to_string()), rest)
            }
        };
        let mut parts = rest.split('.');
        let name = parts.next().unwrap_or_default();
        let sub = parts.next();
        if parts.next().is_some() {
            return Err(bad("at most one sub-attribute (a.b) is allowed"));
        }
        if !valid_attr_name(name) || sub.is_some_and(|s| !valid_attr_name(s)) {
            return Err(bad(
                "names start with a letter and contain letters, digits, '-' or '_'",
            ));
        }
        self.pos += run.chars().count();
        Ok(AttrPath {
            schema,
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    }

    /// A bare `ATTRNAME` (after `].`).
    fn parse_attr_name(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        let name = self.peek_run(is_name_char);
        if !valid_attr_name(&name) {
            return Err(if name.is_empty() {
                self.unexpected("a sub-attribute name")
            } else {
                FilterError::at(start, "invalid sub-attribute name")
            });
        }
        self.pos += name.chars().count();
        Ok(name)
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering: emits filter text that parses back to the same AST, with the fewest parentheses
// (and/or are left-associative, so a right operand of the same operator needs them).

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number { text, .. } => f.write_str(text),
            CompValue::Str(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
        }
    }
}

impl Filter {
    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    fn render(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        let parens = self.precedence() < min;
        if parens {
            f.write_str("(")?;
        }
        match self {
            Filter::Compare(path, op, value) => write!(f, "{path} {op} {value}")?,
            Filter::Present(path) => write!(f, "{path} pr")?,
            Filter::And(a, b) => {
                a.render(f, 2)?;
                f.write_str(" and ")?;
                b.render(f, 3)?;
            }
            Filter::Or(a, b) => {
                a.render(f, 1)?;
                f.write_str(" or ")?;
                b.render(f, 2)?;
            }
            Filter::Not(inner) => {
                f.write_str("not (")?;
                inner.render(f, 0)?;
                f.write_str(")")?;
            }
            Filter::ValuePath { attr, filter } => {
                write!(f, "{attr}[")?;
                filter.render(f, 0)?;
                f.write_str("]")?;
            }
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, 0)
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution against the schemas.

/// An attribute path resolved against the schemas, with its definition attached.
///
/// Inside a value path (`emails[type eq "work"]`), `attr` is the value path's attribute
/// (`emails`) and `sub` the sub-attribute named inside the brackets (`type`): the enclosing
/// [`ResolvedFilter::ValuePath`] says the comparison applies per element.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAttr {
    /// The path as the client wrote it.
    pub path: AttrPath,
    /// URN of the schema the attribute belongs to (core schema for common attributes).
    pub schema: &'static str,
    /// True for an extension attribute, found under its schema URN key in the resource JSON.
    pub extension: bool,
    /// The top-level attribute.
    pub attr: &'static AttributeDef,
    /// The sub-attribute, if the path names one or one is implied.
    pub sub: Option<&'static AttributeDef>,
    /// True when `sub` was implied: a comparison on a complex attribute compares its `value`
    /// sub-attribute (RFC 7644 §3.4.2.2, e.g. `emails co "example.com"`).
    pub implied_sub: bool,
}

impl ResolvedAttr {
    fn from_ref(path: AttrPath, r: schema::AttrRef) -> Self {
        ResolvedAttr {
            path,
            schema: r.schema,
            extension: r.extension,
            attr: r.attr,
            sub: r.sub,
            implied_sub: false,
        }
    }

    /// The definition the comparison applies to: the sub-attribute if any, else the attribute.
    pub fn target(&self) -> &'static AttributeDef {
        self.sub.unwrap_or(self.attr)
    }

    pub fn kind(&self) -> AttrType {
        self.target().kind
    }

    pub fn case_exact(&self) -> bool {
        self.target().case_exact
    }

    /// Whether the attribute (the top-level one) holds several values.
    pub fn multi_valued(&self) -> bool {
        self.attr.multi_valued
    }
}

/// A comparison value checked against the attribute's type.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedValue {
    Null,
    Bool(bool),
    Number {
        text: String,
        value: f64,
    },
    Str(String),
    /// A `dateTime` attribute's operand, parsed (RFC 3339) so comparisons are chronological.
    DateTime {
        text: String,
        value: DateTime<Utc>,
    },
}

/// A filter whose every attribute exists and whose every comparison suits its attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedFilter {
    Compare {
        attr: ResolvedAttr,
        op: CompareOp,
        value: ResolvedValue,
    },
    Present(ResolvedAttr),
    And(Box<ResolvedFilter>, Box<ResolvedFilter>),
    Or(Box<ResolvedFilter>, Box<ResolvedFilter>),
    Not(Box<ResolvedFilter>),
    /// Matches when one element of `attr` satisfies `filter`, whose attributes all have
    /// `attr` as their `attr` and one of its sub-attributes as their `sub`.
    ValuePath {
        attr: ResolvedAttr,
        filter: Box<ResolvedFilter>,
    },
}

/// A PATCH path resolved against the schemas.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPath {
    pub attr: ResolvedAttr,
    pub filter: Option<ResolvedFilter>,
    /// The sub-attribute after the value filter (`emails[type eq "work"].value`).
    pub sub: Option<&'static AttributeDef>,
}

/// Checks every attribute of `filter` against the resource type's schemas and every operator
/// and value against the attribute's type (RFC 7644 §3.4.2.2 and Table 3):
/// - unknown attributes, schemas and sub-attributes are rejected;
/// - comparing a complex attribute compares its `value` sub-attribute; a complex attribute
///   without one (`name`) can only be tested with `pr`;
/// - `gt`/`ge`/`lt`/`le` on boolean or binary attributes are rejected (the RFC requires a 400),
///   as are `co`/`sw`/`ew` on booleans, binaries, numbers and date-times;
/// - `null` only goes with `eq`/`ne`; date-times must be RFC 3339;
/// - a boolean attribute also accepts the strings "true"/"false" (any case), which Entra ID
///   sends for booleans;
/// - `password` (returned never) cannot be filtered on: that would leak it one guess at a time.
pub fn resolve(
    schemas: &Schemas,
    filter: &Filter,
    resource_type: ResourceType,
) -> Result<ResolvedFilter, FilterError> {
    resolve_in(schemas, filter, resource_type, None)
}

/// Resolves a PATCH path: the attribute must exist; a value filter needs a complex attribute
/// and may only name its sub-attributes; the trailing sub-attribute must be one of them too.
pub fn resolve_path(
    schemas: &Schemas,
    path: &PatchPath,
    resource_type: ResourceType,
) -> Result<ResolvedPath, FilterError> {
    let attr = resolve_top(schemas, &path.attr, resource_type)?;
    let Some(filter) = &path.filter else {
        return Ok(ResolvedPath {
            attr,
            filter: None,
            sub: None,
        });
    };
    require_value_path_target(&attr)?;
    let filter = resolve_in(schemas, filter, resource_type, Some(&attr))?;
    let sub = match &path.sub {
        None => None,
        Some(name) => Some(attr.attr.sub_attribute(name).ok_or_else(|| {
            schema::SchemaError::NoSuchSubAttribute {
                attr: attr.attr.name.to_string(),
                sub: name.clone(),
            }
        })?),
    };
    Ok(ResolvedPath {
        attr,
        filter: Some(filter),
        sub,
    })
}

fn resolve_top(
    schemas: &Schemas,
    path: &AttrPath,
    resource_type: ResourceType,
) -> Result<ResolvedAttr, FilterError> {
    let r = schemas.resolve_attribute(
        resource_type,
        path.schema.as_deref(),
        &path.name,
        path.sub.as_deref(),
    )?;
    Ok(ResolvedAttr::from_ref(path.clone(), r))
}

fn require_value_path_target(attr: &ResolvedAttr) -> Result<(), FilterError> {
    if attr.attr.kind != AttrType::Complex || attr.sub.is_some() {
        return Err(FilterError::semantic(format!(
            "\"{}\" is not a complex attribute; a value filter needs one such as emails or \
             members",
            attr.path
        )));
    }
    Ok(())
}

/// `parent`: the value path being resolved inside, if any.
fn resolve_in(
    schemas: &Schemas,
    filter: &Filter,
    rt: ResourceType,
    parent: Option<&ResolvedAttr>,
) -> Result<ResolvedFilter, FilterError> {
    Ok(match filter {
        Filter::And(a, b) => ResolvedFilter::And(
            Box::new(resolve_in(schemas, a, rt, parent)?),
            Box::new(resolve_in(schemas, b, rt, parent)?),
        ),
        Filter::Or(a, b) => ResolvedFilter::Or(
            Box::new(resolve_in(schemas, a, rt, parent)?),
            Box::new(resolve_in(schemas, b, rt, parent)?),
        ),
        Filter::Not(inner) => {
            ResolvedFilter::Not(Box::new(resolve_in(schemas, inner, rt, parent)?))
        }
        Filter::Present(path) => {
            ResolvedFilter::Present(resolve_term_attr(schemas, path, rt, parent)?)
        }
        Filter::Compare(path, op, value) => {
            let mut attr = resolve_term_attr(schemas, path, rt, parent)?;
            if attr.sub.is_none() && attr.attr.kind == AttrType::Complex {
                attr.sub = Some(attr.attr.sub_attribute("value").ok_or_else(|| {
                    FilterError::semantic(format!(
                        "\"{path}\" is complex; compare one of its sub-attributes (e.g. \
                         {path}.{})",
                        attr.attr.sub_attributes.first().map_or("value", |s| s.name)
                    ))
                })?);
                attr.implied_sub = true;
            }
            let value = check_value(&attr, *op, value)?;
            ResolvedFilter::Compare {
                attr,
                op: *op,
                value,
            }
        }
        Filter::ValuePath { attr, filter } => {
            if parent.is_some() {
                return Err(FilterError::semantic(
                    "a value filter cannot contain another value filter",
                ));
            }
            let attr = resolve_top(schemas, attr, rt)?;
            require_value_path_target(&attr)?;
            let filter = resolve_in(schemas, filter, rt, Some(&attr))?;
            ResolvedFilter::ValuePath {
                attr,
                filter: Box::new(filter),
            }
        }
    })
}

/// The attribute of a `pr` or comparison term: top-level, or a sub-attribute of `parent`.
fn resolve_term_attr(
    schemas: &Schemas,
    path: &AttrPath,
    rt: ResourceType,
    parent: Option<&ResolvedAttr>,
) -> Result<ResolvedAttr, FilterError> {
    let attr = match parent {
        None => resolve_top(schemas, path, rt)?,
        Some(parent) => {
            if path.schema.is_some() || path.sub.is_some() {
                return Err(FilterError::semantic(format!(
                    "inside \"{}[…]\", name one of its sub-attributes (e.g. {}), not \"{path}\"",
                    parent.path,
                    parent
                        .attr
                        .sub_attributes
                        .first()
                        .map_or("value", |s| s.name)
                )));
            }
            let sub = parent.attr.sub_attribute(&path.name).ok_or_else(|| {
                schema::SchemaError::NoSuchSubAttribute {
                    attr: parent.attr.name.to_string(),
                    sub: path.name.clone(),
                }
            })?;
            ResolvedAttr {
                path: path.clone(),
                sub: Some(sub),
                implied_sub: false,
                ..parent.clone()
            }
        }
    };
    if attr.attr.returned == Returned::Never || attr.target().returned == Returned::Never {
        return Err(FilterError::semantic(format!(
            "attribute \"{path}\" cannot be used in a filter"
        )));
    }
    Ok(attr)
}

fn check_value(
    attr: &ResolvedAttr,
    op: CompareOp,
    value: &CompValue,
) -> Result<ResolvedValue, FilterError> {
    let path = &attr.path;
    let kind = attr.kind();
    let unsupported = || {
        FilterError::semantic(format!(
            "operator \"{op}\" is not supported on {} attribute \"{path}\"",
            kind.as_str()
        ))
    };
    let wrong_type = |expected: &str| {
        FilterError::semantic(format!(
            "attribute \"{path}\" is of type {}; compare it with {expected}",
            kind.as_str()
        ))
    };
    if let CompValue::Null = value {
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(ResolvedValue::Null),
            _ => Err(FilterError::semantic(format!(
                "only \"eq\" and \"ne\" can compare \"{path}\" with null"
            ))),
        };
    }
    match kind {
        AttrType::String | AttrType::Reference => match value {
            CompValue::Str(s) => Ok(ResolvedValue::Str(s.clone())),
            _ => Err(wrong_type("a string")),
        },
        AttrType::Binary => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(unsupported());
            }
            match value {
                CompValue::Str(s) => Ok(ResolvedValue::Str(s.clone())),
                _ => Err(wrong_type("a base64 string")),
            }
        }
        AttrType::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(unsupported());
            }
            match value {
                CompValue::Bool(b) => Ok(ResolvedValue::Bool(*b)),
                CompValue::Str(s) if s.eq_ignore_ascii_case("true") => {
                    Ok(ResolvedValue::Bool(true))
                }
                CompValue::Str(s) if s.eq_ignore_ascii_case("false") => {
                    Ok(ResolvedValue::Bool(false))
                }
                _ => Err(wrong_type("true or false")),
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            if op.is_substring() {
                return Err(unsupported());
            }
            match value {
                CompValue::Number { text, value } => Ok(ResolvedValue::Number {
                    text: text.clone(),
                    value: *value,
                }),
                _ => Err(wrong_type("a number")),
            }
        }
        AttrType::DateTime => {
            if op.is_substring() {
                return Err(unsupported());
            }
            match value {
                CompValue::Str(s) => {
                    let parsed = DateTime::parse_from_rfc3339(s).map_err(|_| {
                        FilterError::semantic(format!(
                            "\"{path}\" is a date-time; compare it with an RFC 3339 string such \
                             as \"2011-05-13T04:42:34Z\""
                        ))
                    })?;
                    Ok(ResolvedValue::DateTime {
                        text: s.clone(),
                        value: parsed.with_timezone(&Utc),
                    })
                }
                _ => Err(wrong_type("an RFC 3339 date-time string")),
            }
        }
        // Compare on a complex attribute has been redirected to its `value` above.
        AttrType::Complex => Err(unsupported()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_proto::schema::Schemas;
    use crate::scim_proto::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};

    fn p(input: &str) -> Filter {
        parse_filter(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    fn attr(name: &str) -> AttrPath {
        AttrPath::named(name)
    }

    fn dotted(name: &str, sub: &str) -> AttrPath {
        AttrPath {
            schema: None,
            name: name.into(),
            sub: Some(sub.into()),
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::Str(v.into())
    }

    fn cmp(path: AttrPath, op: CompareOp, v: CompValue) -> Filter {
        Filter::Compare(path, op, v)
    }

    fn eq(name: &str, v: &str) -> Filter {
        cmp(attr(name), CompareOp::Eq, s(v))
    }

    fn pr(name: &str) -> Filter {
        Filter::Present(attr(name))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn vp(name: &str, inner: Filter) -> Filter {
        Filter::ValuePath {
            attr: attr(name),
            filter: Box::new(inner),
        }
    }

    #[test]
    fn parses_every_comparison_operator_in_any_case() {
        for op in CompareOp::ALL {
            for spelled in [
                op.as_str().to_string(),
                op.as_str().to_uppercase(),
                format!("{}{}", op.as_str()[..1].to_uppercase(), &op.as_str()[1..]),
            ] {
                assert_eq!(
                    p(&format!("userName {spelled} \"x\"")),
                    cmp(attr("userName"), op, s("x")),
                    "{spelled}"
                );
            }
        }
        assert_eq!(p("title pr"), pr("title"));
        assert_eq!(p("title PR"), pr("title"));
        assert_eq!(p("title Pr"), pr("title"));
    }

    #[test]
    fn parses_json_literals_case_insensitively() {
        assert_eq!(
            p("active eq TRUE"),
            cmp(attr("active"), CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            p("active eq False"),
            cmp(attr("active"), CompareOp::Eq, CompValue::Bool(false))
        );
        assert_eq!(
            p("title eq NULL"),
            cmp(attr("title"), CompareOp::Eq, CompValue::Null)
        );
        for (text, value) in [
            ("0", 0.0),
            ("-1", -1.0),
            ("12.5", 12.5),
            ("1e3", 1000.0),
            ("-2.5E-1", -0.25),
        ] {
            assert_eq!(
                p(&format!("x gt {text}")),
                cmp(
                    attr("x"),
                    CompareOp::Gt,
                    CompValue::Number {
                        text: text.into(),
                        value
                    }
                )
            );
        }
    }

    #[test]
    fn keeps_attribute_names_as_written_and_keywords_case_insensitive() {
        assert_eq!(
            p("USERNAME eq \"a\" AND Title Pr OR NOT (x pr)"),
            or(and(eq("USERNAME", "a"), pr("Title")), not(pr("x")))
        );
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        assert_eq!(
            p("a pr or b pr and c pr"),
            or(pr("a"), and(pr("b"), pr("c")))
        );
        assert_eq!(
            p("a pr and b pr or c pr"),
            or(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(p("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
        assert_eq!(
            p("a pr and not (b pr or c pr)"),
            and(pr("a"), not(or(pr("b"), pr("c"))))
        );
    }

    #[test]
    fn and_and_or_are_left_associative() {
        assert_eq!(
            p("a pr and b pr and c pr"),
            and(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(p("a pr or b pr or c pr"), or(or(pr("a"), pr("b")), pr("c")));
    }

    #[test]
    fn parentheses_group_and_leave_no_node() {
        assert_eq!(
            p("(a pr or b pr) and c pr"),
            and(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            p("a pr and (b pr or c pr)"),
            and(pr("a"), or(pr("b"), pr("c")))
        );
        assert_eq!(p("((a pr))"), pr("a"));
        assert_eq!(p("( a pr )"), pr("a"));
        assert_eq!(p("not(a pr)"), not(pr("a")));
        assert_eq!(p("  a pr  "), pr("a"));
        assert_eq!(p("a pr\tand\nb pr"), and(pr("a"), pr("b")));
    }

    #[test]
    fn decodes_json_string_escapes() {
        let cases = [
            (r#""say \"hi\"""#, "say \"hi\""),
            (r#""back\\slash""#, "back\\slash"),
            (r#""\/""#, "/"),
            (r#""a\nb\tc\rd\be\ff""#, "a\nb\tc\rd\u{8}e\u{c}f"),
            (r#""\u00e9lodie""#, "élodie"),
            (r#""\u00C9""#, "É"),
            (r#""\ud83d\ude00""#, "😀"),
            (r#""élodie 😀""#, "élodie 😀"),
            (r#""""#, ""),
        ];
        for (literal, decoded) in cases {
            assert_eq!(
                p(&format!("userName eq {literal}")),
                eq("userName", decoded),
                "{literal}"
            );
        }
    }

    #[test]
    fn like_wildcards_and_backslashes_are_plain_characters() {
        assert_eq!(
            p(r#"userName co "100%_a\\b""#),
            cmp(attr("userName"), CompareOp::Co, s("100%_a\\b"))
        );
        assert_eq!(p(r#"userName eq "%""#), eq("userName", "%"));
        assert_eq!(p(r#"userName eq "_""#), eq("userName", "_"));
        // Brackets, parentheses and keywords inside strings are just text.
        assert_eq!(
            p(r#"displayName eq "a) or (b [c] and not""#),
            eq("displayName", "a) or (b [c] and not")
        );
    }

    #[test]
    fn parses_urn_prefixed_paths() {
        assert_eq!(
            p(&format!(
                "{ENTERPRISE_USER_SCHEMA}:manager.value eq \"26118915\""
            )),
            cmp(
                AttrPath {
                    schema: Some(ENTERPRISE_USER_SCHEMA.into()),
                    name: "manager".into(),
                    sub: Some("value".into())
                },
                CompareOp::Eq,
                s("26118915")
            )
        );
        assert_eq!(
            p(&format!(
                "{ENTERPRISE_USER_SCHEMA}:employeeNumber eq \"701984\""
            )),
            cmp(
                AttrPath {
                    schema: Some(ENTERPRISE_USER_SCHEMA.into()),
                    name: "employeeNumber".into(),
                    sub: None
                },
                CompareOp::Eq,
                s("701984")
            )
        );
        assert_eq!(
            p(&format!("{USER_SCHEMA}:userName sw \"J\"")),
            cmp(
                AttrPath {
                    schema: Some(USER_SCHEMA.into()),
                    name: "userName".into(),
                    sub: None
                },
                CompareOp::Sw,
                s("J")
            )
        );
        // The URN may be written in any case; it is kept as written.
        let upper = p("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:name.familyName pr");
        let Filter::Present(path) = upper else {
            panic!("{upper:?}")
        };
        assert_eq!(
            path.schema.as_deref(),
            Some("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER")
        );
        assert_eq!(path.sub.as_deref(), Some("familyName"));
    }

    #[test]
    fn parses_every_filter_example_of_rfc7644_3_4_2_2() {
        let examples = [
            r#"userName eq "bjensen""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            r#"title pr"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ];
        for example in examples {
            let filter = p(example);
            resolve(&Schemas::default(), &filter, ResourceType::User)
                .unwrap_or_else(|e| panic!("{example} should resolve: {e}"));
        }
    }

    #[test]
    fn parses_value_paths_including_or_and_parentheses_inside() {
        assert_eq!(
            p(r#"emails[type eq "work" and value co "@example.com"]"#),
            vp(
                "emails",
                and(
                    eq("type", "work"),
                    cmp(attr("value"), CompareOp::Co, s("@example.com"))
                )
            )
        );
        // Errata 7322: parentheses inside a value filter.
        assert_eq!(
            p(r#"emails[type eq "work" or (type eq "home" and value ew "@x.org")]"#),
            vp(
                "emails",
                or(
                    eq("type", "work"),
                    and(
                        eq("type", "home"),
                        cmp(attr("value"), CompareOp::Ew, s("@x.org"))
                    )
                )
            )
        );
        assert_eq!(
            p(r#"members[ not (type eq "Group") ]"#),
            vp("members", not(eq("type", "Group")))
        );
    }

    #[test]
    fn entra_value_path_with_sub_attribute_comparison_becomes_an_and_inside_the_value_path() {
        let expected = vp(
            "emails",
            and(eq("type", "work"), eq("value", "x@example.com")),
        );
        assert_eq!(
            p(r#"emails[type eq "work"].value eq "x@example.com""#),
            expected
        );
        // The normalised form is the RFC form with the same meaning.
        assert_eq!(
            p(r#"emails[type eq "work" and value eq "x@example.com"]"#),
            expected
        );
        assert_eq!(
            p(r#"emails[type eq "work"].value pr"#),
            vp("emails", and(eq("type", "work"), pr("value")))
        );
        assert_eq!(
            p(r#"userName eq "a" and emails[type eq "work"].value eq "b" or title pr"#),
            or(
                and(
                    eq("userName", "a"),
                    vp("emails", and(eq("type", "work"), eq("value", "b")))
                ),
                pr("title")
            )
        );
    }

    #[test]
    fn nested_value_paths_are_rejected() {
        for input in [
            r#"emails[type eq "work" and emails[value pr]]"#,
            r#"emails[members[value pr]]"#,
            r#"emails[(x[y pr])]"#,
        ] {
            let e = parse_filter(input).expect_err(input);
            assert!(e.message.contains("another value filter"), "{input}: {e}");
        }
        assert!(parse_path(r#"emails[members[value pr]]"#).is_err());
    }

    #[test]
    fn accepts_a_filter_of_exactly_the_maximum_length_and_rejects_one_more() {
        let prefix = "userName eq \"";
        let fill = MAX_LEN - prefix.len() - 1;
        let at_limit = format!("{prefix}{}\"", "a".repeat(fill));
        assert_eq!(at_limit.chars().count(), MAX_LEN);
        assert!(parse_filter(&at_limit).is_ok());
        let over = format!("{prefix}{}\"", "a".repeat(fill + 1));
        let e = parse_filter(&over).expect_err("too long");
        assert!(e.message.contains("longer than"), "{e}");
        // Counted in characters, not bytes.
        let multibyte = format!("{prefix}{}\"", "é".repeat(fill));
        assert!(parse_filter(&multibyte).is_ok());
        assert!(parse_path(&"a".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn accepts_the_maximum_nesting_depth_and_rejects_one_more_level() {
        let parens = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(p(&parens(MAX_DEPTH)), pr("a"));
        let e = parse_filter(&parens(MAX_DEPTH + 1)).expect_err("too deep");
        assert!(e.message.contains("deeper"), "{e}");

        let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
        assert!(parse_filter(&nots(MAX_DEPTH)).is_ok());
        assert!(parse_filter(&nots(MAX_DEPTH + 1)).is_err());

        // A value path counts as a level.
        let in_vp = |n: usize| format!("emails[{}type pr{}]", "(".repeat(n - 1), ")".repeat(n - 1));
        assert!(parse_filter(&in_vp(MAX_DEPTH)).is_ok());
        assert!(parse_filter(&in_vp(MAX_DEPTH + 1)).is_err());
    }

    #[test]
    fn very_deep_nesting_is_an_error_not_a_stack_overflow() {
        for input in [
            "(".repeat(MAX_LEN),
            "not (".repeat(MAX_LEN / 5),
            format!("{}a pr{}", "(".repeat(2000), ")".repeat(2000)),
            "a[".repeat(MAX_LEN / 2),
        ] {
            assert!(parse_filter(&input).is_err());
        }
    }

    #[test]
    fn accepts_the_maximum_number_of_terms_and_rejects_one_more() {
        let terms = |n: usize| vec!["a pr"; n].join(" and ");
        assert!(parse_filter(&terms(MAX_TERMS)).is_ok());
        let e = parse_filter(&terms(MAX_TERMS + 1)).expect_err("too many");
        assert!(e.message.contains("more than"), "{e}");
        // Terms inside value paths count, and Entra's trailing comparison is one more.
        let inner = vec!["type pr"; MAX_TERMS - 1].join(" or ");
        assert!(parse_filter(&format!("emails[{inner}].value eq \"x\"")).is_ok());
        assert!(parse_filter(&format!("emails[{inner} or type pr].value eq \"x\"")).is_err());
    }

    #[test]
    fn malformed_filters_are_errors() {
        let long_name = format!("{} pr", "a.".repeat(50));
        let bad: Vec<&str> = vec![
            "",
            "   ",
            "userName",
            "userName ",
            "userName eq",
            "userName eq ",
            "userName eq bjensen",
            "userName eq 'bjensen'",
            "userName eq \"bjensen",
            "userName eq \"bjensen\\\"",
            "userName eq \"a\"b",
            "userName eq \"a\" \"b\"",
            "userName eq\"a\"",
            "userName  xx \"a\"",
            "userName equals \"a\"",
            "userName eq1",
            "userName == \"a\"",
            "userName = \"a\"",
            "eq \"a\"",
            "\"a\" eq userName",
            "userName pr pr",
            "userName pr and",
            "userName pr or",
            "userName pr and or b pr",
            "or userName pr",
            "userName pr and(title pr)",
            "userName pr andtitle pr",
            "(userName pr)and title pr",
            "userName pr xor title pr",
            "not userName pr",
            "not",
            "not ()",
            "not (",
            "()",
            "(",
            ")",
            "(userName pr",
            "userName pr)",
            "((userName pr)",
            "userName pr))",
            "[type eq \"work\"]",
            "emails[",
            "emails[]",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"]]",
            "emails[type eq \"work\") ",
            "emails]",
            "emails[type eq \"work\"] eq \"x\"",
            "emails[type eq \"work\"] pr",
            "emails[type eq \"work\"].value",
            "emails[type eq \"work\"].value eq",
            "emails[type eq \"work\"].",
            "emails[type eq \"work\"]. value eq \"x\"",
            "emails[type eq \"work\"].value.display eq \"x\"",
            "emails[type eq \"work\"][value pr]",
            "emails.value[type eq \"work\"]",
            "emails [type eq \"work\"]",
            "emails[not]",
            "a.b.c pr",
            long_name.as_str(),
            "a. pr",
            ".a pr",
            "a..b pr",
            "1abc pr",
            "_abc pr",
            "-abc pr",
            "a$b pr",
            "$ pr",
            "user name pr",
            "ünïcode pr",
            "userName\u{feff} pr",
            ":userName pr",
            "userName: pr",
            "foo:userName pr",
            "http://x/y:userName pr",
            "urn: pr",
            "urn:userName pr:",
            "urn::x:userName pr",
            "urn:x::userName pr",
            "urn:x.:userName pr",
            "urn:x:userName. pr",
            "userName eq \"\\x\"",
            "userName eq \"\\u12\"",
            "userName eq \"\\u12G4\"",
            "userName eq \"\\ud800\"",
            "userName eq \"tab\there\"",
            "userName eq \"nl\nhere\"",
            "userName eq 01",
            "userName eq 1.",
            "userName eq .5",
            "userName eq -",
            "userName eq +1",
            "userName eq 1e",
            "userName eq 1e+",
            "userName eq 0x10",
            "userName eq 1e999",
            "userName eq -1e999",
            "userName eq NaN",
            "userName eq Infinity",
            "userName eq tru",
            "userName eq truex",
            "userName eq nul",
            "userName eq [1]",
            "userName eq {}",
            "userName eq (\"a\")",
            "userName pr and not (title pr",
            "userName eq \"a\" and",
            "\u{0}",
            "userName pr \u{0}",
            "&&",
            "userName eq \"a\" || title pr",
            "userName eq \"a\";drop table users",
        ];
        for input in bad {
            let result = parse_filter(input);
            assert!(result.is_err(), "{input:?} should not parse: {result:?}");
        }
    }

    #[test]
    fn errors_carry_a_position_and_a_bounded_message() {
        let e = parse_filter("userName eq bjensen").expect_err("unquoted");
        assert_eq!(e.position, Some(12));
        let e = parse_filter("userName pr and (title pr").expect_err("unclosed");
        assert_eq!(e.position, Some(25));
        assert!(e.to_string().ends_with("(at character 25)"), "{e}");
        let junk = format!("userName pr {}", "x".repeat(3000));
        let e = parse_filter(&junk).expect_err("junk");
        assert!(e.message.len() < 200, "{}", e.message);
        let e = parse_filter("userName xyz \"a\"").expect_err("op");
        assert!(e.message.contains("unknown operator \"xyz\""), "{e}");
    }

    #[test]
    fn not_is_an_attribute_name_unless_a_parenthesis_follows() {
        assert_eq!(p("not pr"), pr("not"));
        assert_eq!(p("not eq \"x\""), eq("not", "x"));
        assert_eq!(p("and pr and or pr"), and(pr("and"), pr("or")));
    }

    #[test]
    fn dollar_ref_is_a_valid_sub_attribute_name() {
        assert_eq!(
            p(r#"members.$ref eq "https://x/Users/1""#),
            cmp(
                dotted("members", "$ref"),
                CompareOp::Eq,
                s("https://x/Users/1")
            )
        );
        assert_eq!(
            p(r#"members[$ref ew "/Users/1"]"#),
            vp("members", cmp(attr("$ref"), CompareOp::Ew, s("/Users/1")))
        );
    }

    // ---- PATCH paths ----------------------------------------------------------------------

    fn path(input: &str) -> PatchPath {
        parse_path(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    #[test]
    fn parses_the_patch_paths_okta_and_entra_send() {
        assert_eq!(
            path("members"),
            PatchPath {
                attr: attr("members"),
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#),
            PatchPath {
                attr: attr("members"),
                filter: Some(eq("value", "2819c223-7f76-453a-919d-413861904646")),
                sub: None
            }
        );
        assert_eq!(
            path(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: attr("emails"),
                filter: Some(eq("type", "work")),
                sub: Some("value".into())
            }
        );
        assert_eq!(
            path("name.familyName"),
            PatchPath {
                attr: dotted("name", "familyName"),
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            path("name.givenName"),
            PatchPath {
                attr: dotted("name", "givenName"),
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            path(&format!("{ENTERPRISE_USER_SCHEMA}:manager")),
            PatchPath {
                attr: AttrPath {
                    schema: Some(ENTERPRISE_USER_SCHEMA.into()),
                    name: "manager".into(),
                    sub: None
                },
                filter: None,
                sub: None
            }
        );
        assert_eq!(
            path(&format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber"))
                .attr
                .name,
            "employeeNumber"
        );
        assert_eq!(
            path(r#"addresses[type eq "work"].streetAddress"#)
                .sub
                .as_deref(),
            Some("streetAddress")
        );
        assert_eq!(path("active").attr, attr("active"));
        assert_eq!(path(" displayName ").attr, attr("displayName"));
    }

    #[test]
    fn resolves_the_patch_paths_okta_and_entra_send() {
        let user = [
            "active",
            "name.givenName",
            "NAME.FAMILYNAME",
            r#"emails[type eq "work"].value"#,
            r#"emails[type eq "work"]"#,
            r#"phoneNumbers[type eq "mobile"].value"#,
            r#"addresses[type eq "work"].formatted"#,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "password",
        ];
        for input in user {
            resolve_path(&Schemas::default(), &path(input), ResourceType::User)
                .unwrap_or_else(|e| panic!("{input}: {e}"));
        }
        for input in ["members", r#"members[value eq "2819c223"]"#, "displayName"] {
            resolve_path(&Schemas::default(), &path(input), ResourceType::Group)
                .unwrap_or_else(|e| panic!("{input}: {e}"));
        }
        let r = resolve_path(
            &Schemas::default(),
            &path(r#"emails[type eq "work"].value"#),
            ResourceType::User,
        )
        .expect("resolves");
        assert_eq!(r.attr.attr.name, "emails");
        assert_eq!(r.sub.map(|s| s.name), Some("value"));
        // RFC 7644 Figure 8 names `members[…].displayName`, which the Group schema lacks.
        for (input, rt) in [
            (r#"members[value eq "x"].displayName"#, ResourceType::Group),
            ("members", ResourceType::User),
            ("userName.x", ResourceType::User),
            (r#"userName[value eq "x"]"#, ResourceType::User),
            (r#"emails[nope eq "x"]"#, ResourceType::User),
            (r#"emails[type eq "work"].nope"#, ResourceType::User),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                ResourceType::User,
            ),
        ] {
            assert!(
                resolve_path(&Schemas::default(), &path(input), rt).is_err(),
                "{input}"
            );
        }
    }

    #[test]
    fn malformed_patch_paths_are_errors() {
        for input in [
            "",
            "  ",
            "members[",
            "members[]",
            r#"members[value eq "x""#,
            r#"members[value eq "x"]."#,
            r#"members[value eq "x"].a.b"#,
            r#"members[value eq "x"][type eq "User"]"#,
            r#"members[value eq "x"] x"#,
            "members]",
            r#"members eq "x""#,
            "members pr",
            "a.b.c",
            "name.",
            ".name",
            "urn:x:",
            r#"name.givenName[value eq "x"]"#,
            "emails[type eq \"work\"]value",
            "1abc",
            "a b",
        ] {
            assert!(parse_path(input).is_err(), "{input:?}");
        }
    }

    // ---- resolve ---------------------------------------------------------------------------

    fn resolved(input: &str, rt: ResourceType) -> ResolvedFilter {
        resolve(&Schemas::default(), &p(input), rt)
            .unwrap_or_else(|e| panic!("{input:?} should resolve: {e}"))
    }

    fn rejected(input: &str, rt: ResourceType) -> FilterError {
        match resolve(&Schemas::default(), &p(input), rt) {
            Ok(r) => panic!("{input:?} should be rejected, got {r:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn resolve_rejects_unknown_attributes_and_sub_attributes() {
        let e = rejected(r#"nope eq "x""#, ResourceType::User);
        assert!(e.message.contains("no such attribute \"nope\""), "{e}");
        assert_eq!(e.position, None);
        rejected(r#"name.nope eq "x""#, ResourceType::User);
        rejected(r#"userName.value eq "x""#, ResourceType::User);
        rejected(r#"emails[nope eq "x"]"#, ResourceType::User);
        rejected(r#"members[value eq "x"]"#, ResourceType::User);
        rejected(r#"userName eq "x""#, ResourceType::Group);
        rejected("not (nope pr) or title pr", ResourceType::User);
    }

    #[test]
    fn resolve_makes_the_schema_prefix_optional_and_matches_case_insensitively() {
        let plain = resolved(r#"userName eq "x""#, ResourceType::User);
        let prefixed = resolved(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#,
            ResourceType::User,
        );
        let shouted = resolved(
            r#"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:USERNAME eq "x""#,
            ResourceType::User,
        );
        for r in [&plain, &prefixed, &shouted] {
            let ResolvedFilter::Compare { attr, .. } = r else {
                panic!("{r:?}")
            };
            assert_eq!(attr.attr.name, "userName");
            assert!(!attr.extension && !attr.case_exact());
        }
        let ResolvedFilter::Compare { attr, .. } =
            resolved(r#"MANAGER.VALUE eq "x""#, ResourceType::User)
        else {
            panic!()
        };
        assert!(attr.extension);
        assert_eq!(attr.schema, ENTERPRISE_USER_SCHEMA);
        resolved(r#"DisplayName eq "Admins""#, ResourceType::Group);
        resolved(
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Admins""#,
            ResourceType::Group,
        );
        resolved(r#"Members[Value eq "x"]"#, ResourceType::Group);
    }

    #[test]
    fn resolve_rejects_a_schema_urn_that_does_not_own_the_attribute() {
        let e = rejected(
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:userName eq "x""#,
            ResourceType::User,
        );
        assert!(e.message.contains("not a schema of the User"), "{e}");
        rejected(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x""#,
            ResourceType::User,
        );
        rejected(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:employeeNumber eq "x""#,
            ResourceType::User,
        );
        rejected(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#,
            ResourceType::Group,
        );
        rejected(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:displayName eq "x""#,
            ResourceType::Group,
        );
        rejected(
            r#"urn:example:custom:2.0:User:x eq "y""#,
            ResourceType::User,
        );
    }

    #[test]
    fn resolve_attaches_type_case_exactness_and_plurality() {
        let ResolvedFilter::Compare { attr, value, .. } =
            resolved(r#"emails co "example.com""#, ResourceType::User)
        else {
            panic!()
        };
        assert_eq!(attr.sub.map(|s| s.name), Some("value"));
        assert!(attr.implied_sub && attr.multi_valued());
        assert_eq!(attr.kind(), AttrType::String);
        assert_eq!(value, ResolvedValue::Str("example.com".into()));

        for (input, case_exact) in [
            (r#"id eq "x""#, true),
            (r#"externalId eq "x""#, true),
            (r#"userName eq "x""#, false),
            (r#"meta.resourceType eq "User""#, true),
        ] {
            let ResolvedFilter::Compare { attr, .. } = resolved(input, ResourceType::User) else {
                panic!()
            };
            assert_eq!(attr.case_exact(), case_exact, "{input}");
        }

        let ResolvedFilter::Compare { value, .. } = resolved(
            r#"meta.lastModified gt "2011-05-13T04:42:34+02:00""#,
            ResourceType::User,
        ) else {
            panic!()
        };
        let ResolvedValue::DateTime { value, .. } = value else {
            panic!("{value:?}")
        };
        assert_eq!(value.to_rfc3339(), "2011-05-13T02:42:34+00:00");

        let ResolvedFilter::ValuePath { attr, filter } =
            resolved(r#"emails[type eq "work"]"#, ResourceType::User)
        else {
            panic!()
        };
        assert_eq!(attr.attr.name, "emails");
        let ResolvedFilter::Compare { attr: inner, .. } = *filter else {
            panic!()
        };
        assert_eq!(inner.attr.name, "emails");
        assert_eq!(inner.sub.map(|s| s.name), Some("type"));
    }

    #[test]
    fn resolve_checks_operators_and_values_against_the_attribute_type() {
        for input in [
            "active gt true",
            "active co true",
            "active eq 1",
            r#"active eq "yes""#,
            r#"meta.lastModified gt "yesterday""#,
            r#"meta.lastModified co "2011""#,
            "meta.lastModified gt 2011",
            "userName eq 1",
            "userName eq true",
            "userName gt null",
            "userName co null",
            r#"name eq "x""#,
            r#"name co "x""#,
            r#"password eq "hunter2""#,
            "password pr",
            r#"x509Certificates.value gt "AAA""#,
            r#"userName[value eq "x"]"#,
            r#"emails[emails.type eq "work"]"#,
            r#"emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq "work"]"#,
        ] {
            rejected(input, ResourceType::User);
        }
        for input in [
            "active eq true",
            "active ne false",
            r#"active eq "False""#,
            "active eq null",
            "title eq null",
            "title ne null",
            "name pr",
            "emails pr",
            r#"name[givenName eq "x"]"#,
            r#"manager eq "x""#,
            r#"x509Certificates.value eq "AAA""#,
            r#"meta.created ge "2020-01-01T00:00:00Z""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            "emails[primary eq true]",
        ] {
            resolved(input, ResourceType::User);
        }
        let ResolvedFilter::Compare { value, .. } =
            resolved(r#"active eq "False""#, ResourceType::User)
        else {
            panic!()
        };
        assert_eq!(value, ResolvedValue::Bool(false));
    }

    // ---- rendering and property tests ----------------------------------------------------

    #[test]
    fn renders_filters_that_parse_back_to_the_same_ast() {
        for input in [
            r#"a pr or b pr and c pr"#,
            r#"(a pr or b pr) and c pr"#,
            r#"a pr and (b pr and c pr)"#,
            r#"a pr or (b pr or c pr)"#,
            r#"not (a pr or b pr) and c eq "x\"y""#,
            r#"emails[type eq "work"].value eq "x""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "1""#,
            r#"x gt -1.5e3 and y eq null and z ne false"#,
        ] {
            let ast = p(input);
            let text = ast.to_string();
            assert_eq!(p(&text), ast, "{input} rendered as {text}");
        }
        assert_eq!(
            p("(a pr or b pr) and c pr").to_string(),
            "(a pr or b pr) and c pr"
        );
        assert_eq!(
            p(r#"emails[type eq "work"].value eq "x""#).to_string(),
            r#"emails[type eq "work" and value eq "x"]"#
        );
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                9 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
                1 => Just("$ref".to_string()),
                1 => prop::sample::select(vec!["not", "and", "or", "pr", "eq", "true", "null"])
                    .prop_map(str::to_string),
            ]
        }

        fn urn() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(crate::scim_proto::schema::USER_SCHEMA.to_string()),
                Just(crate::scim_proto::schema::ENTERPRISE_USER_SCHEMA.to_string()),
                "(urn|URN)(:[a-zA-Z0-9][a-zA-Z0-9-]{0,4}(\\.[a-zA-Z0-9]{1,3})?){1,4}",
            ]
        }

        fn attr_path() -> impl Strategy<Value = AttrPath> {
            (
                prop::option::weighted(0.2, urn()),
                name(),
                prop::option::weighted(0.3, name()),
            )
                .prop_map(|(schema, name, sub)| AttrPath { schema, name, sub })
        }

        fn bare_path() -> impl Strategy<Value = AttrPath> {
            (prop::option::weighted(0.2, urn()), name()).prop_map(|(schema, name)| AttrPath {
                schema,
                name,
                sub: None,
            })
        }

        fn value() -> impl Strategy<Value = CompValue> {
            prop_oneof![
                Just(CompValue::Null),
                any::<bool>().prop_map(CompValue::Bool),
                "-?(0|[1-9][0-9]{0,8})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,2})?".prop_map(|text| {
                    let value = text.parse().unwrap_or_default();
                    CompValue::Number { text, value }
                }),
                any::<String>().prop_map(CompValue::Str),
                "[%_\\\\\"()\\[\\] a-z]{0,12}".prop_map(CompValue::Str),
            ]
        }

        fn op() -> impl Strategy<Value = CompareOp> {
            prop::sample::select(CompareOp::ALL.to_vec())
        }

        fn term() -> BoxedStrategy<Filter> {
            prop_oneof![
                4 => (attr_path(), op(), value()).prop_map(|(a, o, v)| Filter::Compare(a, o, v)),
                1 => attr_path().prop_map(Filter::Present),
            ]
            .boxed()
        }

        fn combine(leaf: BoxedStrategy<Filter>, depth: u32) -> BoxedStrategy<Filter> {
            leaf.prop_recursive(depth, 16, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                    inner.prop_map(|a| Filter::Not(Box::new(a))),
                ]
            })
            .boxed()
        }

        /// Filters within the limits: ≤ 4 levels outside value paths, ≤ 2 inside, and never a
        /// value path inside another, so at most 16 × 4 = 64 terms.
        fn filter() -> impl Strategy<Value = Filter> {
            let value_path =
                (bare_path(), combine(term(), 2)).prop_map(|(attr, inner)| Filter::ValuePath {
                    attr,
                    filter: Box::new(inner),
                });
            combine(prop_oneof![3 => term(), 1 => value_path].boxed(), 4)
        }

        fn patch_path() -> impl Strategy<Value = PatchPath> {
            prop_oneof![
                attr_path().prop_map(|attr| PatchPath {
                    attr,
                    filter: None,
                    sub: None
                }),
                (bare_path(), combine(term(), 3), prop::option::of(name())).prop_map(
                    |(attr, filter, sub)| PatchPath {
                        attr,
                        filter: Some(filter),
                        sub
                    }
                ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_strings_never_panic_the_parsers(input in any::<String>()) {
                let _ = parse_filter(&input);
                let _ = parse_path(&input);
            }

            #[test]
            fn filter_like_strings_never_panic_the_parsers(
                input in "[a-zA-Z0-9 .:$_\\-\"\\\\()\\[\\]]{0,80}"
            ) {
                let _ = parse_filter(&input);
                let _ = parse_path(&input);
            }

            #[test]
            fn rendered_filters_parse_back_to_the_same_ast(ast in filter()) {
                let text = ast.to_string();
                let parsed = parse_filter(&text);
                prop_assert_eq!(parsed, Ok(ast), "rendered as {}", text);
            }

            #[test]
            fn rendered_patch_paths_parse_back_to_the_same_ast(ast in patch_path()) {
                let text = ast.to_string();
                prop_assert_eq!(parse_path(&text), Ok(ast), "rendered as {}", text);
            }

            #[test]
            fn resolving_any_parsed_filter_never_panics(ast in filter()) {
                let _ = resolve(&Schemas::default(), &ast, ResourceType::User);
                let _ = resolve(&Schemas::default(), &ast, ResourceType::Group);
            }
        }
    }
}
