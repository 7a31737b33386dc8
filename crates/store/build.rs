//! `sqlx::migrate!` embeds the migration files at compile time but cannot tell cargo it read them:
//! this rebuilds the crate when one is added or changed (as sqlx's documentation advises).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
