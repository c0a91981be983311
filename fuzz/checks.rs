//! The properties fuzzing checks, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/`) and the corpus test (`tests/fuzz_corpus.rs`) that
//! replays the kept corpus and random inputs on every `cargo test`.

use kao::config::Config;
use kao::publish::protocol::{ClientMsg, ServerMsg};

/// Any bytes a client may send, split into request lines as the server
/// splits them: each parses to a request or an explanation, never a panic;
/// what parses survives a round trip unchanged.
pub fn protocol(data: &[u8]) {
    for line in data.split(|b| *b == b'\n') {
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        match ClientMsg::parse(text) {
            Ok(msg) => {
                let again = serde_json::to_string(&msg).expect("requests serialise");
                assert_eq!(ClientMsg::parse(&again).expect("round trip"), msg);
            }
            Err(why) => assert!(why.starts_with("bad request"), "{why}"),
        }
        // Clients parse what the server sends with the same types.
        if let Ok(msg) = serde_json::from_str::<ServerMsg>(text) {
            let line = msg.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        }
    }
}

/// Any text as `kao.toml`: a configuration, or an error that names the
/// file; a valid configuration stays valid when written back.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml".as_ref()) {
        Ok(config) => {
            let again = toml::to_string(&config).expect("configurations serialise");
            Config::parse(&again, "again.toml".as_ref()).expect("round trip");
        }
        Err(err) => assert!(err.to_string().contains("fuzz.toml"), "{err}"),
    }
}
