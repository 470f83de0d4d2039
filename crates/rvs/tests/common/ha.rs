//! One director of a [`HaCluster`] pair, as a [`Lab`](super::Lab) sees a topology. The real
//! servers' TCP servers belong to the test, not to either director's lab.

use std::sync::Arc;

use rvs_testbed::{HaCluster, Host, TcpServer, UdpServer};

use super::Topology;

pub struct Side {
    pub c: Arc<HaCluster>,
    pub i: usize,
}

impl Topology for Side {
    fn director(&self) -> &Host {
        &self.c.directors()[self.i]
    }
    fn client(&self) -> &Host {
        self.c.client()
    }
    fn real_servers(&self) -> &[Host] {
        self.c.real_servers()
    }
    fn vip(&self) -> std::net::Ipv4Addr {
        self.c.vips()[0]
    }
    fn interfaces(&self) -> Vec<String> {
        (self.c.director_interfaces().into_iter())
            .map(str::to_owned)
            .collect()
    }
    fn serve_tcp(&self, _port: u16) -> anyhow::Result<Vec<TcpServer>> {
        Ok(Vec::new())
    }
    fn serve_udp(&self, _port: u16) -> anyhow::Result<Vec<UdpServer>> {
        Ok(Vec::new())
    }
}
