//! Ships the detached-process supervisor (src/detached.sh) without its comments, blank lines
//! and indentation: it travels as an argument of every detached-process exec and sits in the
//! client's wasm, and none of those matter to `sh` (no line of it continues a quoted string
//! whose leading blanks count).
use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=src/detached.sh");
    let script = fs::read_to_string("src/detached.sh").expect("reading src/detached.sh");
    let mut min = String::with_capacity(script.len());
    for line in script.lines().map(str::trim_start) {
        if !line.is_empty() && !line.starts_with('#') {
            min.push_str(line);
            min.push('\n');
        }
    }
    let out = env::var("OUT_DIR").expect("OUT_DIR");
    fs::write(Path::new(&out).join("detached.min.sh"), min).expect("writing detached.min.sh");
}
