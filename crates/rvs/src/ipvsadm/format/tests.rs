//! Golden outputs, produced by ipvsadm 1.31 (built with a stand-in kernel holding the same table).

use super::*;
use crate::control::proto::{RateView, StatsView};
use crate::ipvsadm::testing::FakeResolver;
use crate::model::{DestAddr, DestConfig, Protocol, ServiceConfig};

fn inet(proto: Protocol, addr: &str, port: u16) -> ServiceId {
    ServiceId::Inet {
        proto,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn svc(
    id: ServiceId,
    sched: &str,
    flags: u32,
    timeout: u32,
    netmask: u32,
    pe: Option<&str>,
) -> ServiceView {
    ServiceView {
        service: id,
        config: ServiceConfig {
            scheduler: sched.to_owned(),
            flags,
            timeout,
            netmask,
            pe_name: pe.map(str::to_owned),
        },
        stats: StatsView::default(),
        rate: RateView::default(),
        dests: Vec::new(),
    }
}

fn dest(addr: &str, port: u16, fwd: FwdMethod, weight: i32) -> DestView {
    DestView {
        dest: DestAddr {
            addr: addr.parse().unwrap(),
            port,
        },
        config: DestConfig {
            fwd,
            weight,
            ..DestConfig::default()
        },
        active_conns: 5,
        inactive_conns: 7,
        persist_conns: 100,
        stats: StatsView::default(),
        rate: RateView::default(),
    }
}

fn tunnel(addr: &str, port: u16, tun_type: TunType, tun_port: u16, csum: TunCsum) -> DestView {
    let mut d = dest(addr, port, FwdMethod::Tunnel, 1);
    d.config.tun_type = tun_type;
    d.config.tun_port = tun_port;
    d.config.tun_csum = csum;
    d
}

const P: u32 = svc_flags::PERSISTENT;
const O: u32 = svc_flags::ONEPACKET;
const ALL: u32 = 0xffff_ffff;

/// The table of the reference run, in the order it was created (listing sorts it).
fn table() -> Vec<ServiceView> {
    use Protocol::*;
    let mut web = svc(inet(Tcp, "10.0.0.1", 80), "rr", 0, 0, ALL, None);
    web.dests = vec![
        tunnel("192.168.1.14", 80, TunType::Gre, 0, TunCsum::NoCsum),
        dest("192.168.1.10", 80, FwdMethod::Masq, 3),
        tunnel("192.168.1.13", 80, TunType::Gue, 6080, TunCsum::Csum),
        {
            let mut d = dest("192.168.1.12", 80, FwdMethod::Route, 1);
            d.config.u_threshold = 100;
            d.config.l_threshold = 50;
            d
        },
        tunnel("192.168.1.15", 80, TunType::Ipip, 0, TunCsum::NoCsum),
        dest("192.168.1.11", 8080, FwdMethod::Masq, 1),
    ];
    let mut v6 = svc(inet(Tcp, "2001:db8::1", 80), "lc", 0, 0, 128, None);
    v6.dests = vec![
        dest("2001:db8::10", 8080, FwdMethod::Masq, 0),
        tunnel("192.168.1.30", 80, TunType::Gue, 65535, TunCsum::RemCsum),
    ];
    let mut fwm5 = svc(
        ServiceId::Fwmark {
            mark: 5,
            ipv6: false,
        },
        "wrr",
        P,
        600,
        0xffff_ff00,
        None,
    );
    fwm5.dests = vec![dest("192.168.1.20", 0, FwdMethod::Route, 1)];
    let mut named = svc(inet(Tcp, "192.0.2.7", 443), "rr", 0, 0, ALL, None);
    named.dests = vec![dest("192.168.100.100", 65535, FwdMethod::Masq, 1)];
    vec![
        web,
        svc(inet(Tcp, "10.0.0.1", 443), "wlc", P, 360, ALL, None),
        svc(
            inet(Udp, "10.0.0.1", 53),
            "sh",
            O | svc_flags::SCHED1 | svc_flags::SCHED2,
            0,
            ALL,
            None,
        ),
        svc(
            inet(Tcp, "10.0.0.1", 2),
            "rr",
            P | svc_flags::SCHED1 | svc_flags::SCHED3,
            10,
            ALL,
            Some("sip"),
        ),
        svc(
            inet(Tcp, "10.0.0.1", 1),
            "sh",
            P | svc_flags::SCHED3,
            5,
            ALL,
            None,
        ),
        svc(
            inet(Udp, "10.0.0.1", 3),
            "mh",
            P | O | svc_flags::SCHED2,
            20,
            ALL,
            None,
        ),
        v6,
        fwm5,
        svc(
            ServiceId::Fwmark {
                mark: 6,
                ipv6: true,
            },
            "wlc",
            P,
            60,
            64,
            Some("sip"),
        ),
        svc(
            ServiceId::Fwmark {
                mark: 3_000_000_000,
                ipv6: false,
            },
            "rr",
            0,
            0,
            ALL,
            None,
        ),
        named,
    ]
}

fn listing(views: &[ServiceView], format: &Format) -> String {
    let mut views = views.to_vec();
    if !format.nosort {
        sort::sort_services(&mut views);
    }
    let mut out = title(format);
    for v in &views {
        out.push_str(&service_entry(v, format, &FakeResolver));
    }
    out
}

fn numeric() -> Format {
    Format {
        numeric: true,
        ..Format::default()
    }
}

#[test]
fn plain() {
    let expected = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  -1294967296 rr
TCP  192.0.2.7:443 rr
  -> 192.168.100.100:65535        Masq    1      5          7         
TCP  10.0.0.1:1 sh () persistent 5
TCP  10.0.0.1:2 rr (flag-1,flag-3) persistent 10 pe sip
TCP  10.0.0.1:80 rr
  -> 192.168.1.10:80              Masq    3      5          7         
  -> 192.168.1.11:8080            Masq    1      5          7         
  -> 192.168.1.12:80              Route   1      5          7         
  -> 192.168.1.13:80              Tunnel  1      5          7         
  -> 192.168.1.14:80              Tunnel  1      5          7         
  -> 192.168.1.15:80              Tunnel  1      5          7         
TCP  10.0.0.1:443 wlc persistent 360
UDP  10.0.0.1:3 mh (mh-port) persistent 20 ops
UDP  10.0.0.1:53 sh (sh-fallback,sh-port) ops
TCP  [2001:db8::1]:80 lc
  -> 192.168.1.30:80              Tunnel  1      5          7         
  -> [2001:db8::10]:8080          Masq    0      5          7         
FWM  5 wrr persistent 600 mask 255.255.255.0
  -> 192.168.1.20:0               Route   1      5          7         
FWM  6 IPv6 wlc persistent 60 mask 64 pe sip
";
    assert_eq!(listing(&table(), &numeric()), expected);
}

#[test]
fn save() {
    let expected = "\
-A -f -1294967296 -s rr
-A -t 192.0.2.7:443 -s rr
-a -t 192.0.2.7:443 -r 192.168.100.100:65535 -m -w 1
-A -t 10.0.0.1:1 -s sh -p 5 -b 
-A -t 10.0.0.1:2 -s rr -p 10 --pe sip -b flag-1,flag-3
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.10:80 -m -w 3
-a -t 10.0.0.1:80 -r 192.168.1.11:8080 -m -w 1
-a -t 10.0.0.1:80 -r 192.168.1.12:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.168.1.13:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 10.0.0.1:80 -r 192.168.1.14:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t 10.0.0.1:80 -r 192.168.1.15:80 -i -w 1 --tun-type ipip
-A -t 10.0.0.1:443 -s wlc -p 360
-A -u 10.0.0.1:3 -s mh -p 20 -o -b mh-port
-A -u 10.0.0.1:53 -s sh -o -b sh-fallback,sh-port
-A -t [2001:db8::1]:80 -s lc
-a -t [2001:db8::1]:80 -r 192.168.1.30:80 -i -w 1 --tun-type gue --tun-port 65535 --tun-remcsum
-a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 0
-A -f 5 -s wrr -p 600 -M 255.255.255.0
-a -f 5 -r 192.168.1.20:0 -g -w 1
-A -f 6 -6 -s wlc -p 60 -M 64 --pe sip
";
    let format = Format {
        rule: true,
        ..numeric()
    };
    assert_eq!(listing(&table(), &format), expected);
}

#[test]
fn save_with_names() {
    let mut web = svc(inet(Protocol::Tcp, "10.0.0.1", 80), "rr", 0, 0, ALL, None);
    web.dests = vec![dest("192.168.1.11", 8080, FwdMethod::Masq, 1)];
    let format = Format {
        rule: true,
        ..Format::default()
    };
    assert_eq!(
        listing(&[web], &format),
        "-A -t 10.0.0.1:http -s rr\n-a -t 10.0.0.1:http -r 192.168.1.11:http-alt -m -w 1\n"
    );
}

#[test]
fn tun_info_thresholds_persistent_conn() {
    let views: Vec<ServiceView> = table()
        .into_iter()
        .filter(|v| !v.dests.is_empty())
        .collect();
    let tun = Format {
        tun_info: true,
        ..numeric()
    };
    assert_eq!(
        listing(&views, &tun),
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.0.2.7:443 rr
  -> 192.168.100.100:65535        Masq    n/a           1      5          7         
TCP  10.0.0.1:80 rr
  -> 192.168.1.10:80              Masq    n/a           3      5          7         
  -> 192.168.1.11:8080            Masq    n/a           1      5          7         
  -> 192.168.1.12:80              Route   n/a           1      5          7         
  -> 192.168.1.13:80              Tunnel  gue:6080:+c   1      5          7         
  -> 192.168.1.14:80              Tunnel  gre:-c        1      5          7         
  -> 192.168.1.15:80              Tunnel  ipip          1      5          7         
TCP  [2001:db8::1]:80 lc
  -> 192.168.1.30:80              Tunnel  gue:65535:r+c 1      5          7         
  -> [2001:db8::10]:8080          Masq    n/a           0      5          7         
FWM  5 wrr persistent 600 mask 255.255.255.0
  -> 192.168.1.20:0               Route   n/a           1      5          7         
"
    );
    let thr = Format {
        thresholds: true,
        ..numeric()
    };
    let text = listing(&views[..1], &thr);
    assert_eq!(
        text,
        "\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  10.0.0.1:80 rr
  -> 192.168.1.10:80              0          0          5          7         
  -> 192.168.1.11:8080            0          0          5          7         
  -> 192.168.1.12:80              100        50         5          7         
  -> 192.168.1.13:80              0          0          5          7         
  -> 192.168.1.14:80              0          0          5          7         
  -> 192.168.1.15:80              0          0          5          7         
"
    );
    let pc = Format {
        persistent_conn: true,
        ..numeric()
    };
    assert_eq!(
        listing(&views[2..3], &pc),
        "\
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
FWM  5 wrr persistent 600 mask 255.255.255.0
  -> 192.168.1.20:0               1         100         5          7         
"
    );
}

fn counted() -> Vec<ServiceView> {
    let stats = StatsView {
        conns: 99_999_999,
        inpkts: 100_000_000,
        outpkts: 999_999_999,
        inbytes: 1_000_000_000,
        outbytes: 99_999_999_999,
    };
    let rate = RateView {
        cps: 100_000_000_000,
        inpps: 123_456_789_012,
        outpps: u64::MAX,
        inbps: 5,
        outbps: 123_456_789,
    };
    let mut web = svc(inet(Protocol::Tcp, "10.0.0.1", 80), "rr", 0, 0, ALL, None);
    web.dests = vec![
        dest("192.168.1.10", 80, FwdMethod::Masq, 3),
        dest("192.168.1.11", 8080, FwdMethod::Masq, 1),
    ];
    let mut v6 = svc(
        inet(Protocol::Tcp, "2001:db8::1", 80),
        "lc",
        0,
        0,
        128,
        None,
    );
    v6.dests = vec![dest("2001:db8::10", 8080, FwdMethod::Masq, 0)];
    let fwm = svc(
        ServiceId::Fwmark {
            mark: 5,
            ipv6: false,
        },
        "wrr",
        P,
        600,
        0xffff_ff00,
        None,
    );
    let mut views = vec![web, v6, fwm];
    for v in &mut views {
        v.stats = stats;
        v.rate = rate;
        for d in &mut v.dests {
            d.stats = stats;
            d.rate = rate;
        }
    }
    views
}

#[test]
fn stats_and_rate() {
    let stats = Format {
        stats: true,
        ..numeric()
    };
    assert_eq!(
        listing(&counted(), &stats),
        "\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                  99999999  100000K  999999K    1000M   99999M
  -> 192.168.1.10:80              99999999  100000K  999999K    1000M   99999M
  -> 192.168.1.11:8080            99999999  100000K  999999K    1000M   99999M
TCP  [2001:db8::1]:80             99999999  100000K  999999K    1000M   99999M
  -> [2001:db8::10]:8080          99999999  100000K  999999K    1000M   99999M
FWM  5                            99999999  100000K  999999K    1000M   99999M
"
    );
    // --stats wins over --rate.
    assert_eq!(
        listing(
            &counted(),
            &Format {
                rate: true,
                ..stats
            }
        ),
        listing(&counted(), &stats)
    );
    let rate = Format {
        rate: true,
        ..numeric()
    };
    assert_eq!(
        listing(&counted(), &rate),
        "\
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  10.0.0.1:80                      100G     123G18446744T        5  123456K
  -> 192.168.1.10:80              100000000000 123456789012 18446744073709551615        5  123456K
  -> 192.168.1.11:8080            100000000000 123456789012 18446744073709551615        5  123456K
TCP  [2001:db8::1]:80                 100G     123G18446744T        5  123456K
  -> [2001:db8::10]:8080          100000000000 123456789012 18446744073709551615        5  123456K
FWM  5                                100G     123G18446744T        5  123456K
"
    );
    let exact = Format {
        exact: true,
        ..stats
    };
    assert!(listing(&counted(), &exact).contains(
        "TCP  10.0.0.1:80                  99999999 100000000 999999999 1000000000 99999999999\n"
    ));
    let exact_rate = Format {
        exact: true,
        ..rate
    };
    assert!(listing(&counted(), &exact_rate).contains(
        "FWM  5                            100000000000 123456789012 18446744073709551615        5 123456789\n"
    ));
}

#[test]
fn largenum_steps() {
    let cases = [
        (0, "        0"),
        (99_999_999, " 99999999"),
        (100_000_000, "  100000K"),
        (999_999_999, "  999999K"),
        (1_000_000_000, "    1000M"),
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "     100G"),
        (99_999_999_999_999, "   99999G"),
        (100_000_000_000_000, "     100T"),
        (u64::MAX, "18446744T"),
    ];
    for (v, text) in cases {
        assert_eq!(largenum(v, false), text, "{v}");
    }
    assert_eq!(largenum(12, true), "       12");
    assert_eq!(largenum(12_345_678, true), " 12345678");
    assert_eq!(largenum(123_456_789, true), " 123456789");
    assert_eq!(largenum(u64::MAX, true), " 18446744073709551615");
}

#[test]
fn names_are_cut_to_their_columns() {
    let mut long = svc(inet(Protocol::Tcp, "192.0.2.7", 443), "rr", 0, 0, ALL, None);
    long.dests = vec![dest("192.0.2.99", 443, FwdMethod::Route, 1)];
    let text = listing(&[long], &Format::default());
    assert_eq!(
        text.lines().collect::<Vec<_>>()[2..],
        [
            "TCP  averyveryverylonghostname.ex rr",
            "  -> a-very-long-host-name-that-g Route   1      5          7         ",
        ]
    );
    // IPv6 keeps its whole name, brackets around the host name included.
    let v6 = svc(
        inet(Protocol::Tcp, "2001:db8::1", 80),
        "lc",
        0,
        0,
        128,
        None,
    );
    assert!(listing(&[v6], &Format::default()).ends_with("TCP  [v6host.example]:http lc\n"));
}

#[test]
fn sched_flags_by_scheduler() {
    assert_eq!(sched_flags("sh", svc_flags::SCHED3), "");
    assert_eq!(
        sched_flags("mh", svc_flags::SCHED1 | svc_flags::SCHED2),
        "mh-fallback,mh-port"
    );
    assert_eq!(sched_flags("wrr", svc_flags::SCHED2), "flag-2");
}

#[test]
fn bypass_prints_null() {
    let mut s = svc(inet(Protocol::Tcp, "10.0.0.1", 80), "rr", 0, 0, ALL, None);
    s.dests = vec![dest("192.168.1.1", 80, FwdMethod::Bypass, 1)];
    let text = listing(std::slice::from_ref(&s), &numeric());
    assert!(
        text.contains("  -> 192.168.1.1:80               (null)  1      5          7         \n")
    );
    let save = listing(
        &[s],
        &Format {
            rule: true,
            ..numeric()
        },
    );
    assert!(save.ends_with("-a -t 10.0.0.1:80 -r 192.168.1.1:80 (null) -w 1\n"));
}
