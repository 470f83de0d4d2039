//! A keepalived.conf fwmark virtual server with rvs's `rvs_mark` rules: the rules classify the
//! packets (iptables' job for IPVS), the checkers run as for any service, and a reload that
//! changes the rules changes what the service takes.

mod common;

use common::keepalived::{ConfDir, DELAY_LOOP, KaLab, short_timers};
use rvs_testbed::{DrCluster, TcpServer};

fn conf(c: &DrCluster, ports: &[u16]) -> String {
    let vip = c.vip();
    let matches: Vec<String> = ports.iter().map(|p| format!("tcp:{vip}:{p}")).collect();
    let mut s = format!(
        "virtual_server fwmark 1 {{\n    rvs_mark {}\n    delay_loop {DELAY_LOOP}\n    \
         lb_algo rr\n    lb_kind DR\n    persistence_timeout 30\n",
        matches.join(" ")
    );
    for rs in c.real_servers() {
        s.push_str(&format!(
            "    real_server {} {{\n        weight 1\n        TCP_CHECK {{\n            \
             connect_port 80\n            {}\n        }}\n    }}\n",
            rs.ip(),
            short_timers()
        ));
    }
    s + "}\n"
}

#[test]
fn rvs_mark_rules_from_keepalived_conf_classify_and_reload() {
    let c = DrCluster::builder().real_servers(2).build().unwrap();
    let _https: Vec<TcpServer> = c.serve_tcp(443).unwrap();
    let v1 = conf(&c, &[80, 443]);
    let v2 = conf(&c, &[80]);
    let lab = KaLab::on(c, 80, ConfDir::new(), &v1);
    let l = &lab.lab;
    lab.wait(
        "both servers checked in",
        std::time::Duration::from_secs(10),
        || lab.dests("FWM", "1").len() == 2,
    );
    let marks = l.ok(&["--list-marks"]);
    assert!(
        marks.contains(&format!("tcp:{}:80", l.vip()))
            && marks.contains(&format!("tcp:{}:443", l.vip())),
        "{marks}"
    );
    // One template for the mark: both ports go to the first connection's server.
    let first = l.ask(80);
    for port in [443, 80, 443] {
        assert_eq!(l.ask(port), first, "port {port}");
    }
    // A rule added by hand is not the configuration's: a reload leaves it.
    l.ok(&[
        "--add-mark",
        "-f",
        "1",
        "--match",
        &format!("udp:{}:53", l.vip()),
    ]);
    lab.rewrite(&v2);
    lab.reload();
    let marks = l.ok(&["--list-marks"]);
    assert!(!marks.contains(":443"), "{marks}");
    assert!(marks.contains(":80") && marks.contains("udp:"), "{marks}");
    assert_eq!(l.ask(80), first);
    assert!(l.cluster.client().tcp_request(l.vip(), 443).is_err());
}
