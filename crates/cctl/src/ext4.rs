//! `cctl ext4 ls|cat|stat`: inspect an ext4 image without mounting it.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use containerization_error::{Code, Result, ResultExt};
use containerization_ext4::{Ext4, FileType, Stat, Timestamp};

/// `cctl ext4 ...`
#[derive(Debug, Subcommand)]
pub enum Ext4Command {
    /// List a directory (like `ls -la`).
    Ls(PathArgs),
    /// Write a file's contents to stdout.
    Cat(PathArgs),
    /// Show an entry's inode details.
    Stat(PathArgs),
}

/// An image and a path inside it.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// The ext4 image.
    pub image: PathBuf,
    /// Absolute path inside the image.
    #[arg(default_value = "/")]
    pub path: PathBuf,
}

/// Runs a `cctl ext4` command.
pub fn run(cmd: Ext4Command) -> Result<()> {
    match cmd {
        Ext4Command::Ls(a) => ls(a),
        Ext4Command::Cat(a) => cat(a),
        Ext4Command::Stat(a) => stat(a),
    }
}

fn type_char(t: FileType) -> char {
    match t {
        FileType::File => '-',
        FileType::Dir => 'd',
        FileType::Symlink => 'l',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
    }
}

/// `drwxr-xr-x`-style mode string including setuid/setgid/sticky.
fn mode_string(st: &Stat) -> String {
    let m = st.mode;
    let mut s = String::new();
    s.push(type_char(st.file_type));
    let bit = |mask: u16, c: char| if m & mask != 0 { c } else { '-' };
    let exec = |x: u16, special: u16, set: char, unset: char| match (m & x != 0, m & special != 0) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(exec(0o100, 0o4000, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(exec(0o010, 0o2000, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(exec(0o001, 0o1000, 't', 'T'));
    s
}

fn time_string(t: Timestamp) -> String {
    format!("{}.{:09}", t.secs, t.nanos)
}

fn ls(a: PathArgs) -> Result<()> {
    let fs = Ext4::open(&a.image)?;
    let mut entries = fs.read_dir(&a.path)?;
    entries.sort_by(|x, y| x.name.cmp(&y.name));
    let mut out = std::io::stdout().lock();
    for e in entries {
        let st = fs.stat_inode(e.ino)?;
        let size = match st.file_type {
            FileType::CharDevice | FileType::BlockDevice => format!("{}, {}", st.rdev.0, st.rdev.1),
            _ => st.size.to_string(),
        };
        let mut line = format!(
            "{} {:>3} {:>5} {:>5} {:>10} {} ",
            mode_string(&st),
            st.nlink,
            st.uid,
            st.gid,
            size,
            time_string(st.mtime)
        )
        .into_bytes();
        line.extend_from_slice(e.name.as_bytes());
        if st.file_type == FileType::Symlink {
            let target = fs.read_link(a.path.join(&e.name))?;
            line.extend_from_slice(b" -> ");
            line.extend_from_slice(target.as_os_str().as_bytes());
        }
        line.push(b'\n');
        out.write_all(&line)
            .context(Code::InternalError, "writing to stdout")?;
    }
    Ok(())
}

fn cat(a: PathArgs) -> Result<()> {
    let fs = Ext4::open(&a.image)?;
    let mut r = fs.open_file(&a.path)?;
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut r, &mut out).context(Code::InternalError, "writing to stdout")?;
    Ok(())
}

fn stat(a: PathArgs) -> Result<()> {
    let fs = Ext4::open(&a.image)?;
    let st = fs.stat(&a.path)?;
    let xattrs = fs.xattrs(&a.path)?;
    let mut o = String::new();
    o.push_str(&format!("  Path: {}\n", a.path.display()));
    o.push_str(&format!(" Inode: {}\n", st.ino));
    o.push_str(&format!("  Type: {:?}\n", st.file_type));
    o.push_str(&format!("  Mode: {:04o} ({})\n", st.mode, mode_string(&st)));
    o.push_str(&format!(" Links: {}\n", st.nlink));
    o.push_str(&format!("   Uid: {}\n   Gid: {}\n", st.uid, st.gid));
    o.push_str(&format!(
        "  Size: {}\nBlocks: {} (512-byte)\n",
        st.size, st.sectors
    ));
    if matches!(st.file_type, FileType::CharDevice | FileType::BlockDevice) {
        o.push_str(&format!("Device: {}, {}\n", st.rdev.0, st.rdev.1));
    }
    if st.file_type == FileType::Symlink {
        o.push_str(&format!("Target: {}\n", fs.read_link(&a.path)?.display()));
    }
    o.push_str(&format!(
        "Access: {}\nModify: {}\nChange: {}\n Birth: {}\n",
        time_string(st.atime),
        time_string(st.mtime),
        time_string(st.ctime),
        time_string(st.crtime)
    ));
    o.push_str(&format!(" Flags: {:#x}\n", st.flags));
    for (k, v) in xattrs {
        let shown = match std::str::from_utf8(&v) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
            _ => format!(
                "0x{}",
                v.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        };
        o.push_str(&format!(" Xattr: {k}={shown}\n"));
    }
    std::io::stdout()
        .write_all(o.as_bytes())
        .context(Code::InternalError, "writing to stdout")
}
