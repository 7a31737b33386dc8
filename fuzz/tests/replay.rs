//! Replay every committed corpus file (seeds and crashes found) through its harness.

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn smtp_session() {
    replay("smtp_session", portcullis_fuzz::smtp_session);
}

#[test]
fn smuggling() {
    replay("smuggling", portcullis_fuzz::smuggling);
}

#[test]
fn mime() {
    replay("mime", portcullis_fuzz::mime);
}

#[test]
fn verdict() {
    replay("verdict", portcullis_fuzz::verdict);
}

#[test]
fn archive() {
    replay("archive", portcullis_fuzz::archive);
}

#[test]
fn portal_forms() {
    replay("portal_forms", portcullis_fuzz::portal_forms);
}

#[test]
fn the_markup_check_catches_what_it_must() {
    portcullis_fuzz::check_sanitised("<p title=\"x\">onerror=alert(1) javascript: &lt;script&gt;</p>");
    for active in [
        "<script>x</script>",
        "<a onclick=\"x\">",
        "<a href=\"javascript:x\">",
        "<IMG src=\"x\">",
        "<a href=\" data:text/html,x\">",
        "<p style=\"x\">",
    ] {
        assert!(std::panic::catch_unwind(|| portcullis_fuzz::check_sanitised(active)).is_err(), "{active}");
    }
}
