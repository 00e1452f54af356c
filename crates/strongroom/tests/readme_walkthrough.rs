//! The README's five-minute walkthrough, run as written (with the built binary standing in
//! for `cargo run`) against a dev server: a newcomer who pastes it gets what it promises.

mod common;

use common::*;

#[test]
fn the_readme_walkthrough_works_as_written() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let marker = "<!-- walkthrough:";
    let start = readme.find(marker).expect("the walkthrough marker");
    let block = &readme[start..];
    let open = block.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let close = block[open..].find("\n```").expect("the block's end");
    let script = &block[open..open + close];
    assert!(script.contains("strongroom() { cargo run -q -p strongroom -- \"$@\"; }"));
    let s = strongroom_dev();
    let bin = strongroom_bin();
    // The same script, with the built binary for `cargo run`.
    let script = script.replace(
        "strongroom() { cargo run -q -p strongroom -- \"$@\"; }",
        &format!("strongroom() {{ {:?} \"$@\"; }}", bin.display().to_string()),
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("API", &s.addr)
        .env("STRONGROOM_DEV_ISSUER_KEY", dev_issuer_key())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "\"status\":\"ACTIVE\"",
        "{\"name\":\"DB_PASSWORD\",\"version\":1}",
        "\"name\":\"DB_PASSWORD\",\"value\":\"hunter2\",\"source\":\"grp/app\"",
        "{\"secrets\":[],\"missing\":[\"DB_PASSWORD\"]}",
    ] {
        assert!(
            stdout.contains(want),
            "the walkthrough's output lacks {want}:\n{stdout}"
        );
    }
    // Every mutation's payload says it went through.
    assert!(!stdout.contains("\"errors\":[\""), "{stdout}");
    assert!(!stdout.contains("\"errors\":[{"), "{stdout}");
}
