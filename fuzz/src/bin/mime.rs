//! AFL target: see `portcullis_fuzz::mime`.
fn main() {
    afl::fuzz!(|data: &[u8]| portcullis_fuzz::mime(data));
}
