//! AFL target: see `portcullis_fuzz::portal_forms`.
fn main() {
    afl::fuzz!(|data: &[u8]| portcullis_fuzz::portal_forms(data));
}
