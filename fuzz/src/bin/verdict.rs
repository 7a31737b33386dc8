//! AFL target: see `portcullis_fuzz::verdict`.
fn main() {
    afl::fuzz!(|data: &[u8]| portcullis_fuzz::verdict(data));
}
