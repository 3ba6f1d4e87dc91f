//! Whose fault an I/O error under OUT is: OUT's (the disk is full, failing
//! or read-only, and every record would fail alike: stop consuming, commit
//! nothing, wait until it is writable) or one record's (its output name is
//! refused, or clashes with another output: that record goes to
//! `_unattributed`, and consuming goes on).
//!
//! Told by errno. Only errors a name can cause are a record's; anything
//! else, known or not, is OUT's: stopping on an error that was not OUT's
//! costs a retry, while blaming a record for a full disk would send good
//! records to `_unattributed`.

use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// OUT itself cannot be written (ENOSPC, EIO, EROFS, EDQUOT, EACCES,
    /// and anything not known to come from a name).
    Storage,
    /// This record's output cannot be created where its attribution points
    /// (EINVAL, ENAMETOOLONG, ENOTDIR, EISDIR, EEXIST, EILSEQ, ELOOP,
    /// EMLINK), or its name holds a NUL byte (refused before any syscall).
    Record,
}

impl Fault {
    pub fn of(e: &io::Error) -> Fault {
        match e.raw_os_error() {
            Some(
                libc::EINVAL
                | libc::ENAMETOOLONG
                | libc::ENOTDIR
                | libc::EISDIR
                | libc::EEXIST
                | libc::EILSEQ
                | libc::ELOOP
                // Too many subdirectories in one directory: many hosts
                // (real or not) filling OUT's top level; later hosts'
                // records are kept, not the collector stopped.
                | libc::EMLINK,
            ) => Fault::Record,
            Some(_) => Fault::Storage,
            // std refuses a path holding NUL before calling the kernel.
            None if e.kind() == io::ErrorKind::InvalidInput => Fault::Record,
            None => Fault::Storage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_out_and_errors_of_a_name() {
        for errno in [
            libc::ENOSPC,
            libc::EIO,
            libc::EROFS,
            libc::EDQUOT,
            libc::EACCES,
            libc::EMFILE,
        ] {
            assert_eq!(
                Fault::of(&io::Error::from_raw_os_error(errno)),
                Fault::Storage
            );
        }
        for errno in [
            libc::EINVAL,
            libc::ENAMETOOLONG,
            libc::ENOTDIR,
            libc::EISDIR,
            libc::EEXIST,
            libc::EILSEQ,
        ] {
            assert_eq!(
                Fault::of(&io::Error::from_raw_os_error(errno)),
                Fault::Record
            );
        }
        assert_eq!(
            Fault::of(&io::Error::other("no errno")),
            Fault::Storage,
            "unknown is OUT's"
        );
    }

    /// What the file system really answers for names a record can bring.
    #[test]
    fn real_refusals_are_a_records() {
        let dir = tempfile::tempdir().unwrap();
        let open = |rel: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.path().join(rel))
                .unwrap_err()
        };
        assert_eq!(Fault::of(&open("a\0b")), Fault::Record);
        assert_eq!(Fault::of(&open(&"x".repeat(300))), Fault::Record);
        std::fs::write(dir.path().join("file"), "").unwrap();
        assert_eq!(Fault::of(&open("file/inner")), Fault::Record);
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert_eq!(Fault::of(&open("d")), Fault::Record);
        let deep = std::fs::create_dir_all(dir.path().join("file/x/y")).unwrap_err();
        assert_eq!(Fault::of(&deep), Fault::Record);
        let long_path = vec!["y".repeat(200); 25].join("/");
        let e = std::fs::create_dir_all(dir.path().join(long_path)).unwrap_err();
        assert_eq!(Fault::of(&e), Fault::Record, "{e}");
    }
}
