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
        offenders("actix", &["web", "agent_api", "app.rs"]),
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
