//! `invite [--json]`: a code that lets another node join this vault.

use std::process::ExitCode;

use super::{Console, Surface};
use crate::ops::Operations;

pub async fn run(
    ops: &impl Operations,
    json: bool,
    console: &impl Console,
) -> anyhow::Result<ExitCode> {
    let code = ops.invite().await?;
    if json {
        say!("{}", serde_json::json!({ "code": code }));
        return Ok(ExitCode::SUCCESS);
    }
    say!("{code}");
    let hint = format!(
        "Start the new node with:  peervault -join {code}\n\
         (anyone holding this code can join the vault and read everything in it)"
    );
    match console.surface() {
        Surface::Prompt => say!("{hint}"),
        // On stdout the code alone, for scripts; the hint for the person.
        Surface::Shell if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            eprintln!("{hint}")
        }
        Surface::Shell => {}
    }
    Ok(ExitCode::SUCCESS)
}
