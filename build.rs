//! Lists the features, so that adding one edits no list kept by hand:
//!
//! - every file `src/features/<name>.rs` (but `mod.rs`) and every folder
//!   `src/features/<name>/mod.rs` becomes `features::<name>`, and `features::ALL` holds each
//!   one's `FEATURE` (`$OUT_DIR/features.rs`, included by `src/features/mod.rs`);
//! - every file `tests/api/features/<name>.rs` becomes a module of the `api` test binary
//!   (`$OUT_DIR/feature_tests.rs`, included by `tests/api/main.rs`).

use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    // A new file here, or a new migration (sqlx's `migrate!` embeds the folder), is a reason to
    // build again.
    for dir in ["src/features", "tests/api/features", "migrations"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    let features = modules(&root.join("src/features"));
    let all: Vec<String> = features
        .iter()
        .map(|(n, _)| format!("&{n}::FEATURE"))
        .collect();
    let list = format!(
        "{}/// Every feature in `src/features/`, by name.\npub static ALL: &[&Feature] = &[{}];\n",
        declarations(&features),
        all.join(", ")
    );
    fs::write(out.join("features.rs"), list).expect("writing the feature list");
    let tests = modules(&root.join("tests/api/features"));
    fs::write(out.join("feature_tests.rs"), declarations(&tests)).expect("writing the test list");
}

/// `(name, file)` of each module in `dir`, by name; none when `dir` does not exist.
fn modules(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let file = if path.is_dir() {
            path.join("mod.rs")
        } else if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
            path.clone()
        } else {
            continue;
        };
        if file.is_file() {
            found.push((name.to_string(), file));
        }
    }
    found.sort();
    found
}

fn declarations(modules: &[(String, PathBuf)]) -> String {
    modules
        .iter()
        .map(|(name, file)| {
            format!(
                "#[path = {:?}]\npub mod {name};\n",
                file.display().to_string()
            )
        })
        .collect()
}
