//! Rebuild the object when the linker changes (`cargo xtask setup` rebuilds it when the
//! nightly's LLVM changes).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
