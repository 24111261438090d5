//! The image configuration a stage builds up: the base image's config JSON
//! (unknown fields kept) changed by ENV, WORKDIR, USER, CMD, ... as Docker
//! does.

use serde_json::{Map, Value, json};

use crate::ast::{Command, Healthcheck, InstructionKind};

/// Docker's default `SHELL`.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// An OCI image configuration being built.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    value: Value,
    /// True when `Cmd` came from the base image (ENTRYPOINT then resets it).
    cmd_inherited: bool,
}

impl ImageConfig {
    /// The config of `FROM scratch` for `arch`.
    pub fn scratch(arch: &str) -> ImageConfig {
        ImageConfig {
            value: json!({
                "architecture": arch,
                "os": "linux",
                "config": {"Env": [format!("PATH={}", DEFAULT_PATH)]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
            cmd_inherited: false,
        }
    }

    /// A base image's config JSON.
    pub fn from_base(mut value: Value) -> ImageConfig {
        if !value.get("config").is_some_and(Value::is_object) {
            value["config"] = json!({});
        }
        let cmd_inherited = value["config"].get("Cmd").is_some_and(|c| !c.is_null());
        ImageConfig {
            value,
            cmd_inherited,
        }
    }

    /// The whole JSON.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The whole JSON, mutable.
    pub fn value_mut(&mut self) -> &mut Value {
        &mut self.value
    }

    fn cfg(&mut self) -> &mut Map<String, Value> {
        if !self.value["config"].is_object() {
            self.value["config"] = json!({});
        }
        self.value["config"]
            .as_object_mut()
            .expect("config is an object")
    }

    fn cfg_get(&self, key: &str) -> Option<&Value> {
        self.value.get("config").and_then(|c| c.get(key))
    }

    /// `Env` as pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.cfg_get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| match s.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (s.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets one `Env` variable, keeping the order of the others.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value.to_string(),
            None => env.push((key.to_string(), value.to_string())),
        }
        let list: Vec<Value> = env.iter().map(|(k, v)| json!(format!("{k}={v}"))).collect();
        self.cfg().insert("Env".into(), Value::Array(list));
    }

    /// `WorkingDir` (`/` when unset).
    pub fn workdir(&self) -> String {
        self.cfg_get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    /// `User` (empty when unset).
    pub fn user(&self) -> String {
        self.cfg_get("User")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// `Shell` (Docker's extension), else `/bin/sh -c`.
    pub fn shell(&self) -> Vec<String> {
        Some(self.cfg_strings("Shell"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    /// `OnBuild` triggers.
    pub fn onbuild(&self) -> Vec<String> {
        self.cfg_strings("OnBuild")
    }

    /// A config field holding a list of strings (empty when absent).
    fn cfg_strings(&self, key: &str) -> Vec<String> {
        self.cfg_get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drops the `OnBuild` triggers (a child image does not inherit them).
    pub fn clear_onbuild(&mut self) {
        self.cfg().remove("OnBuild");
    }

    /// The argv of `cmd`: exec form as is, shell form through `SHELL`.
    pub fn argv(&self, cmd: &Command) -> Vec<String> {
        match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    /// Adds `label`s.
    pub fn add_labels(&mut self, labels: &[(String, String)]) {
        let cfg = self.cfg();
        let map = cfg.entry("Labels").or_insert_with(|| json!({}));
        if !map.is_object() {
            *map = json!({});
        }
        let m = map.as_object_mut().expect("labels is an object");
        for (k, v) in labels {
            m.insert(k.clone(), json!(v));
        }
    }

    /// Sets the `created` time.
    pub fn set_created(&mut self, created: &str) {
        self.value["created"] = json!(created);
    }

    /// Applies a config-only instruction; returns false for instructions
    /// that change the filesystem (RUN, COPY, ADD, WORKDIR's directory) or
    /// nothing at all (ARG), which the executor handles.
    pub fn apply(&mut self, kind: &InstructionKind) -> bool {
        match kind {
            InstructionKind::Env(pairs) => {
                for (k, v) in pairs {
                    self.set_env(k, v);
                }
            }
            InstructionKind::Workdir(dir) => {
                let dir = resolve_workdir(&self.workdir(), dir);
                self.cfg().insert("WorkingDir".into(), json!(dir));
            }
            InstructionKind::User(u) => {
                self.cfg().insert("User".into(), json!(u));
            }
            InstructionKind::Cmd(c) => {
                let argv = self.argv(c);
                self.cfg().insert("Cmd".into(), json!(argv));
                self.cmd_inherited = false;
            }
            InstructionKind::Entrypoint(c) => {
                let argv = self.argv(c);
                self.cfg().insert("Entrypoint".into(), json!(argv));
                if self.cmd_inherited {
                    self.cfg().insert("Cmd".into(), Value::Null);
                    self.cmd_inherited = false;
                }
            }
            InstructionKind::Label(pairs) => self.add_labels(pairs),
            InstructionKind::Maintainer(m) => {
                self.add_labels(&[("maintainer".to_string(), m.clone())]);
            }
            InstructionKind::Expose(ports) => {
                let cfg = self.cfg();
                let map = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
                if !map.is_object() {
                    *map = json!({});
                }
                let m = map.as_object_mut().expect("ports is an object");
                for p in ports {
                    for port in p.start..=p.end {
                        m.insert(format!("{port}/{}", p.protocol.as_str()), json!({}));
                    }
                }
            }
            InstructionKind::Volume(vols) => {
                let cfg = self.cfg();
                let map = cfg.entry("Volumes").or_insert_with(|| json!({}));
                if !map.is_object() {
                    *map = json!({});
                }
                let m = map.as_object_mut().expect("volumes is an object");
                for v in vols {
                    m.insert(v.clone(), json!({}));
                }
            }
            InstructionKind::StopSignal(s) => {
                self.cfg().insert("StopSignal".into(), json!(s));
            }
            InstructionKind::Shell(s) => {
                self.cfg().insert("Shell".into(), json!(s));
            }
            InstructionKind::Healthcheck(h) => {
                let v = match h {
                    Healthcheck::None => json!({"Test": ["NONE"]}),
                    Healthcheck::Check {
                        command,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let test = match command {
                            Command::Exec(v) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        };
                        let mut m = Map::new();
                        m.insert("Test".into(), json!(test));
                        let ns = |d: &Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64);
                        for (k, d) in [
                            ("Interval", interval),
                            ("Timeout", timeout),
                            ("StartPeriod", start_period),
                            ("StartInterval", start_interval),
                        ] {
                            if let Some(n) = ns(d) {
                                m.insert(k.into(), json!(n));
                            }
                        }
                        if let Some(r) = retries {
                            m.insert("Retries".into(), json!(r));
                        }
                        Value::Object(m)
                    }
                };
                self.cfg().insert("Healthcheck".into(), v);
            }
            InstructionKind::Onbuild(o) => {
                let cfg = self.cfg();
                let list = cfg.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                list.as_array_mut()
                    .expect("onbuild is an array")
                    .push(json!(o.raw));
            }
            _ => return false,
        }
        true
    }
}

/// PATH of a scratch image, as Docker sets it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `WORKDIR dir` relative to the current one, cleaned.
pub fn resolve_workdir(current: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{current}/{dir}")
    };
    let mut out: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir_resolution() {
        assert_eq!(resolve_workdir("/", "app"), "/app");
        assert_eq!(resolve_workdir("/app", "src/../lib"), "/app/lib");
        assert_eq!(resolve_workdir("/app", "/x/"), "/x");
    }

    #[test]
    fn entrypoint_resets_inherited_cmd() {
        let mut c = ImageConfig::from_base(json!({"config": {"Cmd": ["sh"]}}));
        c.apply(&InstructionKind::Entrypoint(Command::Exec(vec![
            "/app".into(),
        ])));
        assert_eq!(c.value()["config"]["Cmd"], Value::Null);
        c.apply(&InstructionKind::Cmd(Command::Shell("run it".into())));
        c.apply(&InstructionKind::Entrypoint(Command::Exec(vec![
            "/b".into(),
        ])));
        assert_eq!(
            c.value()["config"]["Cmd"],
            json!(["/bin/sh", "-c", "run it"])
        );
    }

    #[test]
    fn env_keeps_order_and_overrides() {
        let mut c = ImageConfig::scratch("amd64");
        c.set_env("A", "1");
        c.set_env("PATH", "/x");
        assert_eq!(
            c.env(),
            vec![("PATH".into(), "/x".into()), ("A".into(), "1".into())]
        );
    }
}
