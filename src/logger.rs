//! The shim's log: lines containerd copies into its own log, through the `log`
//! fifo it opens in the bundle. Writes never block: a line that does not fit
//! in a full fifo is dropped rather than stall an RPC.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;
use std::time::SystemTime;

struct Logger {
    out: Mutex<File>,
    id: String,
}

/// The daemon logs to the bundle's `log` fifo; `delete` to stderr, which
/// containerd reads back as the cleanup's warnings.
pub fn init(debug: bool, id: &str, to_stderr: bool) {
    let out = if to_stderr {
        OpenOptions::new().write(true).open("/dev/stderr")
    } else {
        OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open("log")
    };
    let Ok(out) = out.or_else(|_| OpenOptions::new().write(true).open("/dev/null")) else { return };
    let logger = Logger { out: Mutex::new(out), id: id.to_string() };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info });
    }
}

impl log::Log for Logger {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        shown(meta.target(), meta.level(), log::max_level())
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug | log::Level::Trace => "debug",
        };
        let msg = quoted(&record.args().to_string());
        let line = format!(
            "time=\"{}\" level={level} msg=\"{msg}\" runtime=io.containerd.myshim.v2 id={}\n",
            rfc3339(SystemTime::now()),
            self.id
        );
        if let Ok(mut f) = self.out.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// A logfmt value's inside: one line, its quotes and backslashes escaped
/// (an error quoting a path or a multi-line hook output stays one record).
fn quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// UTC RFC 3339 with microseconds, without a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Our own lines at the level set; dependencies' chatter (ttrpc,
/// libcgroups) only when debugging, their warnings always. The library
/// crate is `myshim`: its modules log as `myshim::...`.
fn shown(target: &str, level: log::Level, max: log::LevelFilter) -> bool {
    let ours = target == "myshim" || target.starts_with("myshim::") || target.starts_with("containerd_shim_myshim");
    (ours && level <= max) || level <= log::Level::Warn || max >= log::LevelFilter::Debug
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_392_000_123_456);
        assert_eq!(rfc3339(t), "2026-11-23T00:00:00.123456Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn messages_stay_one_logfmt_value() {
        assert_eq!(quoted(r#"mount "/data": bad"#), r#"mount \"/data\": bad"#);
        assert_eq!(quoted("hook said:\nline 2\\"), r"hook said:\nline 2\\");
    }

    #[test]
    fn our_info_lines_show_and_dependencies_only_warn() {
        use log::{Level, LevelFilter};
        assert!(shown("myshim::container::create", Level::Info, LevelFilter::Info));
        assert!(shown("containerd_shim_myshim_v2", Level::Info, LevelFilter::Info));
        assert!(!shown("ttrpc::asynchronous::server", Level::Info, LevelFilter::Info));
        assert!(shown("libcgroups::v2", Level::Warn, LevelFilter::Info));
        assert!(shown("ttrpc::asynchronous::server", Level::Debug, LevelFilter::Debug));
        assert!(!shown("myshim::x", Level::Debug, LevelFilter::Info));
    }
}
