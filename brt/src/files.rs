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
