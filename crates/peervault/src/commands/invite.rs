//! `invite [--expires DURATION] [--json]`: an invitation that lets one new
//! device join this vault.

use std::process::ExitCode;

use super::{Console, Surface};
use crate::ops::Operations;

pub async fn run(
    ops: &impl Operations,
    expires: &str,
    json: bool,
    console: &impl Console,
) -> anyhow::Result<ExitCode> {
    let lifetime = humantime::parse_duration(expires.trim()).map_err(|e| {
        anyhow::anyhow!("--expires {expires:?}: {e} (give a duration such as 30m, 24h or 7d)")
    })?;
    let invitation = ops.invite(Some(lifetime)).await?;
    if json {
        say!("{}", serde_json::to_string(&invitation)?);
        return Ok(ExitCode::SUCCESS);
    }
    let code = &invitation.code;
    say!("{code}");
    let hint = format!(
        "Start the new device with:  peervault -join {code}\n\
         (it admits one device, once, until {}; the code holds no key: a member hands \
         the keys to the device that redeems it)",
        invitation.expires_at
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
