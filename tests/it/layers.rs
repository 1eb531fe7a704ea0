//! The shape of the code (CONVENTIONS): SQL only in store/, actix and maud only at the edges,
//! `PreEscaped` only on constants in ui.rs (WEB-04), OS time only in clock.rs.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&f).unwrap();
            (text.contains(needle)
                && !allowed
                    .iter()
                    .any(|a| rel == *a || rel.starts_with(&format!("{a}/"))))
            .then_some(rel)
        })
        .collect()
}

#[test]
fn sql_lives_only_in_the_store() {
    assert_eq!(offenders("rusqlite", &["store"]), Vec::<String>::new());
    assert_eq!(offenders("r2d2", &["store"]), Vec::<String>::new());
}

#[test]
fn the_web_framework_stays_at_the_edges() {
    assert_eq!(
        offenders("actix", &["web", "agent_api", "http", "app.rs"]),
        Vec::<String>::new()
    );
    assert_eq!(
        offenders("maud", &["web", "agent_api", "app.rs"]),
        Vec::<String>::new()
    );
}

#[test]
fn pre_escaped_html_is_only_used_for_constants_in_the_layout() {
    assert_eq!(
        offenders("PreEscaped", &["web/ui.rs"]),
        Vec::<String>::new()
    );
}

#[test]
fn only_the_clock_reads_os_time() {
    assert_eq!(
        offenders("SystemTime::now", &["clock.rs"]),
        Vec::<String>::new()
    );
    assert_eq!(offenders("now_utc", &["clock.rs"]), Vec::<String>::new());
}

/// Every requirement id the code or the tests cite (`AUTH-06`, `SESS-05`, …) is a row of
/// docs/SECURITY.md, so a reader can look up what a comment refers to and where it is proven.
#[test]
fn every_cited_requirement_id_is_documented() {
    const KINDS: &[&str] = &[
        "AGT", "AUD", "AUTH", "AZ", "BR", "CRED", "CRY", "DUR", "FLT", "JIT", "LD", "MFA", "OPS",
        "RGAA", "SESS", "TI", "WEB",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/SECURITY.md")).unwrap();
    let documented: std::collections::BTreeSet<String> = ids(&doc, KINDS).into_iter().collect();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let mut missing = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for id in ids(&text, KINDS) {
            if !documented.contains(&id) {
                missing.insert(format!(
                    "{id} ({})",
                    f.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not in docs/SECURITY.md: {missing:?}"
    );
    assert!(documented.len() > 50, "the table is read: {documented:?}");
}

/// `KIND-NN` tokens (two digits, not part of a longer word).
fn ids(text: &str, kinds: &[&str]) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for k in kinds {
        let pat = format!("{k}-");
        for (i, _) in text.match_indices(&pat) {
            let d = &b[i + pat.len()..];
            if (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                && d.len() >= 2
                && d[0].is_ascii_digit()
                && d[1].is_ascii_digit()
                && d.get(2).is_none_or(|c| !c.is_ascii_alphanumeric())
            {
                out.push(format!("{k}-{}{}", d[0] as char, d[1] as char));
            }
        }
    }
    out
}

/// The layers of docs/ARCHITECTURE.md: no module imports from a layer above it (handlers in
/// web/ and agent_api/ over the shared http/, over service/, over store/ and model/), and the
/// agent, which runs on workstations, reaches none of the appliance's inside.
#[test]
fn no_module_imports_from_a_layer_above_it() {
    const EDGES: &[&str] = &["web", "agent_api", "app", "ops", "demo", "jobs"];
    let rules: &[(&str, Vec<&str>)] = &[
        (
            "model",
            [
                EDGES,
                &[
                    "http", "service", "store", "proto", "notify", "agent", "authz",
                ],
            ]
            .concat(),
        ),
        (
            "store",
            [EDGES, &["http", "service", "proto", "agent"]].concat(),
        ),
        (
            "proto",
            [EDGES, &["http", "service", "store", "agent"]].concat(),
        ),
        ("service", [EDGES, &["http", "agent"]].concat()),
        // Handlers reach the database only through services.
        (
            "web",
            vec!["agent_api", "app", "ops", "demo", "jobs", "agent", "store"],
        ),
        (
            "agent_api",
            vec!["web", "app", "ops", "demo", "jobs", "agent", "store"],
        ),
        (
            "http",
            vec![
                "web",
                "agent_api",
                "app",
                "ops",
                "demo",
                "jobs",
                "agent",
                "store",
            ],
        ),
        (
            "agent",
            [EDGES, &["http", "service", "store", "notify"]].concat(),
        ),
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, forbidden) in rules {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for used in crate_paths(&text) {
                if forbidden.contains(&used.as_str()) {
                    let rel = f.strip_prefix(&src).unwrap().display().to_string();
                    wrong.push(format!("{rel} uses crate::{used}"));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "imports from a layer above: {wrong:#?}");
}

/// The top-level modules a file names as `crate::x`, including `use crate::{x::…, y}`.
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, 0);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push(ident(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// Pure model code draws no randomness and reads no clock: what it needs comes in as
/// arguments (random bytes from `crypto::random_secret`, `now` from the service).
#[test]
fn model_code_draws_no_randomness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let mut wrong = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for needle in [
            "fill_random",
            "random_secret",
            "random_token",
            "SystemRandom",
            "now_v7",
            "new_v4",
            "Clock::system",
        ] {
            if code.contains(needle) {
                wrong.push(format!(
                    "{} uses {needle}",
                    f.strip_prefix(&dir).unwrap().display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `system_scope` is the appliance's own authority (jobs, the console, a device acting on its
/// own tenant): no handler may mint one for a person or a token.
#[test]
fn handlers_never_take_the_system_scope() {
    assert_eq!(
        offenders(
            "system_scope",
            &["authz.rs", "service", "ops.rs", "demo.rs", "jobs.rs"]
        ),
        Vec::<String>::new()
    );
}

/// One authorization path (AZ-02): refusals in the portal and the API are audited by the
/// middleware in web/refusals.rs, not by each handler.
#[test]
fn refusals_are_audited_in_one_place() {
    assert_eq!(
        offenders("authz_fail(", &["service", "web/refusals.rs"]),
        Vec::<String>::new()
    );
    assert_eq!(offenders("denied(", &[]), Vec::<String>::new());
}

/// Small rooms: no source file over 600 lines (tests can move into a `tests.rs` beside it).
#[test]
fn no_source_file_runs_over_600_lines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{} has {n} lines", f.strip_prefix(&dir).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

/// No function over 80 lines unless a `// Long on purpose:` comment just above it says why
/// (a table, a dispatch over a closed set, one form's markup). Unit-test modules are exempt.
#[test]
fn no_function_runs_over_80_lines_without_a_reason() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let mut long = Vec::new();
    for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let code_end = lines
            .windows(2)
            .position(|w| w[0] == "#[cfg(test)]" && w[1].starts_with("mod tests"))
            .unwrap_or(lines.len());
        for (name, start, len) in functions(&lines[..code_end]) {
            let reason = lines[start.saturating_sub(6)..start]
                .iter()
                .any(|l| l.contains("// Long on purpose:"));
            if len > 80 && !reason {
                let file = f.strip_prefix(&dir).unwrap().display();
                long.push(format!(
                    "{file}: {name} ({len} lines, from line {})",
                    start + 1
                ));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}

/// (name, first line index, length) of each function: from its `fn` line to the closing
/// brace at the same indentation.
fn functions(lines: &[&str]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let Some(pos) = t.find("fn ") else { continue };
        let head = &t[..pos];
        let is_fn = head.split_whitespace().all(|w| {
            [
                "pub",
                "pub(crate)",
                "pub(super)",
                "async",
                "unsafe",
                "const",
                "extern",
                "\"system\"",
            ]
            .contains(&w)
        });
        if !is_fn || t.trim_end().ends_with(';') || t.trim_end().ends_with('}') {
            continue;
        }
        let name: String = t[pos + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let indent = l.len() - t.len();
        let close = " ".repeat(indent) + "}";
        if let Some(end) = lines[i + 1..]
            .iter()
            .position(|x| x.starts_with(&close) && x.len() - x.trim_start().len() == indent)
        {
            out.push((name, i, end + 2));
        }
    }
    out
}
