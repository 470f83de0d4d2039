//! Deletes the network namespaces that dead rvs-testbed users left behind.

use std::process::ExitCode;

fn main() -> ExitCode {
    match rvs_testbed::cleanup_stale() {
        Ok(deleted) => {
            for name in deleted {
                println!("deleted {name}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvs-testbed-cleanup: {e:#}");
            ExitCode::FAILURE
        }
    }
}
