//! AFL target: see `portcullis_fuzz::archive`.
fn main() {
    afl::fuzz!(|data: &[u8]| portcullis_fuzz::archive(data));
}
