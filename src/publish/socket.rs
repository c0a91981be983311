//! The socket file: creating it safely and removing it at exit.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tracing::{info, warn};

/// Socket permissions: owner and group (e.g. `video` or `kao`) may connect.
const SOCKET_MODE: u32 = 0o660;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot create the socket folder {dir}: {source}; set `publish.socket` or --socket to a writable path")]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another kao is already serving on {path}; stop it, or use --socket to choose another path"
    )]
    InUse { path: PathBuf },
    #[error(
        "{path} exists and is not a socket; refusing to replace it (choose another --socket path)"
    )]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Removes the socket file when dropped.
pub struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => info!(path = %self.path.display(), "socket removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %self.path.display(), cause = %e, "cannot remove socket"),
        }
    }
}

/// Listens on `path`, replacing a stale socket left by a crashed run but
/// never a live one or a file that is not a socket. Must be called inside
/// a tokio runtime.
pub fn bind(path: &Path) -> Result<(UnixListener, SocketFile), PublishError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PublishError::Folder {
            dir: dir.to_owned(),
            source,
        })?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(PublishError::NotASocket {
                path: path.to_owned(),
            });
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(PublishError::InUse {
                path: path.to_owned(),
            });
        }
        warn!(path = %path.display(), "replacing stale socket");
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|source| PublishError::Bind {
        path: path.to_owned(),
        source,
    })?;
    let file = SocketFile {
        path: path.to_owned(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(
        |source| PublishError::Bind {
            path: path.to_owned(),
            source,
        },
    )?;
    Ok((listener, file))
}
