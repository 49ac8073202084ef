//! `order_by` parsing and opaque keyset page tokens.
//!
//! Listing orders by the requested keys and then by the row's insertion sequence (`seq`,
//! unique), so every row has a distinct position and pages never overlap or skip rows, even
//! when many findings share an eventTime. A page token carries the last row's sort key and
//! `seq`, plus a digest of the filter and order so a token cannot be replayed against another
//! query.

use crate::filter::{self, Dialect, Expr, SqlFilter, SqlParam};
use crate::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A sortable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    EventTime,
    CreateTime,
    Severity,
    Category,
    Count,
    Name,
}

impl OrderField {
    pub const ALL: [OrderField; 6] = [
        OrderField::EventTime,
        OrderField::CreateTime,
        OrderField::Severity,
        OrderField::Category,
        OrderField::Count,
        OrderField::Name,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderField::EventTime => "eventTime",
            OrderField::CreateTime => "createTime",
            OrderField::Severity => "severity",
            OrderField::Category => "category",
            OrderField::Count => "count",
            OrderField::Name => "name",
        }
    }

    /// The column sorted on, qualified: `k.` is the store's key table, `f.` the findings
    /// table (only the name lives there).
    pub fn column(self) -> &'static str {
        match self {
            OrderField::EventTime => "k.event_time_ns",
            OrderField::CreateTime => "k.create_time_ns",
            OrderField::Severity => "k.severity_rank",
            OrderField::Category => "k.category",
            OrderField::Count => "k.count",
            OrderField::Name => "f.name",
        }
    }

    pub(crate) fn is_text(self) -> bool {
        matches!(self, OrderField::Category | OrderField::Name)
    }

    fn parse(s: &str) -> Option<OrderField> {
        let norm = |x: &str| -> String {
            x.chars()
                .filter(|c| *c != '_')
                .flat_map(char::to_lowercase)
                .collect()
        };
        OrderField::ALL
            .into_iter()
            .find(|f| norm(f.as_str()) == norm(s))
    }
}

/// A parsed `order_by`: one to four `(field, descending)` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub keys: Vec<(OrderField, bool)>,
}

impl Default for OrderBy {
    /// `eventTime desc`.
    fn default() -> Self {
        OrderBy {
            keys: vec![(OrderField::EventTime, true)],
        }
    }
}

impl OrderBy {
    /// Parses `field [asc|desc] [, field [asc|desc]]...`; empty gives `eventTime desc`.
    /// When no time or name key is given, `eventTime` in the direction of the last key is
    /// appended (`severity desc` sorts as `severity desc, eventTime desc`).
    pub fn parse(s: &str) -> Result<OrderBy, StoreError> {
        let bad = |message: String| StoreError::InvalidOrderBy {
            order_by: s.to_string(),
            message,
        };
        if s.trim().is_empty() {
            return Ok(OrderBy::default());
        }
        let mut keys: Vec<(OrderField, bool)> = Vec::new();
        for part in s.split(',') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (field, desc) = match words.as_slice() {
                [f] => (*f, false),
                [f, d] if d.eq_ignore_ascii_case("desc") => (*f, true),
                [f, d] if d.eq_ignore_ascii_case("asc") => (*f, false),
                [_, d] => {
                    return Err(bad(format!(
                        "unknown direction '{d}' (expected asc or desc)"
                    )))
                }
                [] => return Err(bad("empty sort key".into())),
                _ => return Err(bad(format!("cannot parse '{}'", part.trim()))),
            };
            let f = OrderField::parse(field).ok_or_else(|| {
                bad(format!(
                    "cannot sort by '{field}' (sortable: {})",
                    OrderField::ALL.map(|f| f.as_str()).join(", ")
                ))
            })?;
            if keys.iter().any(|(k, _)| *k == f) {
                return Err(bad(format!("'{}' appears twice", f.as_str())));
            }
            keys.push((f, desc));
        }
        if keys.len() > 4 {
            return Err(bad("at most 4 sort keys".into()));
        }
        // Within equal severities, categories or counts, order by event time (same direction,
        // so the `(column, event_time_ns)` indexes serve the whole order without a sort).
        let has_time = keys
            .iter()
            .any(|(k, _)| matches!(k, OrderField::EventTime | OrderField::CreateTime));
        let unique = keys.iter().any(|(k, _)| *k == OrderField::Name);
        if !has_time && !unique {
            let desc = keys.last().map(|(_, d)| *d).unwrap_or(true);
            keys.push((OrderField::EventTime, desc));
        }
        Ok(OrderBy { keys })
    }

    /// Canonical text, e.g. `eventTime desc`.
    pub fn canonical(&self) -> String {
        self.keys
            .iter()
            .map(|(f, d)| format!("{} {}", f.as_str(), if *d { "desc" } else { "asc" }))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key-table index whose order is exactly this order (all keys in one direction, as
    /// the index lists them, then `seq`), if there is one.
    pub(crate) fn scan_index(&self) -> Option<&'static str> {
        let desc = self.keys.first()?.1;
        if self.keys.iter().any(|(_, d)| *d != desc) {
            return None;
        }
        let fields: Vec<OrderField> = self.keys.iter().map(|(f, _)| *f).collect();
        use OrderField::*;
        match fields.as_slice() {
            [EventTime] => Some("keys_time"),
            [Severity, EventTime] => Some("keys_severity"),
            [Category, EventTime] => Some("keys_category"),
            [Count, EventTime] => Some("keys_count"),
            _ => None,
        }
    }

    /// Whether sorting needs the findings table (`f`) joined to the key table (`k`).
    pub(crate) fn needs_findings(&self) -> bool {
        self.keys.iter().any(|(f, _)| *f == OrderField::Name)
    }

    fn tiebreak_desc(&self) -> bool {
        self.keys.last().map(|(_, d)| *d).unwrap_or(true)
    }

    /// `ORDER BY` body, ending with the `seq` tiebreaker.
    pub(crate) fn order_sql(&self) -> String {
        let mut parts: Vec<String> = self
            .keys
            .iter()
            .map(|(f, d)| format!("{} {}", f.column(), if *d { "DESC" } else { "ASC" }))
            .collect();
        parts.push(format!(
            "k.seq {}",
            if self.tiebreak_desc() { "DESC" } else { "ASC" }
        ));
        parts.join(", ")
    }

    /// Columns to select to build a cursor from a row (keys then seq).
    pub(crate) fn key_columns(&self) -> Vec<&'static str> {
        self.keys.iter().map(|(f, _)| f.column()).collect()
    }

    /// SQL (with params) selecting rows strictly after the cursor position.
    pub(crate) fn after_sql(&self, c: &Cursor) -> Result<(String, Vec<SqlParam>), StoreError> {
        if c.k.len() != self.keys.len() {
            return Err(StoreError::InvalidPageToken(
                "token does not match the sort order".into(),
            ));
        }
        let mut vals = Vec::with_capacity(self.keys.len() + 1);
        for ((f, _), v) in self.keys.iter().zip(&c.k) {
            vals.push(match (f.is_text(), v) {
                (true, SortKey::Text(s)) => SqlParam::Text(s.clone()),
                (false, SortKey::Int(n)) => SqlParam::Int(*n),
                _ => {
                    return Err(StoreError::InvalidPageToken(
                        "token key has the wrong type".into(),
                    ))
                }
            });
        }
        vals.push(SqlParam::Int(c.s));
        let mut cols: Vec<&str> = self.key_columns();
        cols.push("k.seq");
        let mut dirs: Vec<bool> = self.keys.iter().map(|(_, d)| *d).collect();
        dirs.push(self.tiebreak_desc());

        if dirs.iter().all(|d| *d == dirs[0]) {
            // Row-value comparison: SQLite walks an index for it.
            let op = if dirs[0] { "<" } else { ">" };
            let sql = format!(
                "(({}) {op} ({}))",
                cols.join(", "),
                vec!["?"; cols.len()].join(", ")
            );
            return Ok((sql, vals));
        }
        // Mixed directions: (c1 op v1) OR (c1 = v1 AND c2 op v2) OR ...
        let mut ors = Vec::new();
        let mut params = Vec::new();
        for i in 0..cols.len() {
            let mut ands = Vec::new();
            for j in 0..i {
                ands.push(format!("{} = ?", cols[j]));
                params.push(vals[j].clone());
            }
            ands.push(format!("{} {} ?", cols[i], if dirs[i] { "<" } else { ">" }));
            params.push(vals[i].clone());
            ors.push(format!("({})", ands.join(" AND ")));
        }
        Ok((format!("({})", ors.join(" OR ")), params))
    }
}

/// One sort key value in a page token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

/// The decoded content of a page token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// Token format version.
    pub v: u32,
    /// Digest of the filter and order the token was issued for.
    pub q: String,
    /// Sort key values of the last row returned.
    pub k: Vec<SortKey>,
    /// `seq` of the last row returned.
    pub s: i64,
}

/// Digest binding a token to its query.
/// What both stores' `list` derive from a query before they build their SQL: the compiled
/// filter, the order, the digest page tokens are bound to, the page size, the WHERE
/// conditions with their parameters (the filter's, then the page token's keyset bound), and
/// the join the order needs (`name` lives in `findings` in the SQLite store).
pub(crate) struct ListPlan {
    pub compiled: Option<SqlFilter>,
    pub order: OrderBy,
    pub digest: String,
    pub page_size: usize,
    pub conds: Vec<String>,
    pub params: Vec<SqlParam>,
    pub join: &'static str,
}

impl ListPlan {
    pub(crate) fn new(
        query: &crate::ListQuery,
        expr: Option<&Expr>,
        dialect: Dialect,
    ) -> Result<ListPlan, StoreError> {
        let compiled = expr.map(|e| filter::compile_for(e, dialect));
        let order = OrderBy::parse(&query.order_by)?;
        let digest = query_digest(&query.filter, &order);
        let page_size = match query.page_size {
            0 => crate::DEFAULT_PAGE_SIZE,
            n => n.min(crate::MAX_PAGE_SIZE),
        } as usize;
        let mut conds: Vec<String> = Vec::new();
        let mut params: Vec<SqlParam> = Vec::new();
        if let Some(c) = &compiled {
            conds.push(c.sql.clone());
            params.extend(c.params.iter().cloned());
        }
        if !query.page_token.trim().is_empty() {
            let cursor = Cursor::decode(&query.page_token, &digest)?;
            let (sql, p) = order.after_sql(&cursor)?;
            conds.push(sql);
            params.extend(p);
        }
        let join = if order.needs_findings() {
            " JOIN findings AS f ON f.seq = k.seq"
        } else {
            ""
        };
        Ok(ListPlan {
            compiled,
            order,
            digest,
            page_size,
            conds,
            params,
            join,
        })
    }
}

pub(crate) fn query_digest(filter: &str, order: &OrderBy) -> String {
    let mut h = Sha256::new();
    h.update(filter.trim().as_bytes());
    h.update([0u8]);
    h.update(order.canonical().as_bytes());
    hex::encode(&h.finalize()[..8])
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        // Serialising a plain struct of strings and integers cannot fail.
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(crate) fn decode(token: &str, digest: &str) -> Result<Cursor, StoreError> {
        let bad = |m: &str| StoreError::InvalidPageToken(m.to_string());
        if token.len() > 8192 {
            return Err(bad("token is too long"));
        }
        let bytes = hex::decode(token.trim()).map_err(|_| bad("not a token issued by list"))?;
        let c: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| bad("not a token issued by list"))?;
        if c.v != 1 {
            return Err(bad("unsupported token version"));
        }
        if c.q != digest {
            return Err(bad("token was issued for a different filter or order_by"));
        }
        Ok(c)
    }
}
