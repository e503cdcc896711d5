//! Safe file writing: a temporary file in the same folder, synced, then renamed
//! over the destination, so a reader never sees a partial file and a failed or
//! killed write leaves the old file (or nothing) in place.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name used while writing `path`.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Checks that `path` is a regular file (through links) before it is read: a
/// folder, a pipe or a device gets a clear error instead of a read that blocks
/// (a pipe with no writer) or never ends (`/dev/zero`).
pub fn regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Invalid(format!("{} is a folder, not a file; name the files in it", path.display())));
    }
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file (a pipe, a device or a socket); brt reads files of known size: save it to a file first",
            path.display()
        )));
    }
    Ok(())
}

/// Files of the folders in `inputs` (sorted, each folder's regular files, not
/// its subfolders) and the files of `inputs` themselves, each checked by
/// [`regular_file`].
pub fn list_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| Error::io(input, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            files.extend(inner);
        } else if !input.exists() {
            return Err(Error::Invalid(format!("{}: no such file or folder", input.display())));
        } else {
            regular_file(input)?;
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// Refuses to write `output` when it is one of `inputs`, by any spelling of its
/// path or through a link: the write would replace the input. A path that does
/// not exist yet is never an input.
pub fn refuse_to_overwrite_inputs(output: &Path, inputs: &[&Path]) -> Result<()> {
    // `same-file` compares device and inode (file index on Windows), which sees
    // through `./x`, symbolic and hard links where comparing paths would not.
    match inputs.iter().find(|input| same_file::is_same_file(output, input).unwrap_or(false)) {
        Some(input) => Err(Error::Invalid(format!(
            "{} is the same file as the input {}; write to a new file",
            output.display(),
            input.display()
        ))),
        None => Ok(()),
    }
}
