//! The README's "Exit codes" table says exactly what `exit::TABLE` (the one module that decides
//! exit codes) says: every code a command can exit with has its cell, and no cell is empty-handed.

use std::collections::BTreeSet;

use rancher_cert_guard::exit::TABLE;

#[test]
fn the_readme_exit_code_table_matches_the_exit_module() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("README has an Exit codes section");
    // The first table of the section.
    let mut lines = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split('|')
        .map(|c| c.trim().to_string())
        .collect();
    let codes: Vec<Option<u8>> = header.iter().map(|h| h.parse().ok()).collect();
    let mut in_readme = BTreeSet::new();
    for row in lines.skip(1) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(cmd) = cells.get(1).and_then(|c| c.split('`').nth(1)) else {
            continue;
        };
        for (i, cell) in cells.iter().enumerate() {
            if let Some(Some(code)) = codes.get(i) {
                if !cell.is_empty() {
                    in_readme.insert((cmd.to_string(), *code));
                }
            }
        }
    }
    let in_code: BTreeSet<(String, u8)> =
        TABLE.iter().map(|(c, n, _)| (c.to_string(), *n)).collect();
    assert_eq!(in_readme, in_code, "README (left) vs exit::TABLE (right)");
}
