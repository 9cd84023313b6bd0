//! The node's persistent identity.
//!
//! A node is known to its peers by the peer id of an ed25519 keypair. The keypair is
//! created on first start and kept in the data dir (`node.key`, mode 0600), so the
//! peer id, and with it everything peers know about the node, survives restarts.
//! (The original program minted a new id at every start, hiding its own data.)

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libp2p_identity::{Keypair, PeerId};

/// File name of the identity inside the data dir.
pub const IDENTITY_FILE: &str = "node.key";

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("could not {action} the node identity {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the node identity {path} is damaged ({reason}); move it away to start with a new \
         peer id (peers will then see this node as a new one)"
    )]
    Damaged { path: PathBuf, reason: String },
}

/// An ed25519 keypair and the peer id it yields.
#[derive(Clone)]
pub struct NodeIdentity {
    keypair: Keypair,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeIdentity({})", self.peer_id())
    }
}

impl NodeIdentity {
    /// Loads `data_dir/node.key`, creating it (0600, durably) if absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, IdentityError> {
        let path = data_dir.join(IDENTITY_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                let keypair = Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
                    IdentityError::Damaged {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(Self { keypair })
            }
            // A dangling symlink also reads as missing: never replace a link.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&path).is_err() =>
            {
                Self::create(&path)
            }
            Err(source) => Err(IdentityError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    fn create(path: &Path) -> Result<Self, IdentityError> {
        let keypair = Keypair::generate_ed25519();
        let encoded = keypair
            .to_protobuf_encoding()
            .map_err(|e| IdentityError::Damaged {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let io_err = |source| IdentityError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("key.tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
        file.write_all(&encoded).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        fs::rename(&tmp, path).map_err(io_err)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err)?;
        }
        Ok(Self { keypair })
    }

    /// The peer id, as peers and users see it.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The keypair (for the transport).
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_reload_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeIdentity::load_or_create(dir.path()).unwrap();
        let second = NodeIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(first.peer_id(), second.peer_id());
        let mode = fs::metadata(dir.path().join(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn damaged_identity_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(IDENTITY_FILE), b"garbage").unwrap();
        let err = NodeIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(
            fs::read(dir.path().join(IDENTITY_FILE)).unwrap(),
            b"garbage"
        );
    }
}
