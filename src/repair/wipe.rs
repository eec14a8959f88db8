//! The wipe: what it deletes runs in a short-lived helper container from the target's own
//! image (`--volumes-from`, no network), as a fixed shell script whose file names come as
//! arguments — never parsed by the shell, never followed through a link.

use crate::source::Tree;

use super::plan;

/// The helper's script. `$1` is the TLS directory, `$2` `trigger` to write K3s's
/// regenerate trigger (only K3s that honours it gets it), the rest the files to delete.
/// - a file under a directory that is a symbolic link is refused (exit 3): a planted link must
///   not lead the deletion elsewhere;
/// - `rm` removes a link itself, never its target;
/// - the regenerate trigger is created with noclobber (`O_EXCL`) after removing whatever stood
///   there, so a link named `dynamic-cert-regenerate` cannot make it truncate another file.
pub const SCRIPT: &str = r#"set -e
d="$1"; trigger="$2"; shift 2
cd "$d"
for f in "$@"; do
  p="${f%/*}"
  if [ "$p" != "$f" ] && [ -L "$p" ]; then echo "refusing $f: $p is a symbolic link" >&2; exit 3; fi
done
for f in "$@"; do rm -f -- "$f"; done
if [ "$trigger" = trigger ]; then
  rm -f -- dynamic-cert-regenerate
  set -C
  : > dynamic-cert-regenerate
fi
echo "wiped $#""#;

/// The helper's command line.
pub fn command(tls_path: &str, delete: &[String], trigger: bool) -> Vec<String> {
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        SCRIPT.into(),
        "rancher-cert-guard-wipe".into(),
        tls_path.to_string(),
        if trigger { "trigger" } else { "no-trigger" }.into(),
    ];
    cmd.extend(delete.iter().cloned());
    cmd
}

/// What must be byte-identical after any step: CA certificates, CA keys, service keys.
pub fn protected_snapshot(tree: &Tree) -> Vec<(String, Vec<u8>)> {
    tree.files()
        .filter(|(p, _)| plan::is_protected(p))
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect()
}

/// Every protected file that existed before is still there, byte for byte. New ones may
/// appear: K3s mints a CA that was already missing before the repair.
pub fn protected_intact(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) -> bool {
    before.iter().all(|b| after.contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The script, run by the host's `sh` on a scratch directory, with a planted link.
    #[test]
    fn the_script_never_writes_or_deletes_through_a_link() {
        let root = tempfile::tempdir().unwrap();
        let tls = root.path().join("tls");
        std::fs::create_dir_all(tls.join("etcd")).unwrap();
        std::fs::create_dir_all(root.path().join("db")).unwrap();
        let victim = root.path().join("db/state.db");
        std::fs::write(&victim, b"datastore").unwrap();
        std::fs::write(tls.join("client-admin.crt"), b"x").unwrap();
        std::os::unix::fs::symlink("../db/state.db", tls.join("dynamic-cert-regenerate")).unwrap();
        let run = |files: &[&str]| {
            let files: Vec<String> = files.iter().map(|s| s.to_string()).collect();
            let cmd = command(tls.to_str().unwrap(), &files, true);
            Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap()
        };
        let o = run(&["client-admin.crt", "missing.crt"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"datastore",
            "victim untouched"
        );
        assert!(!tls.join("client-admin.crt").exists());
        let trig = std::fs::symlink_metadata(tls.join("dynamic-cert-regenerate")).unwrap();
        assert!(trig.file_type().is_file() && trig.len() == 0);

        // A directory replaced by a link: refused, nothing deleted through it.
        std::fs::remove_dir(tls.join("etcd")).unwrap();
        std::fs::write(root.path().join("db/client.crt"), b"keep").unwrap();
        std::os::unix::fs::symlink("../db", tls.join("etcd")).unwrap();
        let o = run(&["etcd/client.crt"]);
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(
            std::fs::read(root.path().join("db/client.crt")).unwrap(),
            b"keep"
        );
    }
}
