//! The uniffi-bindgen CLI, built from the workspace's pinned uniffi so the generated
//! Kotlin and Swift always match courier-ffi's scaffolding (a mismatch fails at load time
//! with a checksum error).
//!
//! `cargo run -p uniffi-bindgen -- generate <libcourier_ffi.so> --language kotlin --out-dir <dir>`

fn main() {
    uniffi::uniffi_bindgen_main()
}
