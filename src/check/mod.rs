//! `containerd-shim-myshim-v2 check [--json] [--strict] BUNDLE_DIR|CONFIG_JSON`:
//! the validation Create runs, and the hook plan Create, Start and Delete
//! follow, explained offline. Needs no containerd and no root.
//!
//! Exit status: 0 ok, 1 warnings (only with `--strict`), 2 errors.

mod report;

use report::build;

const USAGE: &str = "usage: containerd-shim-myshim-v2 check [--json] [--strict] BUNDLE_DIR|CONFIG_JSON";

/// `args`: what follows `check` on the command line.
pub fn main(args: &[String]) -> i32 {
    let (mut json, mut strict, mut target) = (false, false, None);
    for a in args {
        match a.as_str() {
            "--json" => json = true,
            "--strict" => strict = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            flag if flag.starts_with('-') => {
                eprintln!("containerd-shim-myshim-v2 check: unknown flag {flag:?}\n{USAGE}");
                return 2;
            }
            path if target.is_none() => target = Some(path.to_string()),
            extra => {
                eprintln!(
                    "containerd-shim-myshim-v2 check: one bundle or config at a time, not also {extra:?}\n{USAGE}"
                );
                return 2;
            }
        }
    }
    let Some(target) = target else {
        eprintln!("{USAGE}");
        return 2;
    };
    let report = build(&target);
    let out = if json { report.json() } else { report.text() };
    print!("{out}");
    report.exit_code(strict)
}
