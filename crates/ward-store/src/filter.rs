//! The finding filter language (SCC-style), documented in `docs/filter-grammar.md`.
//!
//! ```text
//! filter     := ws* [ or_expr ] ws* EOF
//! or_expr    := and_expr ( "OR" and_expr )*
//! and_expr   := unary ( [ "AND" ] unary )*          -- adjacent terms are ANDed
//! unary      := ( "NOT" | "-" ) unary | primary
//! primary    := "(" or_expr ")" | comparison
//! comparison := field op value
//! op         := "=" | "!=" | ":" | ">" | ">=" | "<" | "<="
//! value      := '"' ( [^"\\] | '\"' | '\\' )* '"' | bare
//! bare       := one or more characters other than whitespace, '"', '(' and ')'
//! ```
//!
//! AND (explicit or implicit) binds tighter than OR. Keywords are case-insensitive.
//! [`parse`] checks fields, operators and values (severity names, times, numbers) and returns a
//! typed AST; [`compile`] turns it into a SQL `WHERE` fragment with `?` placeholders and the
//! values to bind. Values are never interpolated into the SQL text.
//!
//! The SQL is written over the store's key table under the alias `k` (`finding_keys AS k`,
//! see `sqlite.rs`): severity, state, mute, category, times and count are its columns; the
//! resource fields (container, pod, namespace, node, image, resource name) are matched in the
//! small `resources` table and select `k.resource_id`s; `name` is looked up in `findings`.
//! A filter without times, count or name ([`Expr::countable`]) also runs unchanged over the
//! per-class and per-resource-class counts tables (`finding_counts AS k`,
//! `finding_resource_counts AS k`), which is how such filters are counted.

use std::fmt;
use ward_event::finding::{Mute, Severity, State};
use ward_event::Category;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses and NOT accepted.
pub const MAX_DEPTH: usize = 32;

/// A filter that could not be parsed. `position` is a 0-based character offset into the
/// filter; the message renders it as a 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter error at column {}: {message}", position + 1)]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

/// A filter that arrived as bytes (a percent-decoded query parameter), as text; invalid
/// UTF-8 is an error naming its byte offset (its `position` is the character offset of the
/// first bad byte, like every other filter error), never silently replaced.
pub fn from_utf8(bytes: &[u8]) -> Result<&str, FilterError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        FilterError {
            position: valid.chars().count(),
            message: format!(
                "invalid UTF-8 at byte {at} (0x{:02X}): a filter is UTF-8 text",
                bytes[at]
            ),
        }
    })
}

/// A filterable field. Each maps to one indexed column of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Category,
    Severity,
    State,
    Mute,
    EventTime,
    CreateTime,
    ResourceName,
    ContainerName,
    ContainerId,
    Image,
    PodName,
    Namespace,
    Node,
    Cluster,
    Project,
    Count,
}

impl Field {
    pub const ALL: [Field; 17] = [
        Field::Name,
        Field::Category,
        Field::Severity,
        Field::State,
        Field::Mute,
        Field::EventTime,
        Field::CreateTime,
        Field::ResourceName,
        Field::ContainerName,
        Field::ContainerId,
        Field::Image,
        Field::PodName,
        Field::Namespace,
        Field::Node,
        Field::Cluster,
        Field::Project,
        Field::Count,
    ];

    /// The canonical (SCC-like, lowerCamelCase) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Category => "category",
            Field::Severity => "severity",
            Field::State => "state",
            Field::Mute => "mute",
            Field::EventTime => "eventTime",
            Field::CreateTime => "createTime",
            Field::ResourceName => "resourceName",
            Field::ContainerName => "containerName",
            Field::ContainerId => "containerId",
            Field::Image => "image",
            Field::PodName => "podName",
            Field::Namespace => "namespace",
            Field::Node => "node",
            Field::Cluster => "cluster",
            Field::Project => "project",
            Field::Count => "count",
        }
    }

    /// Short aliases accepted besides the canonical name.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::ContainerName => &["container"],
            Field::Image => &["containerImageUri"],
            Field::PodName => &["pod"],
            Field::Namespace => &["ns"],
            // SCC's names for the fields of a finding's resource (`ListFindingsResult.resource`).
            Field::ResourceName => &["resource.name"],
            Field::Node => &["resource.node"],
            Field::Cluster => &["resource.cluster"],
            Field::Project => &["resource.project_display_name", "projectDisplayName"],
            _ => &[],
        }
    }

    /// Looks a field up by canonical name or alias. Case and underscores are ignored, so
    /// `event_time`, `EventTime` and `eventTime` are the same field.
    pub fn parse(s: &str) -> Option<Field> {
        let norm = |x: &str| -> String {
            x.chars()
                .filter(|c| *c != '_')
                .flat_map(char::to_lowercase)
                .collect()
        };
        let want = norm(s);
        Field::ALL
            .into_iter()
            .find(|f| norm(f.as_str()) == want || f.aliases().iter().any(|a| norm(a) == want))
    }

    /// Where the store keeps this field: the key table, the resources table, or (for the
    /// unique name) the findings table.
    pub fn home(self) -> Home {
        match self {
            Field::Name => Home::Findings,
            Field::ResourceName
            | Field::ContainerName
            | Field::ContainerId
            | Field::Image
            | Field::PodName
            | Field::Namespace
            | Field::Node
            | Field::Cluster
            | Field::Project => Home::Resources,
            _ => Home::Keys,
        }
    }

    /// The store column this field is compared against, in its [`home`](Self::home) table.
    pub fn column(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Category => "category",
            Field::Severity => "severity_rank",
            Field::State => "state",
            Field::Mute => "mute",
            Field::EventTime => "event_time_ns",
            Field::CreateTime => "create_time_ns",
            Field::ResourceName => "resource_name",
            Field::ContainerName => "container_name",
            Field::ContainerId => "container_id",
            Field::Image => "image",
            Field::PodName => "pod",
            Field::Namespace => "namespace",
            Field::Node => "node",
            Field::Cluster => "cluster",
            Field::Project => "project",
            Field::Count => "count",
        }
    }

    fn known_list() -> String {
        Field::ALL
            .iter()
            .map(|f| {
                if f.aliases().is_empty() {
                    f.as_str().to_string()
                } else {
                    format!("{} (alias {})", f.as_str(), f.aliases().join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The table a [`Field`] lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// `finding_keys` (alias `k`): one narrow row per finding.
    Keys,
    /// `resources`: one row per distinct (container id, name, image, pod, namespace, node,
    /// resource name, cluster, project); `finding_keys.resource_id` points at it.
    Resources,
    /// `findings`: the record itself.
    Findings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Has,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Has => ":",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }

    fn sql(self) -> &'static str {
        match self {
            Op::Eq | Op::Has => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// A checked comparison value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    /// A category value: the text as written and the known category it names, if any.
    Category(String, Option<Category>),
    Severity(Severity),
    State(State),
    Mute(Mute),
    /// Nanoseconds since the epoch. `whole_day` when written as a date (`2026-11-21`).
    Time {
        ns: i64,
        whole_day: bool,
    },
    Int(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp {
        field: Field,
        op: Op,
        value: Value,
        /// Character offset of the field name.
        position: usize,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// How the store can count a filter's matches, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Countable {
    /// Only severity, state, mute and category: a sum over the per-class counts.
    ByClass,
    /// Those and the resource fields: a sum over the per-resource-class counts.
    ByResourceClass,
    /// Times, count or name too: a count of the matching findings.
    ByRow,
}

impl Expr {
    /// How this filter's matches can be counted.
    pub fn countable(&self) -> Countable {
        match self {
            Expr::Cmp { field, .. } => match (field, field.home()) {
                (Field::Severity | Field::State | Field::Mute | Field::Category, _) => {
                    Countable::ByClass
                }
                (_, Home::Resources) => Countable::ByResourceClass,
                _ => Countable::ByRow,
            },
            Expr::Not(e) => e.countable(),
            Expr::And(a, b) | Expr::Or(a, b) => a.countable().max(b.countable()),
        }
    }
}

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Int(i64),
}

/// A compiled filter: a SQL boolean expression over the store's columns with `?`
/// placeholders, and the parameters in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    pub sql: String,
    pub params: Vec<SqlParam>,
    /// The store the SQL is written for.
    pub dialect: Dialect,
}

/// Parses a filter. An empty (or all-whitespace) filter gives `Ok(None)`: match everything.
pub fn parse(input: &str) -> Result<Option<Expr>, FilterError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(FilterError {
            position: input
                .char_indices()
                .take_while(|(i, _)| *i < MAX_FILTER_LEN)
                .count(),
            message: format!(
                "filter is too long ({} bytes; at most {MAX_FILTER_LEN})",
                input.len()
            ),
        });
    }
    let mut p = Parser {
        chars: input.chars().collect(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Ok(None);
    }
    let e = p.or_expr()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(if p.peek() == Some(')') {
            p.err_at(p.pos, "unbalanced parentheses: ')' has no matching '('")
        } else {
            p.err_at(p.pos, "unexpected input")
        });
    }
    Ok(Some(e))
}

/// Parses and compiles in one step; `Ok(None)` for an empty filter.
pub fn parse_to_sql(input: &str) -> Result<Option<SqlFilter>, FilterError> {
    Ok(parse(input)?.map(|e| compile(&e)))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

#[derive(Debug, PartialEq)]
enum Keyword {
    And,
    Or,
    Not,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn err_at(&self, position: usize, msg: impl Into<String>) -> FilterError {
        FilterError {
            position,
            message: msg.into(),
        }
    }

    /// The keyword at the cursor (a whole word), without consuming it.
    fn keyword(&self) -> Option<(Keyword, usize)> {
        let word_end = |start: usize| {
            let mut i = start;
            while i < self.chars.len() && self.chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            i
        };
        let end = word_end(self.pos);
        let word: String = self.chars[self.pos..end].iter().collect();
        // A keyword must end at whitespace, a parenthesis, a quote or the end.
        let boundary = match self.chars.get(end) {
            None => true,
            Some(c) => c.is_whitespace() || matches!(c, '(' | ')' | '"' | '-'),
        };
        if !boundary {
            return None;
        }
        let kw = match word.to_ascii_uppercase().as_str() {
            "AND" => Keyword::And,
            "OR" => Keyword::Or,
            "NOT" => Keyword::Not,
            _ => return None,
        };
        Some((kw, end - self.pos))
    }

    fn enter(&mut self, at: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(
                at,
                format!("filter nests too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and_expr()?;
        loop {
            self.skip_ws();
            match self.keyword() {
                Some((Keyword::Or, len)) => {
                    let kw_pos = self.pos;
                    self.pos += len;
                    self.expect_term_after(kw_pos, "OR")?;
                    let right = self.and_expr()?;
                    left = Expr::Or(Box::new(left), Box::new(right));
                }
                _ => return Ok(left),
            }
        }
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some(')') => return Ok(left),
                _ => {}
            }
            match self.keyword() {
                Some((Keyword::Or, _)) => return Ok(left),
                Some((Keyword::And, len)) => {
                    let kw_pos = self.pos;
                    self.pos += len;
                    self.expect_term_after(kw_pos, "AND")?;
                }
                // NOT or the start of another term: implicit AND.
                _ => {}
            }
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
    }

    /// After AND/OR/NOT there must be a term, not the end, ')' or another AND/OR.
    fn expect_term_after(&mut self, kw_pos: usize, kw: &str) -> Result<(), FilterError> {
        self.skip_ws();
        let dangling = match self.peek() {
            None | Some(')') => true,
            _ => matches!(self.keyword(), Some((Keyword::And | Keyword::Or, _))),
        };
        if dangling {
            return Err(self.err_at(kw_pos, format!("'{kw}' must be followed by a condition")));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        self.skip_ws();
        let start = self.pos;
        if let Some((Keyword::Not, len)) = self.keyword() {
            self.pos += len;
            self.expect_term_after(start, "NOT")?;
            self.enter(start)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.peek() == Some('-') {
            self.pos += 1;
            match self.peek() {
                Some(c) if c == '(' || c.is_alphabetic() || c == '_' => {}
                _ => {
                    return Err(self.err_at(
                        start,
                        "'-' (negation) must be directly followed by a field or '('",
                    ))
                }
            }
            self.enter(start)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                self.enter(start)?;
                self.skip_ws();
                if self.peek() == Some(')') {
                    return Err(self.err_at(start, "empty parentheses"));
                }
                let e = self.or_expr()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(
                        self.err_at(start, "unbalanced parentheses: this '(' is never closed")
                    );
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(')') => Err(self.err_at(start, "unbalanced parentheses: ')' has no matching '('")),
            None => Err(self.err_at(start, "expected a condition")),
            Some(_) => {
                if let Some((kw, _)) = self.keyword() {
                    let kw = format!("{kw:?}").to_ascii_uppercase();
                    return Err(self.err_at(start, format!("expected a condition, found '{kw}'")));
                }
                self.comparison()
            }
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            self.pos += 1;
        }
        if self.pos == start {
            let c = self.peek().unwrap_or(' ');
            return Err(self.err_at(start, format!("expected a field name, found '{c}'")));
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let field = Field::parse(&name).ok_or_else(|| {
            self.err_at(
                start,
                format!(
                    "unknown field '{name}'; known fields: {}",
                    Field::known_list()
                ),
            )
        })?;
        self.skip_ws();
        let op_pos = self.pos;
        let op = match (self.peek(), self.chars.get(self.pos + 1).copied()) {
            (Some('!'), Some('=')) => Some((Op::Ne, 2)),
            (Some('>'), Some('=')) => Some((Op::Ge, 2)),
            (Some('<'), Some('=')) => Some((Op::Le, 2)),
            (Some('='), _) => Some((Op::Eq, 1)),
            (Some(':'), _) => Some((Op::Has, 1)),
            (Some('>'), _) => Some((Op::Gt, 1)),
            (Some('<'), _) => Some((Op::Lt, 1)),
            _ => None,
        };
        let Some((op, len)) = op else {
            return Err(self.err_at(
                op_pos,
                format!("expected an operator (=, !=, :, >, >=, <, <=) after '{name}'"),
            ));
        };
        self.pos += len;
        self.skip_ws();
        let value_pos = self.pos;
        let raw = self.value(op)?;
        let value = check_value(field, op, &raw, value_pos)?;
        Ok(Expr::Cmp {
            field,
            op,
            value,
            position: start,
        })
    }

    /// Reads a quoted or bare value.
    fn value(&mut self, op: Op) -> Result<RawValue, FilterError> {
        let start = self.pos;
        match self.peek() {
            Some('"') => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => {
                            return Err(self.err_at(start, "unterminated string"));
                        }
                        Some('"') => {
                            self.pos += 1;
                            return Ok(RawValue {
                                text: s,
                                quoted: true,
                            });
                        }
                        Some('\\') => match self.chars.get(self.pos + 1).copied() {
                            Some(c @ ('"' | '\\')) => {
                                s.push(c);
                                self.pos += 2;
                            }
                            None => return Err(self.err_at(start, "unterminated string")),
                            Some(c) => {
                                return Err(self.err_at(
                                    self.pos,
                                    format!(
                                        "invalid escape '\\{c}' in string (only \\\" and \\\\ are allowed)"
                                    ),
                                ))
                            }
                        },
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| !c.is_whitespace() && !matches!(c, '"' | '(' | ')'))
                {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(
                        self.err_at(start, format!("expected a value after '{}'", op.as_str()))
                    );
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                Ok(RawValue {
                    text,
                    quoted: false,
                })
            }
        }
    }
}

struct RawValue {
    text: String,
    #[allow(dead_code)]
    quoted: bool,
}

fn check_value(field: Field, op: Op, raw: &RawValue, pos: usize) -> Result<Value, FilterError> {
    let err = |msg: String| FilterError {
        position: pos,
        message: msg,
    };
    let no_ordering = || {
        err(format!(
            "operator '{}' is not supported for field '{field}' (use =, != or :)",
            op.as_str()
        ))
    };
    let text = raw.text.as_str();
    match field {
        Field::Severity => Severity::parse(text).map(Value::Severity).ok_or_else(|| {
            err(format!(
                "unknown severity '{text}' (expected LOW, MEDIUM, HIGH or CRITICAL)"
            ))
        }),
        Field::State => {
            if op.is_ordering() {
                return Err(no_ordering());
            }
            match text.to_ascii_uppercase().as_str() {
                "ACTIVE" => Ok(Value::State(State::Active)),
                "INACTIVE" => Ok(Value::State(State::Inactive)),
                _ => Err(err(format!(
                    "unknown state '{text}' (expected ACTIVE or INACTIVE)"
                ))),
            }
        }
        Field::Mute => {
            if op.is_ordering() {
                return Err(no_ordering());
            }
            match text.to_ascii_uppercase().as_str() {
                "MUTED" => Ok(Value::Mute(Mute::Muted)),
                "UNMUTED" => Ok(Value::Mute(Mute::Unmuted)),
                "UNDEFINED" => Ok(Value::Mute(Mute::Undefined)),
                _ => Err(err(format!(
                    "unknown mute value '{text}' (expected MUTED, UNMUTED or UNDEFINED)"
                ))),
            }
        }
        Field::EventTime | Field::CreateTime => parse_time(text).ok_or_else(|| {
            err(format!(
                "bad time value '{text}' for '{field}' (expected RFC 3339 like 2026-11-21T23:04:33Z, a date like 2026-11-21, or milliseconds since the epoch)"
            ))
        }),
        Field::Count => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Value::Int)
            .ok_or_else(|| err(format!("bad count '{text}' (expected a non-negative integer)"))),
        Field::Category => {
            if op.is_ordering() {
                return Err(no_ordering());
            }
            Ok(Value::Category(text.to_string(), Category::parse(text)))
        }
        _ => {
            if op.is_ordering() {
                return Err(no_ordering());
            }
            Ok(Value::Text(text.to_string()))
        }
    }
}

fn parse_time(text: &str) -> Option<Value> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Milliseconds since the epoch, as SCC accepts.
        let ms: i64 = text.parse().ok()?;
        return Some(Value::Time {
            ns: ms.checked_mul(1_000_000)?,
            whole_day: false,
        });
    }
    let ns = ward_event::time::parse_rfc3339(text)?;
    Some(Value::Time {
        ns: i64::try_from(ns).ok()?,
        whole_day: text.len() == 10,
    })
}

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Compiles a parsed filter into SQL over the store's columns.
pub fn compile(expr: &Expr) -> SqlFilter {
    compile_for(expr, Dialect::Sqlite)
}

/// The SQL a filter is compiled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The SQLite store: key table `k`, resource fields in `resources`, `name` in
    /// `findings`, planner hints (`likelihood`).
    Sqlite,
    /// The PostgreSQL store (`postgres.rs`): one `findings` table under the alias `k`
    /// holding every field, `ILIKE` for contains (SQLite's `LIKE` ignores ASCII case; this
    /// keeps `:` case-insensitive), no planner hints. Placeholders are still `?`, in
    /// parameter order; the store numbers them `$1..` ([`number_placeholders`]).
    Postgres,
}

/// Compiles a parsed filter for the given store.
pub fn compile_for(expr: &Expr, dialect: Dialect) -> SqlFilter {
    let mut out = SqlFilter {
        sql: String::new(),
        params: Vec::new(),
        dialect,
    };
    emit(expr, &mut out);
    out
}

/// Rewrites each `?` placeholder of `sql` as `$N`, numbering from `first`. Sound because the
/// compiled SQL never contains a `?` other than a placeholder: values are always bound, and
/// the SQL text is made only of column names, operators and the `'\'` escape literal.
pub fn number_placeholders(sql: &str, first: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = first;
    for c in sql.chars() {
        if c == '?' {
            out.push('$');
            out.push_str(&n.to_string());
            n += 1;
        } else {
            out.push(c);
        }
    }
    out
}

fn emit(expr: &Expr, out: &mut SqlFilter) {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            out.sql.push('(');
            emit(a, out);
            out.sql.push_str(if matches!(expr, Expr::And(..)) {
                " AND "
            } else {
                " OR "
            });
            emit(b, out);
            out.sql.push(')');
        }
        Expr::Not(e) => {
            out.sql.push_str("(NOT ");
            emit(e, out);
            out.sql.push(')');
        }
        Expr::Cmp {
            field, op, value, ..
        } => emit_cmp(*field, *op, value, out),
    }
}

/// `LIKE` pattern matching `s` anywhere, with `\` escaping the wildcards.
fn contains_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `likelihood(term, p)`: the SQL term, with a hint for SQLite's query planner of the
/// fraction of findings it matches. Equality on the few-valued columns (state, mute,
/// severity, category) would otherwise look as selective as a container name, and the
/// planner, without `ANALYZE` statistics, would walk e.g. every ACTIVE finding instead of one
/// container's. The hint changes no result.
fn likely(term: String, p: f64) -> String {
    format!("likelihood({term}, {p})")
}

fn emit_cmp(field: Field, op: Op, value: &Value, out: &mut SqlFilter) {
    let col = format!("k.{}", field.column());
    let pg = out.dialect == Dialect::Postgres;
    let like = if pg { "ILIKE" } else { "LIKE" };
    match value {
        Value::Text(s) if pg => {
            // One table: every field is a column of `k`.
            let (cmp, param) = if op == Op::Has {
                (format!("{col} ILIKE ? ESCAPE '\\'"), contains_pattern(s))
            } else {
                (format!("{col} = ?"), s.clone())
            };
            let not = if op == Op::Ne { "NOT " } else { "" };
            out.sql.push_str(&format!("({not}{cmp})"));
            out.params.push(SqlParam::Text(param));
        }
        Value::Text(s) => {
            let (cmp, param) = if op == Op::Has {
                (
                    format!("{} LIKE ? ESCAPE '\\'", field.column()),
                    contains_pattern(s),
                )
            } else {
                (format!("{} = ?", field.column()), s.clone())
            };
            // `!=` is NOT of `=`: the columns are never NULL, so that is the same rows.
            let not = if op == Op::Ne { "NOT " } else { "" };
            let sub = match field.home() {
                Home::Findings => format!("k.seq IN (SELECT seq FROM findings WHERE {cmp})"),
                _ => format!("k.resource_id IN (SELECT id FROM resources WHERE {cmp})"),
            };
            out.sql.push_str(&format!("({not}{sub})"));
            out.params.push(SqlParam::Text(param));
        }
        Value::Category(s, known) => match op {
            Op::Has => {
                // Contains (case-insensitive) on the display name, or on the API name of
                // the known categories.
                let api_matches: Vec<&'static str> = Category::all()
                    .into_iter()
                    .filter(|c| c.api_name().contains(&s.to_ascii_uppercase()))
                    .map(|c| c.display_name())
                    .collect();
                out.sql.push_str(&format!("({col} {like} ? ESCAPE '\\'"));
                out.params.push(SqlParam::Text(contains_pattern(s)));
                if !api_matches.is_empty() {
                    out.sql.push_str(&format!(
                        " OR {col} IN ({})",
                        vec!["?"; api_matches.len()].join(", ")
                    ));
                    out.params.extend(
                        api_matches
                            .into_iter()
                            .map(|d| SqlParam::Text(d.to_string())),
                    );
                }
                out.sql.push(')');
            }
            _ => {
                let v = known.map(|c| c.display_name().to_string());
                let term = format!("{col} {} ?", op.sql());
                out.sql.push_str(&format!(
                    "({})",
                    if op == Op::Eq && !pg {
                        likely(term, 0.1)
                    } else {
                        term
                    }
                ));
                out.params
                    .push(SqlParam::Text(v.unwrap_or_else(|| s.clone())));
            }
        },
        Value::Severity(sev) => {
            let term = format!("{col} {} ?", op.sql());
            out.sql.push_str(&format!(
                "({})",
                if matches!(op, Op::Eq | Op::Has) && !pg {
                    likely(term, 0.25)
                } else {
                    term
                }
            ));
            out.params.push(SqlParam::Int(severity_rank(*sev)));
        }
        Value::State(st) => emit_two_valued(&col, op, st.as_str(), pg, out),
        Value::Mute(m) => emit_two_valued(&col, op, m.as_str(), pg, out),
        Value::Int(n) => {
            out.sql.push_str(&format!("({col} {} ?)", op.sql()));
            out.params.push(SqlParam::Int(*n));
        }
        Value::Time { ns, whole_day } => {
            let (lo, hi) = (*ns, ns.saturating_add(DAY_NS));
            match (op, whole_day) {
                (Op::Eq | Op::Has, true) => {
                    out.sql.push_str(&format!("({col} >= ? AND {col} < ?)"));
                    out.params.extend([SqlParam::Int(lo), SqlParam::Int(hi)]);
                }
                (Op::Ne, true) => {
                    out.sql.push_str(&format!("({col} < ? OR {col} >= ?)"));
                    out.params.extend([SqlParam::Int(lo), SqlParam::Int(hi)]);
                }
                // `> date` means after that whole day; `<= date` includes it.
                (Op::Gt, true) => {
                    out.sql.push_str(&format!("({col} >= ?)"));
                    out.params.push(SqlParam::Int(hi));
                }
                (Op::Le, true) => {
                    out.sql.push_str(&format!("({col} < ?)"));
                    out.params.push(SqlParam::Int(hi));
                }
                _ => {
                    out.sql.push_str(&format!("({col} {} ?)", op.sql()));
                    out.params.push(SqlParam::Int(lo));
                }
            }
        }
    }
}

/// State or mute: a handful of values, each typically shared by many findings.
fn emit_two_valued(col: &str, op: Op, v: &str, pg: bool, out: &mut SqlFilter) {
    let term = format!("{col} {} ?", op.sql());
    out.sql.push_str(&format!(
        "({})",
        if matches!(op, Op::Eq | Op::Has) && !pg {
            likely(term, 0.5)
        } else {
            term
        }
    ));
    out.params.push(SqlParam::Text(v.to_string()));
}

/// The numeric rank stored for ordering: LOW=1 < MEDIUM=2 < HIGH=3 < CRITICAL=4.
pub fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(f: &str) -> FilterError {
        parse(f).expect_err(f)
    }

    #[test]
    fn precedence_and_implicit_and() {
        let e = parse("a=1").unwrap_err();
        assert!(e.message.starts_with("unknown field 'a'"), "{e}");
        let e = parse("state=ACTIVE OR mute=MUTED severity=LOW")
            .unwrap()
            .unwrap();
        // OR(state, AND(mute, severity))
        match e {
            Expr::Or(_, r) => assert!(matches!(*r, Expr::And(..))),
            other => panic!("{other:?}"),
        }
        let e = parse("-(state=ACTIVE) AND NOT mute=MUTED")
            .unwrap()
            .unwrap();
        match e {
            Expr::And(l, r) => {
                assert!(matches!(*l, Expr::Not(_)));
                assert!(matches!(*r, Expr::Not(_)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compiles_with_placeholders_only() {
        let f = parse_to_sql(r#"containerName:"x' OR 1=1 --" AND severity>=HIGH"#)
            .unwrap()
            .unwrap();
        assert!(!f.sql.contains("OR 1=1"), "{}", f.sql);
        assert_eq!(f.sql.matches('?').count(), f.params.len());
        assert_eq!(
            f.params,
            vec![SqlParam::Text("%x' OR 1=1 --%".into()), SqlParam::Int(3)]
        );
    }

    #[test]
    fn error_positions() {
        let e = err("severity=");
        assert_eq!(
            (e.position, e.message.as_str()),
            (9, "expected a value after '='")
        );
        assert_eq!(
            e.to_string(),
            "filter error at column 10: expected a value after '='"
        );
        assert_eq!(err(r#"name="abc"#).position, 5);
        assert_eq!(err("state=ACTIVE AND").position, 13);
        assert_eq!(err("(state=ACTIVE").position, 0);
        assert_eq!(err("state=ACTIVE)").position, 12);
        assert_eq!(err("severity=HUGE").position, 9);
        assert_eq!(err("eventTime>yesterday").position, 10);
        assert_eq!(err("é=1").position, 0);
        assert_eq!(err("ns=a bogus=1").position, 5);
        let deep = format!("{}state=ACTIVE{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(err(&deep).position, 32);
        assert!(err(&"x".repeat(5000)).message.contains("too long"));
        // Dates the calendar does not have and offsets out of range are errors, at the value.
        for (bad, at) in [
            ("createTime=2026-02-30", 11),
            ("createTime>=2026-04-31T00:00:00Z", 12),
            ("eventTime<2026-11-21T23:04:33+99:99", 10),
        ] {
            let e = err(bad);
            assert_eq!(e.position, at, "{bad}");
            assert!(e.message.contains("bad time value"), "{bad}: {e}");
        }
    }

    #[test]
    fn invalid_utf8_names_its_byte() {
        assert_eq!(from_utf8("ns=é".as_bytes()), Ok("ns=é"));
        let e = from_utf8(b"ns=\xc3\xa9x\xff").unwrap_err();
        assert_eq!(e.position, 5, "characters before the bad byte");
        assert_eq!(
            e.message,
            "invalid UTF-8 at byte 6 (0xFF): a filter is UTF-8 text"
        );
        assert_eq!(from_utf8(b"\xc3").unwrap_err().position, 0);
    }
}
