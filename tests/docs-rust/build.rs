//! Writes every ```rust block of the docs as the body of an async function, so that
//! `cargo build`/`clippy` of this crate (part of `cargo clippy --workspace`, which
//! `make test` runs) fails when a snippet no longer compiles against courierkit.
//!
//! The snippets are fragments of a program: a `bus` made in an earlier block, a `?` or
//! `.await` at the top level. Each becomes
//! `async fn snippetN(client: Client, bus: Bus, body: Vec<u8>) -> Result<(), Box<dyn Error>>`
//! with `courierkit::*` and `std::time::Duration` in scope; its own `use` lines stay in it.

use std::fmt::Write as _;
use std::path::Path;

const DOCS: [&str; 3] = ["README.md", "docs/api.md", "docs/messaging.md"];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = String::new();
    let mut n = 0;
    for doc in DOCS {
        let path = root.join(doc);
        println!("cargo::rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).expect("the docs are in the repository");
        let mut lines = text.lines().enumerate();
        while let Some((start, line)) = lines.next() {
            if line != "```rust" {
                continue;
            }
            let code: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| *l != "```")
                .collect();
            writeln!(out, "/// {doc}:{}", start + 1).unwrap();
            writeln!(out, "#[allow(unused_variables, unused_imports, unused_mut, dead_code, unreachable_code, clippy::all)]").unwrap();
            writeln!(
                out,
                "pub async fn snippet{n}(client: Client, bus: Bus, body: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {{"
            )
            .unwrap();
            for l in code {
                writeln!(out, "    {l}").unwrap();
            }
            writeln!(out, "    Ok(())\n}}\n").unwrap();
            n += 1;
        }
    }
    assert!(n > 0, "no ```rust blocks found in {DOCS:?}");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("snippets.rs");
    std::fs::write(dest, out).unwrap();
}
