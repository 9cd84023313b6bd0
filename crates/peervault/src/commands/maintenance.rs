//! `peervault quota [set SIZE] [--json]` and `peervault gc [--json]`.

use std::process::ExitCode;

use anyhow::Context;
use peervault_node::{HumanSize, parse_size};

use crate::cli::args::QuotaAction;
use crate::control::client::Client;
use crate::control::proto::{Request, Response};
use crate::ui;

pub async fn quota(
    client: &Client,
    action: Option<QuotaAction>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let request = match &action {
        None => Request::Quota,
        Some(QuotaAction::Set { size }) => Request::SetQuota {
            bytes: parse_size(size)
                .with_context(|| format!("{size:?} is not a size; write e.g. 5GB or 500MB"))?,
        },
    };
    let reply = client.call(&request).await?;
    let Response::Quota { quota } = reply else {
        return Err(super::unexpected(reply));
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&quota)?);
    } else {
        if action.is_some() {
            say!(
                "Quota set to {} ({} bytes) and saved to .quota_config.json",
                HumanSize(quota.total_bytes),
                quota.total_bytes
            );
        }
        say!("{}", ui::quota_block(&quota));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn gc(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let reply = client.call(&Request::Gc).await?;
    let Response::Gc { summary } = reply else {
        return Err(super::unexpected(reply));
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        say!("{}", ui::gc_block(&summary));
    }
    // Damage that could not be repaired is a failure scripts should notice.
    Ok(if summary.corrupted > summary.repaired {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
