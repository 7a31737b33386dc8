//! AFL target: see `portcullis_fuzz::smuggling`.
fn main() {
    afl::fuzz!(|data: &[u8]| portcullis_fuzz::smuggling(data));
}
