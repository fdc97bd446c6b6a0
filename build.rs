//! Lists the features: every file `src/features/<name>.rs` (but `mod.rs`) and every folder
//! `src/features/<name>/mod.rs` becomes `features::<name>`, and `features::ALL` holds each one's
//! `FEATURE`. Adding a feature is adding its file; no list is edited by hand.

use std::{env, fs, path::Path};

fn main() {
    let root = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join("src/features");
    // A new file or folder here, or a new migration (sqlx's `migrate!` embeds the folder), is a
    // reason to build again.
    println!("cargo:rerun-if-changed=src/features");
    println!("cargo:rerun-if-changed=migrations");
    let mut features = Vec::new();
    for entry in fs::read_dir(&dir).expect("src/features exists") {
        let path = entry.expect("a readable folder entry").path();
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
            features.push((name.to_string(), file));
        }
    }
    features.sort();
    let mut out = String::new();
    for (name, file) in &features {
        out.push_str(&format!(
            "#[path = {:?}]\npub mod {name};\n",
            file.display().to_string()
        ));
    }
    let all: Vec<String> = features
        .iter()
        .map(|(n, _)| format!("&{n}::FEATURE"))
        .collect();
    out.push_str(&format!(
        "/// Every feature in `src/features/`, by name.\npub static ALL: &[&Feature] = &[{}];\n",
        all.join(", ")
    ));
    let target = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("features.rs");
    fs::write(target, out).expect("writing the feature list");
}
