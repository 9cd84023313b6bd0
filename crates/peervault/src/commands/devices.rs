//! `devices [--json]`, `devices rename DEVICE NAME`, `devices remove DEVICE
//! [--yes]` and `rekey [--json]`.

use std::process::ExitCode;

use super::Console;
use crate::cli::args::DevicesAction;
use crate::ops::Operations;
use crate::ui;

pub async fn run(
    ops: &impl Operations,
    action: Option<DevicesAction>,
    json: bool,
    console: &mut impl Console,
) -> anyhow::Result<ExitCode> {
    match action {
        None => {
            let devices = ops.devices().await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                say!("Devices of this vault ({}):", devices.len());
                say!("{}", ui::devices_table(&devices));
            }
        }
        Some(DevicesAction::Rename { device, name }) => {
            let renamed = ops.rename_device(&device, &name).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&renamed)?);
            } else {
                say!(
                    "Device {} is now named {:?}.",
                    renamed.peer_id,
                    renamed.name
                );
            }
        }
        Some(DevicesAction::Remove { device, yes }) => {
            let question = format!(
                "Remove device {device:?} from the vault? No member will accept it again, it \
                 cannot read what is written from now on, and what it held is copied to the \
                 other members."
            );
            if !yes && !console.confirm(&question, &format!("remove device {device:?}"))? {
                say!("Kept device {device:?}.");
                return Ok(ExitCode::SUCCESS);
            }
            let removed = ops.remove_device(&device).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&removed)?);
            } else {
                say!(
                    "Removed device {} ({:?}). Key epoch {} started: {} of the {} other members \
                     have its key now; the others receive it when they connect.",
                    removed.peer_id,
                    removed.name,
                    removed.epoch,
                    removed.members_told.min(removed.members_left),
                    removed.members_left
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rekey(ops: &impl Operations, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let epoch = ops.rekey(all).await?;
    if json {
        say!("{}", serde_json::json!({ "epoch": epoch, "all": all }));
    } else {
        say!(
            "Key epoch {epoch} started: data written from now on is sealed with its key, which \
             the connected members have now and the others receive when they connect."
        );
        if all {
            say!(
                "Every member now re-encrypts what it holds in epoch {epoch}, in the background \
                 (`peervault status` shows how far it is)."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
