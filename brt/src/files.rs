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
///
/// The file is replaced whole, and no temporary file is left behind:
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out.txt");
/// brt::write_atomically(&path, b"first")?;
/// brt::write_atomically(&path, b"second")?;
/// assert_eq!(std::fs::read(&path)?, b"second");
/// assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
/// assert!(brt::write_atomically(&dir.path().join("no/such/folder/out.txt"), b"x").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// A file passes; a folder, a missing path and (on Unix) a device do not:
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("text.txt");
/// std::fs::write(&file, "text")?;
/// assert!(brt::regular_file(&file).is_ok());
/// assert!(brt::regular_file(dir.path()).unwrap_err().to_string().contains("is a folder"));
/// assert!(brt::regular_file(&dir.path().join("missing")).is_err());
/// if cfg!(unix) {
///     assert!(brt::regular_file(std::path::Path::new("/dev/null")).is_err());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// A folder gives its files, sorted, without its subfolders; a file is itself;
/// a missing path is an error:
///
/// ```
/// let dir = tempfile::tempdir()?;
/// for name in ["b.txt", "a.txt"] {
///     std::fs::write(dir.path().join(name), name)?;
/// }
/// std::fs::create_dir(dir.path().join("sub"))?;
/// let other = tempfile::NamedTempFile::new()?;
/// let files = brt::list_files(&[dir.path().to_path_buf(), other.path().to_path_buf()])?;
/// assert_eq!(files, [dir.path().join("a.txt"), dir.path().join("b.txt"), other.path().to_path_buf()]);
/// assert!(brt::list_files(&[dir.path().join("missing")]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// The same file by another spelling is refused; a new file is not:
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let input = dir.path().join("in.txt");
/// std::fs::write(&input, "text")?;
/// let same = dir.path().join(".").join("in.txt");
/// assert!(brt::refuse_to_overwrite_inputs(&same, &[&input]).is_err());
/// assert!(brt::refuse_to_overwrite_inputs(&dir.path().join("out.txt"), &[&input]).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
