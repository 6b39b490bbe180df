//! Rebuild when embedded templates change (include_dir cannot tell cargo on stable Rust).
fn main() {
    println!("cargo:rerun-if-changed=templates");
}
