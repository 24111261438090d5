//! `-o type=local,dest=DIR`: the image's filesystem written to a host
//! directory (owners kept when running as root).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use super::tree::{Kind, SourceTree, join};

/// Copies everything in `tree` below `rel` into `dest`.
pub fn export_tree(tree: &dyn SourceTree, rel: &str, dest: &Path) -> Result<()> {
    let err = |p: &Path| format!("writing {}", p.display());
    fs::create_dir_all(dest).context(Code::InternalError, err(dest))?;
    for name in tree.list(rel)? {
        if name == "lost+found" && rel.is_empty() {
            continue;
        }
        let src = join(rel, &name);
        let to = dest.join(&name);
        let Some(e) = tree.stat(&src)? else { continue };
        match e.kind {
            Kind::Dir => export_tree(tree, &src, &to)?,
            Kind::File => {
                let _ = fs::remove_file(&to);
                let mut f = fs::File::create(&to).context(Code::InternalError, err(&to))?;
                std::io::copy(&mut tree.open(&src)?, &mut f)
                    .context(Code::InternalError, err(&to))?;
                f.flush().context(Code::InternalError, err(&to))?;
            }
            Kind::Symlink => {
                let _ = fs::remove_file(&to);
                std::os::unix::fs::symlink(tree.read_link(&src)?, &to)
                    .context(Code::InternalError, err(&to))?;
                continue;
            }
            Kind::Other => continue,
        }
        fs::set_permissions(&to, fs::Permissions::from_mode(e.mode))
            .context(Code::InternalError, err(&to))?;
        // Ownership only sticks for root; elsewhere files belong to the caller.
        let _ = std::os::unix::fs::chown(&to, Some(e.uid), Some(e.gid));
    }
    Ok(())
}

/// Checks an export destination is usable before the build starts.
pub fn check_dest(dest: &Path) -> Result<()> {
    if dest.as_os_str().is_empty() {
        return Err(ContainerizationError::invalid_argument(
            "-o needs dest=PATH for this output type",
        ));
    }
    Ok(())
}
