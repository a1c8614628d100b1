//! Loading and checking a bundle's config.json.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// What is wrong with a bundle's configuration.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: field `{field}`: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// A validated config with its rootfs resolved to an absolute, canonical path.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub spec: Spec,
    /// The bytes the spec was parsed from (kept as the container's config copy).
    pub raw: Vec<u8>,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
}

/// Read `bundle/config.json`, naming the field on a type error.
pub fn load(bundle: &Path) -> Result<LoadedSpec, SpecError> {
    let bundle = bundle.canonicalize().map_err(|source| SpecError::Read {
        path: bundle.to_path_buf(),
        source,
    })?;
    let path = bundle.join("config.json");
    let raw = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let spec = parse(raw.as_slice(), &path)?;
    let rootfs = resolve_rootfs(&spec, &bundle, &path)?;
    let loaded = LoadedSpec {
        spec,
        raw,
        bundle,
        rootfs,
    };
    validate(&loaded, &path)?;
    Ok(loaded)
}

/// Parse a spec from JSON, reporting the path of the offending field.
pub fn parse(reader: impl std::io::Read, path: &Path) -> Result<Spec, SpecError> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        SpecError::Parse {
            path: path.to_path_buf(),
            field: if field == "." {
                "(document)".into()
            } else {
                field
            },
            message: e.into_inner().to_string(),
        }
    })
}

fn resolve_rootfs(spec: &Spec, bundle: &Path, path: &Path) -> Result<PathBuf, SpecError> {
    let invalid = |message: String| SpecError::Invalid {
        path: path.to_path_buf(),
        field: "root.path".into(),
        message,
    };
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("missing: the bundle has no root filesystem".into()))?;
    let joined = bundle.join(root.path());
    let rootfs = joined
        .canonicalize()
        .map_err(|e| invalid(format!("{}: {e}", joined.display())))?;
    if !rootfs.is_dir() {
        return Err(invalid(format!("{} is not a directory", rootfs.display())));
    }
    Ok(rootfs)
}

fn validate(loaded: &LoadedSpec, path: &Path) -> Result<(), SpecError> {
    let invalid = |field: &str, message: String| SpecError::Invalid {
        path: path.to_path_buf(),
        field: field.into(),
        message,
    };
    let spec = &loaded.spec;
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("unsupported version {:?}: need 1.x", spec.version()),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing: nothing to run".into()))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(invalid("process.args", "empty: nothing to run".into())),
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            if !m.destination().is_absolute() {
                return Err(invalid(
                    &format!("mounts[{i}].destination"),
                    format!("{:?} is not an absolute path", m.destination()),
                ));
            }
        }
    }
    let mut rlimit_types = Vec::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        if rlimit_types.contains(&r.typ()) {
            return Err(invalid(
                &format!("process.rlimits[{i}].type"),
                "the same rlimit type appears twice".into(),
            ));
        }
        rlimit_types.push(r.typ());
    }
    validate_hooks(spec, &invalid)?;
    refuse_unsupported(spec, &invalid)?;
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let mut seen = Vec::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if seen.contains(&ns.typ()) {
            return Err(invalid(
                &format!("linux.namespaces[{i}].type"),
                format!("namespace {} appears twice", ns.typ()),
            ));
        }
        seen.push(ns.typ());
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(
                    &format!("linux.namespaces[{i}].path"),
                    format!("{p:?} is not an absolute path"),
                ));
            }
        }
    }
    let has_userns = seen.contains(&LinuxNamespaceType::User);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !has_userns {
        return Err(invalid(
            "linux.uidMappings",
            "mappings given without a user namespace".into(),
        ));
    }
    if linux.time_offsets().is_some() && !seen.contains(&LinuxNamespaceType::Time) {
        return Err(invalid(
            "linux.timeOffsets",
            "offsets given without a time namespace".into(),
        ));
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            if key.is_empty() || key.contains("..") || key.contains('/') && key.contains('.') {
                return Err(invalid(
                    &format!("linux.sysctl.{key}"),
                    "not a valid sysctl name".into(),
                ));
            }
        }
    }
    if let Some(cg) = linux.cgroups_path() {
        if cg
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(invalid(
                "linux.cgroupsPath",
                format!("{} contains '..'", cg.display()),
            ));
        }
    }
    Ok(())
}

type Invalid<'a> = dyn Fn(&str, String) -> SpecError + 'a;

/// Hook paths are absolute and timeouts positive.
fn validate_hooks(spec: &Spec, invalid: &Invalid<'_>) -> Result<(), SpecError> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    #[allow(deprecated)]
    let stages = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (stage, list) in stages {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(invalid(
                    &format!("hooks.{stage}[{i}].path"),
                    format!("{:?} is not an absolute path", hook.path()),
                ));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(invalid(
                    &format!("hooks.{stage}[{i}].timeout"),
                    "must be greater than zero".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Settings the spec says a runtime must apply, which berth does not implement yet:
/// refusing them is honest; ignoring them would run the container differently.
fn refuse_unsupported(spec: &Spec, invalid: &Invalid<'_>) -> Result<(), SpecError> {
    let unsupported =
        |field: &str| Err(invalid(field, "not supported by berth-runtime yet".into()));
    if let Some(p) = spec.process() {
        if p.scheduler().is_some() {
            return unsupported("process.scheduler");
        }
        if p.io_priority().is_some() {
            return unsupported("process.ioPriority");
        }
        if p.exec_cpu_affinity().is_some() {
            return unsupported("process.execCPUAffinity");
        }
    }
    if let Some(l) = spec.linux() {
        if l.personality().is_some() {
            return unsupported("linux.personality");
        }
        if l.intel_rdt().is_some() {
            return unsupported("linux.intelRdt");
        }
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return unsupported("linux.netDevices");
        }
        if l.memory_policy().is_some() {
            return unsupported("linux.memoryPolicy");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Spec, SpecError> {
        parse(s.as_bytes(), Path::new("/b/config.json"))
    }

    #[test]
    fn names_the_field_with_a_wrong_type() {
        let err = parse_str(
            r#"{"ociVersion":"1.2.0","process":{"cwd":"/","user":{"uid":"zero","gid":0}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("process.user.uid"), "{err}");
        assert!(err.contains("/b/config.json"), "{err}");
    }

    #[test]
    fn names_an_unknown_namespace_type() {
        let err = parse_str(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
    }

    #[test]
    fn malformed_json_is_reported() {
        let err = parse_str("{not json").unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    fn check_str(json: &str) -> Result<(), SpecError> {
        let spec = parse_str(json).unwrap();
        let loaded = LoadedSpec {
            spec,
            raw: Vec::new(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
        };
        validate(&loaded, Path::new("/b/config.json"))
    }

    const PROC: &str = r#""process":{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"]"#;

    #[test]
    fn duplicate_rlimits_bad_hooks_and_unsupported_fields_are_refused() {
        let dup = format!(
            r#"{{"ociVersion":"1.2.0",{PROC},"rlimits":[{{"type":"RLIMIT_NOFILE","soft":1,"hard":1}},{{"type":"RLIMIT_NOFILE","soft":2,"hard":2}}]}}}}"#
        );
        assert!(check_str(&dup)
            .unwrap_err()
            .to_string()
            .contains("process.rlimits[1].type"));
        let rel = format!(
            r#"{{"ociVersion":"1.2.0",{PROC}}},"hooks":{{"poststop":[{{"path":"rel/hook"}}]}}}}"#
        );
        assert!(check_str(&rel)
            .unwrap_err()
            .to_string()
            .contains("hooks.poststop[0].path"));
        let zero = format!(
            r#"{{"ociVersion":"1.2.0",{PROC}}},"hooks":{{"prestart":[{{"path":"/h","timeout":0}}]}}}}"#
        );
        assert!(check_str(&zero)
            .unwrap_err()
            .to_string()
            .contains("hooks.prestart[0].timeout"));
        let pers = format!(
            r#"{{"ociVersion":"1.2.0",{PROC}}},"linux":{{"personality":{{"domain":"LINUX32"}}}}}}"#
        );
        assert!(check_str(&pers)
            .unwrap_err()
            .to_string()
            .contains("linux.personality"));
        let ok = format!(r#"{{"ociVersion":"1.2.0",{PROC}}}}}"#);
        check_str(&ok).unwrap();
    }
}
