//! `ward findings list|show`.

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use ward_event::Finding;
use ward_store::{FindingStore, ListQuery, SqliteStore};

#[derive(Subcommand, Debug)]
pub enum FindingsCommand {
    /// List findings, newest first.
    ///
    /// Filter examples (docs/filter-grammar.md has the grammar):
    ///   severity="CRITICAL"
    ///   category:"Reverse Shell" AND containerName:"web"
    ///   namespace="shop" AND eventTime>="2026-11-21T00:00:00Z"
    List {
        #[arg(long, value_name = "PATH", env = "WARD_DB")]
        db: Option<PathBuf>,
        /// SCC-style filter: field OP value joined with AND / OR / NOT and parentheses.
        /// A filter may start with '-' (negation): `--filter -severity=LOW`.
        #[arg(
            long,
            short,
            value_name = "EXPR",
            default_value = "",
            allow_hyphen_values = true
        )]
        filter: String,
        /// Sort order, e.g. "eventTime desc" or "severity desc, eventTime desc".
        #[arg(long, value_name = "ORDER", default_value = "")]
        order_by: String,
        /// Most findings to print (all pages are read up to this many).
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print one finding as JSON (the SCC record), by full name or id.
    Show {
        #[arg(long, value_name = "PATH", env = "WARD_DB")]
        db: Option<PathBuf>,
        /// Full name (`.../findings/<id>`) or the id alone.
        name: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line: the same record `ward replay` prints.
    Json,
}

fn open(db: Option<PathBuf>) -> Result<SqliteStore> {
    let path = db.unwrap_or_else(crate::default_db);
    if !path.exists() {
        anyhow::bail!(
            "no findings database at {} (use --db or WARD_DB)",
            path.display()
        );
    }
    // The store's errors name the file and the cause.
    let store = SqliteStore::open_read_only(&path)?;
    // `category=RULE_ID` knows the shipped rules and those of the default rule directory.
    crate::cmd::rules::register_categories(&Default::default(), "ward findings");
    Ok(store)
}

pub fn run(cmd: FindingsCommand) -> Result<ExitCode> {
    match cmd {
        FindingsCommand::List {
            db,
            filter,
            order_by,
            limit,
            format,
        } => {
            let store = open(db)?;
            let findings = list(&store, &filter, &order_by, limit)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match format {
                Format::Json => {
                    for f in &findings {
                        crate::display::write_json_line(&mut out, f)?;
                    }
                }
                Format::Table => write_table(&mut out, &findings)?,
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        FindingsCommand::Show { db, name } => {
            let store = open(db)?;
            match store.get(&name)? {
                Some(f) => {
                    let json = serde_json::to_string_pretty(&f)?;
                    println!("{}", crate::display::json_for_terminal(&json));
                    Ok(ExitCode::SUCCESS)
                }
                None => anyhow::bail!(
                    "no finding named {name:?} in {}",
                    store_path(&store).display()
                ),
            }
        }
    }
}

fn store_path(s: &SqliteStore) -> &Path {
    s.path()
}

pub fn list(
    store: &SqliteStore,
    filter: &str,
    order_by: &str,
    limit: usize,
) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut token = String::new();
    while out.len() < limit {
        let page = store.list(&ListQuery {
            filter: filter.to_string(),
            order_by: order_by.to_string(),
            page_size: (limit - out.len()).min(1000) as u32,
            page_token: token,
            include_total: false,
        })?;
        out.extend(page.findings);
        match page.next_page_token {
            Some(t) => token = t,
            None => break,
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// One line per finding; every cell passes through [`crate::display::for_terminal`], so no
/// finding data reaches the terminal as a control or bidi character.
fn write_table(out: &mut impl Write, findings: &[Finding]) -> Result<()> {
    let rows: Vec<[String; 6]> = findings
        .iter()
        .map(|f| {
            let resource = match (
                f.source_str("Pod_Namespace"),
                f.source_str("Pod_Name"),
                f.source_str("Container_Name"),
            ) {
                (Some(ns), Some(pod), Some(c)) => format!("{ns}/{pod}/{c}"),
                (_, _, Some(c)) => c.to_string(),
                _ => f.source_str("VM_Instance_Name").unwrap_or("").to_string(),
            };
            [
                f.event_time
                    .get(..19)
                    .unwrap_or(&f.event_time)
                    .replace('T', " "),
                f.severity.as_str().to_string(),
                f.category.clone(),
                resource,
                f.count().to_string(),
                f.id().to_string(),
            ]
            .map(|cell| crate::display::for_terminal(&cell).into_owned())
        })
        .collect();
    let header = [
        "EVENT TIME (UTC)",
        "SEVERITY",
        "CATEGORY",
        "RESOURCE",
        "COUNT",
        "ID",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 5 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(header))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]))?;
    }
    if rows.is_empty() {
        writeln!(out, "(no findings)")?;
    }
    Ok(())
}
