//! Layer-7 dispatch (`rvs_l7_server` in keepalived.conf): rvsd terminates the client's TCP
//! connection on the VIP itself, routes each HTTP/1.1 request by its head (or a TLS connection by
//! its server name, without decrypting it) to a pool, and a real server in the pool by the IPVS
//! schedulers and keepalived's checkers, as the seeds' KTCPVS and TCPHA did in the kernel.
//!
//! - [`head`]: request and response heads, judged and rewritten; [`body`]: bodies relayed as
//!   framed; [`proxy_v2`]: the PROXY protocol header;
//! - [`site`]: one L7 server's rules and counters; [`pool`]: health, persistence, scheduling and
//!   idle connections of a pool;
//! - [`http`] and [`tls`]: one client connection in each mode;
//! - [`task`]: listeners, checkers and SIGHUP; [`status`]: what rvsadm and the monitor show.

pub mod body;
pub mod head;
pub mod http;
pub mod pool;
pub mod proxy_v2;
pub mod site;
pub mod status;
pub mod task;
pub mod tls;

pub use status::L7Status;
pub use task::L7Task;
