//! `peervault ls [--json]`

use std::process::ExitCode;

use crate::control::client::Client;
use crate::ui;

pub async fn run(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let files = client.list().await?;
    if json {
        say!("{}", serde_json::to_string_pretty(&files)?);
    } else if files.is_empty() {
        say!("The vault is empty. Store a file with: peervault put <path>");
    } else {
        say!("Files in the vault ({}):", ui::plural(files.len(), "file"));
        say!("{}", ui::files_table(&files));
    }
    Ok(ExitCode::SUCCESS)
}
