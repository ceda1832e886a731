//! Feature unification for patchcore-rs: this crate has no code. Its manifest asks for the
//! dependency features that `cargo nextest run --workspace` turns on through dev-dependencies,
//! so that `cargo run -p patchcore-cli` reuses the same build of burn (see its Cargo.toml).
