//! `berth rmi [-f] IMAGE...`: one line per name removed and per image deleted,
//! like docker; exit 1 if any image could not be removed.

use anyhow::Result;
use berth_engine::Engine;

use crate::cli::RmiArgs;

pub fn run(engine: &Engine, args: &RmiArgs) -> Result<i32> {
    let mut code = 0;
    for image in &args.images {
        match engine.remove_image(image, args.force) {
            Ok(removed) => {
                for c in &removed.containers {
                    println!("Removed container: {c}");
                }
                for name in &removed.untagged {
                    println!("Untagged: {name}");
                }
                if let Some(d) = &removed.deleted {
                    println!("Deleted: {d}");
                }
            }
            Err(e) => {
                eprintln!("berth: {:#}", anyhow::Error::from(e));
                code = 1;
            }
        }
    }
    Ok(code)
}
