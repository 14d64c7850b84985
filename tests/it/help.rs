//! Every command's `--help`: each has an example and its exit statuses, and the text is
//! kept in a snapshot (`tests/it/snapshots/`), so a change to what users read is seen in
//! review. After a deliberate change: `INSTA_UPDATE=always cargo test --test it help::`,
//! then read the diff.

use crate::common::*;

/// Every command and subcommand, as `pack help` lists them.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["validate"],
    &["compile"],
    &["build"],
    &["init"],
    &["cache"],
    &["cache", "info"],
    &["cache", "prune"],
    &["cache", "clear"],
    &["inspect"],
    &["key"],
    &["key", "generate"],
    &["sign"],
    &["verify"],
    &["push"],
    &["pull"],
    &["login"],
    &["run"],
    &["serve"],
];

#[test]
fn every_help_has_an_example_json_and_the_exit_statuses_and_is_what_the_snapshot_says() {
    let listed = stdout(&pack().arg("help").output().unwrap());
    for command in COMMANDS.iter().filter(|c| c.len() == 1) {
        assert!(
            listed.contains(&format!("  {} ", command[0])),
            "`pack help` does not list {}",
            command[0]
        );
    }
    let home = tempfile::tempdir().unwrap();
    for command in COMMANDS {
        // No PACK_* variable (`--help` shows their values), and a fixed width, so the
        // snapshot depends on neither the environment nor the terminal.
        let out = pack_in(home.path())
            .args(*command)
            .arg("--help")
            .env("COLUMNS", "100")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command:?}");
        let help = stdout(&out);
        let name = if command.is_empty() {
            "pack".to_string()
        } else {
            format!("pack {}", command.join(" "))
        };
        assert!(help.contains("Example"), "`{name} --help` has no example");
        assert!(help.contains("--json"), "`{name} --help` has no --json");
        assert!(
            help.contains("Exit status"),
            "`{name} --help` gives no exit statuses"
        );
        insta::assert_snapshot!(name.replace(' ', "-"), help);
    }
}
