//! The shim's command line as containerd writes it (Go `flag` style:
//! `-namespace ns -address a -publish-binary b -id x [-debug] start`).

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    pub namespace: String,
    pub address: String,
    pub publish_binary: String,
    pub id: String,
    pub bundle: Option<String>,
    pub debug: bool,
    pub action: String,
}

const BOOL_FLAGS: &[&str] = &["debug", "v", "version", "info"];

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<ShimArgs, String> {
    let mut out = ShimArgs::default();
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if !out.action.is_empty() {
                return Err(format!("unexpected argument {arg:?} after {:?}", out.action));
            }
            out.action = arg;
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if BOOL_FLAGS.contains(&name) {
            let on = inline.as_deref().is_none_or(|v| v == "true" || v == "1");
            match name {
                "debug" => out.debug = on,
                "info" => out.action = "info".into(),
                _ => out.action = "version".into(),
            }
            continue;
        }
        let known = matches!(name, "namespace" | "address" | "publish-binary" | "id" | "bundle");
        let value = match inline {
            Some(v) => v,
            // A flag a newer containerd adds may be boolean: it takes no
            // action word (nor another flag) as its value.
            None if !known && it.peek().is_none_or(|next| next.starts_with('-') || is_action(next)) => continue,
            None => it.next().ok_or_else(|| format!("flag -{name} needs a value"))?,
        };
        match name {
            "namespace" => out.namespace = value,
            "address" => out.address = value,
            "publish-binary" => out.publish_binary = value,
            "id" => out.id = value,
            "bundle" => out.bundle = Some(value),
            // Flags newer containerds may add are not ours to refuse.
            _ => {}
        }
    }
    Ok(out)
}

fn is_action(word: &str) -> bool {
    matches!(word, "start" | "delete" | "check" | "features")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ShimArgs, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn containerd_16_start_line() {
        let a = p("-namespace default -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id c1 -debug start")
            .expect("parse");
        assert_eq!(a.namespace, "default");
        assert_eq!(a.address, "/run/containerd/containerd.sock");
        assert_eq!(a.publish_binary, "/usr/bin/containerd");
        assert_eq!(a.id, "c1");
        assert!(a.debug);
        assert_eq!(a.action, "start");
    }

    #[test]
    fn equals_form_double_dash_and_unknown_flags() {
        let a = p("--namespace=k8s.io -id=x -bundle /b -future-flag v delete").expect("parse");
        assert_eq!((a.namespace.as_str(), a.id.as_str(), a.bundle.as_deref()), ("k8s.io", "x", Some("/b")));
        assert_eq!(a.action, "delete");
        assert!(!a.debug);
    }

    #[test]
    fn errors() {
        assert_eq!(p("-id").unwrap_err(), "flag -id needs a value");
        assert!(p("start delete").is_err());
        assert_eq!(p("-v").expect("v").action, "version");
    }

    #[test]
    fn an_unknown_boolean_flag_does_not_eat_the_action() {
        let a = p("-namespace n -id x -new-bool start").expect("parse");
        assert_eq!((a.id.as_str(), a.action.as_str()), ("x", "start"));
        let a = p("-new-bool -id x delete").expect("parse");
        assert_eq!((a.id.as_str(), a.action.as_str()), ("x", "delete"));
    }
}
