//! The engine's side of networking (`berth-net` does the work): before the OCI
//! config is saved, a container on a named network gets its own network
//! namespace file joined to the network (veth, address, routes, published ports,
//! name server), its path in the config's `linux.namespaces`, and `/etc/hosts` and
//! `/etc/resolv.conf` bind-mounted from its directory; `container:NAME` joins the
//! namespace of another. `cleanup` detaches it all.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use berth_image::RunConfig;
use berth_net::{AttachRequest, Attachment, HostEntry, NetError, Networks, PortSpec};
use oci_spec::runtime::{MountBuilder, Spec};

use crate::engine::Engine;
use crate::error::{io_err, EngineError};
use crate::spec::Network;

/// The network flags of `berth run` beyond `--network` and `--hostname`.
#[derive(Debug, Clone, Default)]
pub struct NetFlags {
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `-p`.
    pub publish: Vec<PortSpec>,
    /// `-P`: every port the image exposes, on any free host port.
    pub publish_all: bool,
    /// `--dns`.
    pub dns: Vec<IpAddr>,
    /// `--add-host`.
    pub add_hosts: Vec<HostEntry>,
}

/// `berth-net`'s error as the engine's.
pub(crate) fn net_err(action: impl Into<String>) -> impl FnOnce(NetError) -> EngineError {
    let action = action.into();
    move |source| EngineError::Network { action, source }
}

impl Engine {
    /// The networks under this root (name servers run by this executable).
    pub fn networks(&self) -> Networks {
        Networks::new(self.root(), std::env::current_exe().ok())
    }

    /// Joins container `id` to what `network` names and points `spec` at its
    /// namespace; returns its attachments (for the record). The caller's guard
    /// undoes it through `cleanup` on a later error.
    pub(crate) fn connect(
        &self,
        id: &str,
        name: &str,
        dir: &Path,
        image: &RunConfig,
        flags: &crate::RunFlags,
        spec: &mut Spec,
    ) -> Result<Vec<Attachment>, EngineError> {
        let f = &flags.net;
        let wants_net = f.ip.is_some() || !f.publish.is_empty() || f.publish_all;
        let (netns, attached) = match &flags.network {
            Network::None | Network::Host if wants_net => {
                return Err(EngineError::Invalid(
                    "--ip, -p and -P need --network with a network's name".into(),
                ))
            }
            Network::None | Network::Host => return Ok(vec![]),
            Network::Container(other) => {
                if wants_net {
                    return Err(EngineError::Invalid(
                        "--ip, -p and -P do not go with --network container:".into(),
                    ));
                }
                let other = self.find(other)?;
                let path = self.networks().netns_path(&other.id);
                if !path.exists() {
                    return Err(EngineError::Invalid(format!(
                        "container {} has no network namespace of berth's to join",
                        other.name
                    )));
                }
                let other_dir = self.root().join("containers").join(&other.id);
                bind_etc(spec, &other_dir)?;
                (path, vec![])
            }
            Network::Named(net) => {
                let nets = self.networks();
                if net == berth_net::DEFAULT_NETWORK {
                    nets.ensure_default()
                        .map_err(net_err("making the default network"))?;
                }
                let mut ports = f.publish.clone();
                if f.publish_all {
                    let keys: Vec<String> = image
                        .exposed_ports
                        .as_ref()
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    ports.extend(berth_net::ports::exposed(&keys));
                }
                let hostname = spec.hostname().clone().unwrap_or_default();
                let mut names = vec![name.to_owned()];
                if hostname != name && !hostname.is_empty() {
                    names.push(hostname.clone());
                }
                let path = nets.netns_path(id);
                let req = AttachRequest {
                    container: id.to_owned(),
                    names: names.clone(),
                    network: net.clone(),
                    ip: f.ip,
                    ports,
                };
                let a = nets
                    .attach(&req, &path, true)
                    .map_err(net_err(format!("joining network {net}")))?;
                write_etc(dir, &a, &names, f)?;
                bind_etc(spec, dir)?;
                (path, vec![a])
            }
        };
        crate::spec::set_network_namespace(spec, Some(&netns))?;
        Ok(attached)
    }

    /// Takes container `id` off its networks and removes its namespace file.
    /// For a VM on a network: the address its guest takes over from `a.ifname`
    /// (see `backend::vm::ANNOTATION_NETWORK`).
    pub(crate) fn vm_network(
        &self,
        a: &Attachment,
    ) -> Result<crate::backend::vm::VmNetwork, EngineError> {
        let (config, _) = self
            .networks()
            .inspect(&a.network)
            .map_err(net_err(format!("reading network {}", a.network)))?;
        Ok(crate::backend::vm::VmNetwork {
            ifname: a.ifname.clone(),
            address: a.ip,
            prefix: a.prefix,
            gateway: (!config.internal).then_some(a.gateway),
        })
    }

    pub(crate) fn disconnect(&self, id: &str) -> Result<(), EngineError> {
        self.networks()
            .detach(id, None)
            .map_err(net_err(format!("leaving the networks of container {id}")))
    }
}

fn write_etc(
    dir: &Path,
    a: &Attachment,
    names: &[String],
    f: &NetFlags,
) -> Result<(), EngineError> {
    let hosts = berth_net::etc::hosts(Some(a.ip), names, &f.add_hosts);
    // The default network has no name server of its own (as Docker's): the
    // host's, then `--dns`.
    let resolv = if a.network == berth_net::DEFAULT_NETWORK {
        let mut servers = f.dns.clone();
        servers.splice(0..0, berth_net::etc::host_nameservers());
        berth_net::etc::resolv_conf(None, &servers)
    } else {
        berth_net::etc::resolv_conf(Some(a.gateway), &f.dns)
    };
    for (file, text) in [("hosts", hosts), ("resolv.conf", resolv)] {
        let path = dir.join(file);
        fs::write(&path, text).map_err(io_err("writing", &path))?;
    }
    Ok(())
}

/// Bind-mounts `dir/hosts` and `dir/resolv.conf` onto the container's /etc.
fn bind_etc(spec: &mut Spec, dir: &Path) -> Result<(), EngineError> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for file in ["hosts", "resolv.conf"] {
        let source: PathBuf = dir.join(file);
        mounts.push(
            MountBuilder::default()
                .destination(format!("/etc/{file}"))
                .typ("bind")
                .source(source)
                .options(vec!["rbind".into(), "rw".into()])
                .build()
                .map_err(|e| EngineError::Invalid(format!("/etc/{file}: {e}")))?,
        );
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

impl Engine {
    /// `network connect`: joins an existing container (one with a namespace of
    /// berth's) to another network; a running one sees the new interface at once.
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        ip: Option<Ipv4Addr>,
    ) -> Result<Attachment, EngineError> {
        let _lock = crate::lock::EngineLock::acquire(self.root())?;
        let mut record = self.find(container)?;
        let nets = self.networks();
        let path = nets.netns_path(&record.id);
        if !path.exists() {
            return Err(EngineError::Invalid(format!(
                "container {} was not created on a network (--network NAME)",
                record.name
            )));
        }
        if record.isolation == crate::Isolation::Vm {
            return Err(EngineError::Invalid(format!(
                "container {} is a VM: its guest has one network device, for the \
                 network it was created on",
                record.name
            )));
        }
        if record.networks.iter().any(|a| a.network == network) {
            return Err(EngineError::Invalid(format!(
                "container {} is already on network {network}",
                record.name
            )));
        }
        let req = AttachRequest {
            container: record.id.clone(),
            names: vec![record.name.clone()],
            network: network.to_owned(),
            ip,
            ports: vec![],
        };
        let a = nets
            .attach(&req, &path, false)
            .map_err(net_err(format!("joining network {network}")))?;
        record.networks.push(a.clone());
        record.save(&self.root().join("containers").join(&record.id))?;
        Ok(a)
    }

    /// `network disconnect`.
    pub fn network_disconnect(&self, network: &str, container: &str) -> Result<(), EngineError> {
        let _lock = crate::lock::EngineLock::acquire(self.root())?;
        let mut record = self.find(container)?;
        if !record.networks.iter().any(|a| a.network == network) {
            return Err(EngineError::Invalid(format!(
                "container {} is not on network {network}",
                record.name
            )));
        }
        self.networks()
            .detach(&record.id, Some(network))
            .map_err(net_err(format!("leaving network {network}")))?;
        record.networks.retain(|a| a.network != network);
        record.save(&self.root().join("containers").join(&record.id))
    }

    /// `berth port`: the container's published ports.
    pub fn ports(&self, container: &str) -> Result<Vec<berth_net::PortMapping>, EngineError> {
        let record = self.find(container)?;
        Ok(self
            .networks()
            .attachments(&record.id)
            .into_iter()
            .flat_map(|a| a.ports)
            .collect())
    }
}
