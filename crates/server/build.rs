//! Rebuilds the server when the dashboard's build output changes: rust-embed reads
//! `web/dist` while compiling, and cargo does not see those files otherwise.

fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
