//! Runtime-style script templates and their variant generator.
//!
//! Templates live gzip-compressed in `data/*.tpl.gz` (never as loose `.py` files) in a block
//! format: a header line `%% id=<id> category=<category>` followed by the body. Placeholders:
//! `{HOST}`, `{PORT}`, `{URL}`, `{WALLET}`, `{WORD}`, `{N}`, `{V1}`..`{V9}` (identifiers).
//! Variants differ in names, hosts, quoting, statement joining, structure ([`mutate`]: header
//! lines, import style, body in a function or `try` block, comments) and (for malicious templates)
//! obfuscation wrappers: base64, reversed base64, hex, zlib+base64, `chr()` joins, integer
//! lists, `\x` escapes, `exec(compile(...))`, `getattr(__builtins__, ...)` and double wrapping.
//! Variants exist only in memory; nothing here executes them.

use std::io::{Read, Write};
use std::path::Path;

use crate::TrainError;

/// One parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Stable id (the split group).
    pub id: String,
    /// Category (reverse-shell, dropper, setup-py, ...).
    pub category: String,
    /// Body with placeholders.
    pub body: String,
}

/// One generated variant.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Template id.
    pub template: String,
    /// Template category.
    pub category: String,
    /// Wrapper used (`plain`, `base64`, ...).
    pub wrapper: &'static str,
    /// Script text.
    pub text: String,
}

/// Reads a gzip-compressed template file.
pub fn load_templates(path: &Path) -> Result<Vec<Template>, TrainError> {
    let raw = std::fs::read(path).map_err(|e| TrainError::io("read", path, e))?;
    let mut s = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut s)
        .map_err(|e| TrainError::io("gunzip", path, e))?;
    parse_templates(&s).map_err(|why| TrainError::BadData {
        path: path.to_path_buf(),
        why,
    })
}

/// Parses the block format.
pub fn parse_templates(s: &str) -> Result<Vec<Template>, String> {
    let mut out: Vec<Template> = Vec::new();
    for line in s.split_inclusive('\n') {
        if let Some(h) = line.strip_prefix("%% ") {
            let mut id = None;
            let mut category = None;
            for kv in h.split_whitespace() {
                match kv.split_once('=') {
                    Some(("id", v)) => id = Some(v.to_string()),
                    Some(("category", v)) => category = Some(v.to_string()),
                    _ => return Err(format!("bad header field {kv:?}")),
                }
            }
            let id = id.ok_or("header without id")?;
            if out.iter().any(|t| t.id == id) {
                return Err(format!("duplicate template id {id}"));
            }
            out.push(Template {
                id,
                category: category.unwrap_or_default(),
                body: String::new(),
            });
        } else if let Some(t) = out.last_mut() {
            t.body.push_str(line);
        } else if !line.trim().is_empty() {
            return Err("text before the first header".into());
        }
    }
    Ok(out)
}

/// Deterministic SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Picks one element.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Stable 64-bit hash of a string (FNV-1a), for seeding.
pub fn hash64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

const WORDS: &[&str] = &[
    "cloud", "update", "sync", "data", "api", "cdn", "static", "core", "node", "metrics", "agent",
    "service", "portal", "files", "assets", "backup", "edge", "relay", "mirror", "system",
    "kernel", "helper", "worker", "cache", "task", "report", "monitor", "daemon", "proxy", "store",
];
const TLDS: &[&str] = &[
    "com", "net", "org", "io", "xyz", "top", "ru", "cn", "info", "cc", "site", "online",
];

fn ident(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => {
            let n = 1 + rng.below(2);
            (0..n)
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect()
        }
        1 => format!("{}_{}", rng.pick(WORDS), rng.pick(WORDS)),
        2 => rng.pick(WORDS).to_string() + &rng.below(100).to_string(),
        3 => {
            let n = 6 + rng.below(8);
            (0..n)
                .map(|i| {
                    if i == 0 {
                        'O'
                    } else {
                        *rng.pick(&['O', '0', 'o', 'l', 'I', '_'])
                    }
                })
                .collect()
        }
        _ => {
            let n = 5 + rng.below(6);
            (0..n)
                .map(|i| {
                    let c = b'a' + rng.below(26) as u8;
                    (if i > 0 && rng.below(3) == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }) as char
                })
                .collect()
        }
    }
}

fn host(rng: &mut Rng) -> String {
    if rng.below(2) == 0 {
        format!(
            "{}.{}.{}.{}",
            1 + rng.below(222),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        )
    } else {
        format!("{}-{}.{}", rng.pick(WORDS), rng.pick(WORDS), rng.pick(TLDS))
    }
}

fn fill(body: &str, rng: &mut Rng) -> String {
    let h = host(rng);
    let port = *rng.pick(&[
        4444u32, 443, 80, 8080, 1337, 9001, 53, 3333, 5555, 14444, 8443,
    ]) + if rng.below(3) == 0 {
        rng.below(20000) as u32
    } else {
        0
    };
    let path = format!("{}/{}", rng.pick(WORDS), rng.pick(WORDS));
    let url = if rng.below(2) == 0 {
        format!("http://{h}:{port}/{path}")
    } else {
        format!("https://{h}/{path}")
    };
    let wallet: String = std::iter::once('4')
        .chain((0..94).map(|_| {
            let a = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
            a[rng.below(a.len())] as char
        }))
        .collect();
    let mut s = body
        .replace("{HOST}", &h)
        .replace("{PORT}", &port.to_string())
        .replace("{URL}", &url)
        .replace("{WALLET}", &wallet)
        .replace("{WORD}", rng.pick::<&str>(WORDS))
        .replace("{N}", &(1 + rng.below(999)).to_string());
    let mut used: Vec<String> = Vec::new();
    for k in 1..=9 {
        let key = format!("{{V{k}}}");
        if s.contains(&key) {
            let mut name = ident(rng);
            while used.contains(&name) || is_keyword(&name) {
                name.push_str(&rng.below(10).to_string());
            }
            s = s.replace(&key, &name);
            used.push(name);
        }
    }
    s
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "as" | "if" | "in" | "is" | "or" | "and" | "def" | "del" | "for" | "not" | "try" | "else"
    )
}

/// Base64-encodes bytes (standard alphabet, padded).
pub fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

fn ints(s: &str, rng: &mut Rng) -> String {
    let hex = rng.below(3) == 0;
    s.bytes()
        .map(|b| {
            if hex {
                format!("0x{b:02x}")
            } else {
                b.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(if rng.below(2) == 0 { "," } else { ", " })
}

/// Names of the obfuscation wrappers.
pub const WRAPPERS: &[&str] = &[
    "plain",
    "oneliner",
    "base64",
    "base64-import",
    "base64-reversed",
    "hex",
    "unhexlify",
    "zlib-base64",
    "compile",
    "chr-list",
    "chr-plus",
    "bytes-list",
    "escapes",
    "getattr-builtins",
    "double",
    "chr-arith",
];

/// Applies wrapper `w` to code `s`.
pub fn wrap(w: &str, s: &str, rng: &mut Rng) -> String {
    let q = if rng.below(2) == 0 { '\'' } else { '"' };
    let v = ident(rng);
    match w {
        "plain" => s.to_string(),
        "oneliner" => oneliner(s).unwrap_or_else(|| s.to_string()),
        "base64" => format!("import base64\nexec(base64.b64decode({q}{}{q}))\n", base64_encode(s.as_bytes())),
        "base64-import" => format!(
            "exec(__import__({q}base64{q}).b64decode({q}{}{q}).decode())",
            base64_encode(s.as_bytes())
        ),
        "base64-reversed" => {
            let r: String = base64_encode(s.as_bytes()).chars().rev().collect();
            format!("import base64 as {v}\nexec({v}.b64decode({q}{r}{q}[::-1]))\n")
        }
        "hex" => format!("exec(bytes.fromhex({q}{}{q}).decode())", hex::encode(s)),
        "unhexlify" => format!("import binascii;exec(binascii.unhexlify({q}{}{q}))", hex::encode(s)),
        "zlib-base64" => format!(
            "import zlib,base64\nexec(zlib.decompress(base64.b64decode({q}{}{q})))\n",
            base64_encode(&zlib(s.as_bytes()))
        ),
        "compile" => format!(
            "import base64\n{v} = base64.b64decode({q}{}{q})\nexec(compile({v}, {q}<string>{q}, {q}exec{q}))\n",
            base64_encode(s.as_bytes())
        ),
        "chr-list" => format!("exec(''.join([chr({v}) for {v} in [{}]]))", ints(s, rng)),
        "chr-plus" => format!(
            "exec({})",
            s.bytes().map(|b| format!("chr({b})")).collect::<Vec<_>>().join("+")
        ),
        "bytes-list" => format!("exec(bytes([{}]).decode())", ints(s, rng)),
        "escapes" => format!(
            "exec({q}{}{q})",
            s.bytes().map(|b| format!("\\x{b:02x}")).collect::<String>()
        ),
        "getattr-builtins" => format!(
            "getattr(__builtins__, {q}ex{q} + {q}ec{q})(__import__({q}base64{q}).b64decode({q}{}{q}))",
            base64_encode(s.as_bytes())
        ),
        // Character codes as constant arithmetic, looked up through builtins (added after the
        // error analysis of pack cluster 040abba87d400b08; see MODEL_CARD.md).
        "chr-arith" => {
            let codes: Vec<String> = s
                .bytes()
                .map(|b| {
                    let k = 1 + rng.below(4) as u32;
                    let a = (b as u32) >> k;
                    let c = b as u32 - (a << k);
                    if rng.below(2) == 0 {
                        format!("(({a} << {k}) + {c})")
                    } else {
                        format!("(({} << {k}) - {})", a + 1, (1u32 << k) - c)
                    }
                })
                .collect();
            format!(
                "exec(''.join(map(getattr(__builtins__, {q}chr{q}), [{}])))",
                codes.join(", ")
            )
        }
        "double" => {
            let inner = format!(
                "import zlib,base64\nexec(zlib.decompress(base64.b64decode('{}')))\n",
                base64_encode(&zlib(s.as_bytes()))
            );
            format!("import base64\nexec(base64.b64decode({q}{}{q}))\n", base64_encode(inner.as_bytes()))
        }
        _ => s.to_string(),
    }
}

/// Joins a script into one `;`-separated line when it has no indented blocks.
pub fn oneliner(s: &str) -> Option<String> {
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    if lines
        .iter()
        .any(|l| l.starts_with([' ', '\t']) || l.trim_end().ends_with(':') || l.contains("\"\"\""))
    {
        return None;
    }
    Some(lines.join(";"))
}

/// Splits `import a, b` lines into one import per line.
fn split_imports(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 32);
    for line in s.split_inclusive('\n') {
        match line.trim_end().strip_prefix("import ") {
            Some(rest) if !rest.contains(" as ") && rest.contains(',') => {
                for m in rest.split(',') {
                    out.push_str("import ");
                    out.push_str(m.trim());
                    out.push('\n');
                }
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Indents the non-import part of `s` into a block opened by `head` and closed by `tail`
/// (imports stay at the top). `None` when the script has multi-line strings.
fn indent_body(s: &str, head: &str, tail: &str) -> Option<String> {
    if s.contains("\"\"\"") || s.contains("'''") {
        return None;
    }
    let lines: Vec<&str> = s.lines().collect();
    let n_imports = lines
        .iter()
        .take_while(|l| l.starts_with("import ") || l.starts_with("from ") || l.trim().is_empty())
        .count();
    if n_imports == lines.len() {
        return None;
    }
    let mut out = String::with_capacity(s.len() * 2);
    for l in &lines[..n_imports] {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(head);
    for l in &lines[n_imports..] {
        if !l.trim().is_empty() {
            out.push_str("    ");
        }
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(tail);
    Some(out)
}

/// Meaning-preserving structural changes, applied with the same probabilities to malicious and
/// benign templates (so that none of them marks a class): a shebang / coding line / docstring
/// header, one import per line, the body inside a function called from a `__main__` guard or
/// inside `try/except`, comment lines. `block = false` keeps the script free of indented
/// blocks (one-liner variants).
pub fn mutate(s: &str, rng: &mut Rng, block: bool) -> String {
    let mut s = s.to_string();
    if rng.below(3) == 0 {
        s = split_imports(&s);
    }
    if block {
        match rng.below(6) {
            0 | 1 => {
                let f = ident(rng);
                let head = format!("def {f}():\n");
                let tail = if rng.below(2) == 0 {
                    format!("if __name__ == '__main__':\n    {f}()\n")
                } else {
                    format!("{f}()\n")
                };
                if let Some(t) = indent_body(&s, &head, &tail) {
                    s = t;
                }
            }
            2 => {
                let tail = *rng.pick(&[
                    "except Exception:\n    pass\n",
                    "except Exception as e:\n    print(e)\n",
                    "except KeyboardInterrupt:\n    raise SystemExit(0)\n",
                ]);
                if let Some(t) = indent_body(&s, "try:\n", tail) {
                    s = t;
                }
            }
            _ => {}
        }
    }
    if rng.below(3) == 0 {
        let c = format!("# {} {}\n", rng.pick(WORDS), rng.pick(WORDS));
        match s.find('\n') {
            Some(i) if rng.below(2) == 0 => s.insert_str(i + 1, &c),
            _ => s.push_str(&c),
        }
    }
    match rng.below(5) {
        0 => s.insert_str(0, "#!/usr/bin/env python3\n"),
        1 => s.insert_str(0, "# -*- coding: utf-8 -*-\n"),
        2 if block => s.insert_str(
            0,
            &format!("\"\"\"{} {}.\"\"\"\n", rng.pick(WORDS), rng.pick(WORDS)),
        ),
        _ => {}
    }
    s
}

/// Generates `n` variants of a template. Malicious templates (`obfuscate`): even variants are
/// plain or one-liners, odd ones cycle through the obfuscation wrappers; benign ones use `plain`
/// and `oneliner` only.
pub fn variants(t: &Template, n: usize, seed: u64, obfuscate: bool) -> Vec<Variant> {
    let mut rng = Rng::new(seed ^ hash64(&t.id));
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let mut body = fill(&t.body, &mut rng);
        if !body.contains('"') && rng.below(2) == 0 {
            body = body.replace('\'', "\"");
        }
        // Malicious: half plain/one-liner (content must carry the verdict), half wrapped.
        let w: &'static str = if obfuscate && k % 2 == 1 {
            WRAPPERS[2 + (k / 2) % (WRAPPERS.len() - 2)]
        } else if obfuscate {
            ["plain", "oneliner"][(k / 2) % 2]
        } else {
            ["plain", "oneliner"][k % 2]
        };
        let body = mutate(&body, &mut rng, w != "oneliner");
        let text = wrap(w, &body, &mut rng);
        out.push(Variant {
            template: t.id.clone(),
            category: t.category.clone(),
            wrapper: w,
            text,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_generate() {
        let t = parse_templates(
            "%% id=a category=x\nimport os\nos.system('{URL}')\n%% id=b\nprint({V1})\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].category, "");
        let v = variants(&t[0], 30, 7, true);
        assert_eq!(v.len(), 30);
        assert!(v.iter().all(|x| !x.text.contains("{URL}")));
        let v2 = variants(&t[0], 30, 7, true);
        assert!(
            v.iter().zip(&v2).all(|(a, b)| a.text == b.text),
            "deterministic"
        );
        assert!(parse_templates("%% id=a\n%% id=a\n").is_err());
    }

    #[test]
    fn mutations_keep_the_script() {
        let body = "import os, socket\nx = socket.socket()\nif x:\n    os.system('id')\n";
        let mut rng = Rng::new(3);
        let mut wrapped_in_def = false;
        for _ in 0..200 {
            let m = mutate(body, &mut rng, true);
            assert!(
                m.contains("socket.socket()") && m.contains("os.system('id')"),
                "{m}"
            );
            wrapped_in_def |= m.contains("def ") && m.contains("    x = socket.socket()");
            // One-liner mutations never add indented blocks.
            let o = mutate("import os\nos.system('id')\n", &mut rng, false);
            assert!(oneliner(&o).is_some(), "{o}");
        }
        assert!(wrapped_in_def);
        assert_eq!(
            split_imports("import a, b\nx = 1\n"),
            "import a\nimport b\nx = 1\n"
        );
    }

    #[test]
    fn base64_matches_decoder() {
        let s = b"hello world, this is a test!";
        let e = base64_encode(s);
        assert_eq!(
            ward_ml::decode::base64_decode(e.as_bytes(), 1 << 20).unwrap(),
            s
        );
    }
}
