//! `s3 keys create NAME | ls | rm ID`: the access keys of the S3 gateway
//! (see `peervault_s3::keys`), the same at the prompt.

use std::process::ExitCode;

use crate::cli::args::{KeysAction, S3Action};
use crate::ops::Operations;
use crate::ui;

pub async fn run(ops: &impl Operations, action: S3Action) -> anyhow::Result<ExitCode> {
    let S3Action::Keys { action } = action;
    match action {
        KeysAction::Create { name, json } => {
            let key = ops.s3_key_create(&name).await?;
            if json {
                let shown = serde_json::json!({
                    "access_key_id": key.access_key_id,
                    "secret_access_key": key.secret_access_key,
                });
                say!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                say!(
                    "Access key '{}' created; every node's S3 gateway accepts it.",
                    key.name
                );
                say!("  Access key id:      {}", key.access_key_id);
                say!("  Secret access key:  {}", key.secret_access_key);
                say!(
                    "Use any region name. E.g. export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} \
                     then aws --endpoint-url http://ADDR s3 ls",
                    key.access_key_id,
                    key.secret_access_key
                );
            }
        }
        KeysAction::Ls { json } => {
            let keys = ops.s3_keys().await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                say!("No S3 access keys yet: `peervault s3 keys create NAME` makes one.");
            } else {
                let mut table = ui::new_table(&["Access key id", "Name", "Created (UTC)"]);
                for key in &keys {
                    table.add_row(vec![
                        key.access_key_id.clone(),
                        key.name.clone(),
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_millis(key.created_unix_ms),
                        )
                        .to_string()
                        .replace('T', " ")
                        .trim_end_matches('Z')
                        .to_string(),
                    ]);
                }
                say!("{table}");
            }
        }
        KeysAction::Rm { id } => {
            ops.s3_key_remove(&id).await?;
            say!("Access key {id} deleted: requests signed with it are refused on every node.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
