//! `berth network create|ls|inspect|rm|connect|disconnect`, and the hidden
//! `berth __dns NETWORK` (a network's name server) and `berth __netgc NETWORK`
//! (an empty network's teardown after a grace period).

use anyhow::Result;
use berth_engine::berth_net::CreateRequest;
use berth_engine::Engine;

use crate::cli::{DnsArgs, NetGcArgs, NetworkCommand};

pub fn run(engine: &Engine, cmd: NetworkCommand) -> Result<i32> {
    let nets = engine.networks();
    match cmd {
        NetworkCommand::Create(a) => {
            let c = nets.create(&CreateRequest {
                name: a.name,
                driver: a.driver,
                subnet: a.subnet,
                gateway: a.gateway,
                internal: a.internal,
            })?;
            println!("{}", c.name);
            Ok(0)
        }
        NetworkCommand::Ls(a) => {
            let json = super::json_format(&a.format)?;
            let list = nets.list()?;
            if json {
                let v: Vec<_> = list.iter().map(|(c, _)| c).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            println!(
                "{:<20} {:<8} {:<18} {:<15} {:<9} {:>10}",
                "NAME", "DRIVER", "SUBNET", "GATEWAY", "INTERNAL", "CONTAINERS"
            );
            for (c, l) in &list {
                println!(
                    "{:<20} {:<8} {:<18} {:<15} {:<9} {:>10}",
                    c.name,
                    c.driver.to_string(),
                    c.subnet.to_string(),
                    c.gateway.to_string(),
                    c.internal,
                    l.leases.len()
                );
            }
            Ok(0)
        }
        NetworkCommand::Inspect(a) => {
            let mut out = Vec::new();
            for n in &a.networks {
                let (config, leases) = nets.inspect(n)?;
                out.push(serde_json::json!({ "config": config, "leases": leases.leases }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        NetworkCommand::Rm(a) => {
            let mut code = 0;
            for n in &a.networks {
                match nets.remove(n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("berth: {:#}", anyhow::Error::from(e));
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        NetworkCommand::Connect(a) => {
            let att = engine.network_connect(&a.network, &a.container, a.ip)?;
            println!("{} {}", att.ifname, att.ip);
            Ok(0)
        }
        NetworkCommand::Disconnect(a) => {
            engine.network_disconnect(&a.network, &a.container)?;
            Ok(0)
        }
    }
}

pub fn dns(engine: &Engine, args: &DnsArgs) -> Result<i32> {
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    engine.networks().serve_dns(&args.network)?;
    Ok(0)
}

pub fn gc(engine: &Engine, args: &NetGcArgs) -> Result<i32> {
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    engine.networks().collect(&args.network, &args.token)?;
    Ok(0)
}
