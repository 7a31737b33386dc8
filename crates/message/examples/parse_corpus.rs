//! Parse every message in the files and directories named, under the default limits: the harness for
//! profiling `message::parse` alone (`valgrind --tool=callgrind`), and, with `--print`, for checking that
//! a change leaves every view as it was (one `Debug` line per message, to compare between builds).
//!
//! `cargo run --release -p message --example parse_corpus -- [--print] PATH...`

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let mut print = false;
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in std::env::args_os().skip(1) {
        if arg == "--print" {
            print = true;
            continue;
        }
        let path = PathBuf::from(arg);
        if path.is_dir() {
            let mut inside =
                std::fs::read_dir(&path)?.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>()?;
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path);
        }
    }
    let limits = message::MessageLimits::default();
    for file in &files {
        let raw = std::fs::read(file)?;
        let view = message::parse(&raw, &limits);
        if print {
            println!("{}: {view:?}", file.display());
        }
    }
    eprintln!("{} messages parsed", files.len());
    Ok(())
}
