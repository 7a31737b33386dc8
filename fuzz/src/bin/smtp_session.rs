//! AFL target: see `portcullis_fuzz::smtp_session`.
fn main() {
    afl::fuzz!(|data: &[u8]| portcullis_fuzz::smtp_session(data));
}
