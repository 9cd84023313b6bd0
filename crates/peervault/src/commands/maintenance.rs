//! `peervault quota [set SIZE] [--json]`, `peervault limits [set ...] [--json]`
//! and `peervault gc [--json]`.

use std::process::ExitCode;

use anyhow::Context;
use peervault_node::{HumanSize, parse_size};

use super::{Console, Surface};
use crate::cli::args::{LimitsAction, QuotaAction};
use crate::ops::Operations;
use crate::ui;

pub async fn quota(
    ops: &impl Operations,
    action: Option<QuotaAction>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let quota = match &action {
        None => ops.quota().await?,
        Some(QuotaAction::Set { size }) => {
            let bytes = parse_size(size)
                .with_context(|| format!("{size:?} is not a size; write e.g. 5GB or 500MB"))?;
            ops.set_quota(bytes).await?
        }
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
    if action.is_some()
        && let Some(warning) = ui::over_quota_warning(&quota)
    {
        eprintln!("{warning}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn limits(
    ops: &impl Operations,
    action: Option<LimitsAction>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let limits = match action {
        None => ops.limits().await?,
        Some(LimitsAction::Set { upload, download }) => {
            if upload.is_none() && download.is_none() {
                anyhow::bail!(
                    "say what to change: limits set --upload RATE and/or --download RATE (e.g. 20MB, or off)"
                );
            }
            let mut limits = ops.limits().await?;
            if let Some(text) = upload {
                limits.upload_bytes_per_second =
                    ui::parse_rate(&text).map_err(|e| anyhow::anyhow!("--upload: {e}"))?;
            }
            if let Some(text) = download {
                limits.download_bytes_per_second =
                    ui::parse_rate(&text).map_err(|e| anyhow::anyhow!("--download: {e}"))?;
            }
            ops.set_limits(limits).await?
        }
    };
    if json {
        say!("{}", serde_json::to_string_pretty(&limits)?);
    } else {
        say!("{}", ui::limits_line(&limits));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn gc(
    ops: &impl Operations,
    json: bool,
    console: &impl Console,
) -> anyhow::Result<ExitCode> {
    if !json && matches!(console.surface(), Surface::Prompt) {
        say!("Running garbage collection (checking every chunk)...");
    }
    let summary = ops.gc().await?;
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
